"""Experiments: what one is, the runner, its report, and the capacity and scaling curves any design registers."""
