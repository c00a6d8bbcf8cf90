"""The web process: webhook receiver, health, pool page."""
