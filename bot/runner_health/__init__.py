"""Runner health: attribute failed jobs to runners and quarantine bad ones (workflow_job)."""
