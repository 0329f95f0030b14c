"""How the stack runs: one backend per way (local processes, docker compose), picked once per command
(:mod:`services.lab.backends.selection`) and the only place that knows which one runs."""
