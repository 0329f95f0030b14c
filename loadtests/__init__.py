"""Load tests for the lab's designs: Locust files, load shapes and data seeders."""
