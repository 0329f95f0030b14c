"""The compose backend: the stack under docker compose (project, generated overrides, stand-in images, Toxiproxy)."""
