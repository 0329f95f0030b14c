"""Adapters: the shortener's ports implemented on PostgreSQL, Redis and Kafka."""
