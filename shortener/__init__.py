"""URL shortener: hash IDs, PostgreSQL, Redis cache, click analytics over Kafka."""
