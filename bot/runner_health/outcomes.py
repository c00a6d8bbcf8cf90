"""A completed `workflow_job`, read defensively, and what it says about its runner.

Real payloads are not always schema-perfect: every field is optional here and
a job that cannot be attributed (no runner, cancelled, skipped, not a pool
job) is simply not tracked.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from bot.runner_health.policy import HealthPolicy

FAILED = frozenset({"failure", "timed_out"})
IGNORED = frozenset({"cancelled", "skipped", "neutral", "action_required", "stale"})
SETUP_STEPS = frozenset({"set up job", "set up runner"})


@dataclass(frozen=True)
class JobKey:
    """The same work: re-runs and other runners' runs of it are evidence about each other."""

    repo: str
    workflow: str
    job: str
    head_sha: str

    def as_str(self) -> str:
        return f"{self.repo}|{self.workflow}|{self.job}|{self.head_sha}"


@dataclass(frozen=True)
class JobOutcome:
    job_id: int
    run_id: int | None
    attempt: int
    key: JobKey
    runner: str
    runner_id: int | None
    labels: tuple[str, ...]
    conclusion: str
    completed_at: float
    url: str
    steps: tuple[tuple[str, str | None], ...]  # (name, conclusion)

    @property
    def failed(self) -> bool:
        return self.conclusion in FAILED

    @property
    def job_name(self) -> str:
        """Comparable across commits: workflow and job name."""
        return f"{self.key.repo}|{self.key.workflow}|{self.key.job}"


def _ts(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def outcome_from_payload(payload: Any, policy: HealthPolicy) -> JobOutcome | None:
    """The tracked outcome of a ``workflow_job`` ``completed`` delivery, or None when it is not one."""
    if not isinstance(payload, dict) or payload.get("action") != "completed":
        return None
    job = payload.get("workflow_job")
    if not isinstance(job, dict):
        return None
    labels = tuple(str(x) for x in job.get("labels") or [] if isinstance(x, str))
    tracked = {label.lower() for label in policy.tracked_labels}
    if not tracked & {label.lower() for label in labels}:
        return None
    runner = job.get("runner_name")
    conclusion = job.get("conclusion")
    if not isinstance(runner, str) or not runner or not isinstance(conclusion, str) or conclusion in IGNORED:
        return None
    repo = (payload.get("repository") or {}).get("full_name") if isinstance(payload.get("repository"), dict) \
        else None
    job_id = job.get("id")
    if not isinstance(job_id, int):
        return None
    steps = tuple((str(s.get("name", "")), s.get("conclusion")) for s in job.get("steps") or []
                  if isinstance(s, dict))
    completed = _ts(job.get("completed_at")) or _ts(job.get("started_at")) or 0.0
    return JobOutcome(
        job_id=job_id,
        run_id=job.get("run_id") if isinstance(job.get("run_id"), int) else None,
        attempt=job.get("run_attempt") if isinstance(job.get("run_attempt"), int) else 1,
        key=JobKey(str(repo or ""), str(job.get("workflow_name") or ""), str(job.get("name") or ""),
                   str(job.get("head_sha") or "")),
        runner=runner,
        runner_id=job.get("runner_id") if isinstance(job.get("runner_id"), int) else None,
        labels=labels,
        conclusion=conclusion,
        completed_at=completed,
        url=str(job.get("html_url") or ""),
        steps=steps,
    )


def infra_signature(outcome: JobOutcome, annotations: list[str], policy: HealthPolicy) -> str | None:
    """Why a failed job is the runner's fault by its own signs, or None.

    The set-up step failed; a step never finished in a failed job (the runner
    vanished); or a runner error annotation / configured pattern matched.
    """
    if not outcome.failed:
        return None
    for name, conclusion in outcome.steps:
        if name.strip().lower() in SETUP_STEPS and conclusion in FAILED:
            return f"step '{name}' failed"
    if any(conclusion is None for _name, conclusion in outcome.steps):
        return "a step never finished (the runner vanished)"
    for text in annotations:
        for pattern in policy.infra_patterns:
            match = re.search(pattern, text)
            if match:
                return re.sub(r"\s+", " ", match.group(0))[:120]
    return None
