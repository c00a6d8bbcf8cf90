"""Talking to GitHub: App authentication and the API client handlers use."""
