"""Lint findings on pull requests: one check run and one sticky comment (pull_request)."""
