"""unchecked-exit-code (filled in below)."""

from bot.lint.model import Job
from bot.lint.rules.base import Report


def check_job(report: Report, job: Job) -> None:
    return None
