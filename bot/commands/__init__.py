"""Slash commands in comments: /nimbys requeue, status, quarantine, restore, ... (issue_comment)."""
