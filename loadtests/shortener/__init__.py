"""Load tests for the URL shortener: a seeder for existing links and a Locust file."""
