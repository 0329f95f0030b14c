"""Replicated PostgreSQL (``sdlab up --replicas N``): Patroni layout, members, roles and lag, switchover."""
