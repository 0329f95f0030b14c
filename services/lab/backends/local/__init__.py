"""The local backend: the stack as supervised processes (supervisor, probes, preparation, chaos, throttling)."""
