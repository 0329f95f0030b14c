"""The shared kit every design builds on: settings, logging, metrics, health, clients, the app factory."""
