"""Lifespan-managed clients for the lab's real parts: Redis, sharded PostgreSQL, Kafka."""
