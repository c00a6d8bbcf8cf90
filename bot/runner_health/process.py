"""Take one completed job through the policy: record, re-attribute, decide, mark what to do.

The same function serves the live worker and ``nimbys backtest`` (which passes
no annotations and carries out nothing), so there is one policy. The I/O is
two ledger calls, a read and an optimistic commit; what happens between them
is pure: :func:`reattribute` and :func:`decide_all`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot.runner_health.decide import Decision, RunnerState, classify, decide, score
from bot.runner_health.ledger import Changes, Ledger, Seen, Snapshot, record_json
from bot.runner_health.outcomes import JobOutcome, infra_signature
from bot.runner_health.policy import HealthPolicy

log = logging.getLogger("bot.runner_health")
COMMIT_ATTEMPTS = 50


@dataclass
class Processed:
    """What one job caused, and what is to be done after it (the actions on GitHub)."""

    decisions: list[Decision]
    pending: set[str]  # runners whose quarantine actions are not all done (this job's and earlier ones)
    storm_pending: bool  # a pool-wide storm issue is to be filed


async def process_outcome(ledger: Ledger, outcome: JobOutcome, annotations: list[str], policy: HealthPolicy,
                          now: float | None = None, org: str | None = None,
                          refresh_roster: Callable[[], Awaitable[None]] | None = None,
                          fetch_annotations: Callable[[], Awaitable[list[str]]] | None = None) -> Processed:
    """Read, decide, commit; when another worker committed in between, decide again on fresh state.

    Several runners may be affected by new evidence about a key. ``refresh_roster`` is called (once)
    when the read finds ``org``'s roster stale, before deciding: the pool is then read again.
    ``fetch_annotations`` (GitHub) is called only for a job not recorded yet, so a redelivery costs none.
    """
    now = outcome.completed_at if now is None else now
    infra: str | None = None
    for attempt in range(COMMIT_ATTEMPTS):
        snapshot = await ledger.read(outcome, org if refresh_roster else None)
        if isinstance(snapshot, Seen):
            return Processed([], snapshot.pending, snapshot.storm_pending)  # recorded already
        if refresh_roster is not None and not snapshot.roster_fresh:
            await refresh_roster()
            refresh_roster = None
            continue
        if infra is None:
            if fetch_annotations is not None:
                annotations, fetch_annotations = await fetch_annotations(), None
            infra = infra_signature(outcome, annotations, policy) or ""
        writes = reattribute(outcome, snapshot, infra or None, policy)
        changes = Changes(ledger, snapshot)
        decisions = decide_all(outcome, snapshot, writes, changes, policy, now)
        if await ledger.commit(snapshot, outcome, writes, changes):
            quarantined = {d.runner for d in decisions if d.action == "quarantine"}
            for decision in decisions:
                if decision.action == "quarantine":
                    log.warning("quarantine %s: %s", decision.runner, decision.reason)
            return Processed(decisions, snapshot.pending | quarantined, snapshot.storm_pending or changes.stormed)
        await asyncio.sleep(random.uniform(0, 0.002 * attempt))  # contention: let the other worker through
    raise RuntimeError(f"job {outcome.job_id}: the pool kept changing; giving up for a retry of the event")


def decide_all(outcome: JobOutcome, snapshot: Snapshot, writes: list[dict[str, Any]], changes: Changes,
               policy: HealthPolicy, now: float) -> list[Decision]:
    """Decide about the job's runner and every runner whose records the job re-attributed."""
    pool = snapshot.pool_after(writes, outcome.runner, policy)
    fields: dict[str, Any] = {"last_seen": outcome.completed_at}
    if outcome.runner_id is not None:
        fields["runner_id"] = outcome.runner_id
    changes.set_state(outcome.runner, **fields)
    changes.member(outcome.runner)
    affected = {w["runner"] for w in writes} - {outcome.runner}
    last_auto = snapshot.last_auto_quarantine
    decisions: list[Decision] = []
    for runner in [outcome.runner, *sorted(affected)]:
        decision = decide(runner, pool, policy, now, last_auto)
        _mark(changes, snapshot, pool, decision, policy, now)
        if decision.action == "quarantine":
            last_auto = now
        if decision.action != "none":
            decisions.append(decision)
    _probation_tick(changes, outcome.runner, policy)
    return decisions


def reattribute(outcome: JobOutcome, snapshot: Snapshot, infra: str | None,
                policy: HealthPolicy) -> list[dict[str, Any]]:
    """The records to write: this job's, and every earlier failure of its key whose class the new evidence changes."""
    writes = []
    for run in snapshot.runs:
        existing = snapshot.existing(run)
        if run.job_id == outcome.job_id:
            run_infra = infra
        elif existing is None:
            continue  # trimmed from its runner's history: nothing to update
        else:
            run_infra = existing.get("infra")
        if not run.failed:
            if run.job_id == outcome.job_id:
                writes.append(record_json(outcome, None, 0.0, "passed", None))
            continue
        attribution = classify(run, snapshot.runs, run_infra, policy)
        if existing and existing.get("cls") == attribution.cls:
            continue
        source = outcome if run.job_id == outcome.job_id else run
        data = record_json(source, attribution.cls, attribution.weight, attribution.why, run_infra)
        if existing:
            data.update({k: existing[k] for k in ("url", "run_id", "repo", "job_name", "key") if k in existing})
        writes.append(data)
    return writes


def _mark(changes: Changes, snapshot: Snapshot, pool: dict[str, RunnerState], decision: Decision,
          policy: HealthPolicy, now: float) -> None:
    """Record a decision in the runner's state and the audit log (the actions follow the commit)."""
    state = pool[decision.runner]
    current = changes.state(decision.runner)
    s = score(state.records, policy)
    if decision.action in {"warn", "quarantine", "storm", "hold"} and not current.get("warn_since"):
        changes.set_state(decision.runner, warn_since=now)
        state.warn_since = now
        changes.audit("warn", decision.runner, f"score {s:g} reached the warn level", score=s)
    elif decision.action == "none" and current.get("warn_since") and s < policy.warn_score:
        changes.set_state(decision.runner, warn_since="")
        state.warn_since = None
    if decision.action == "quarantine":
        changes.set_state(decision.runner, quarantined=1, quarantined_by="nimbys-bot", reason=decision.reason,
                          quarantined_at=now, evidence=",".join(map(str, decision.evidence)),
                          pending_label=1, pending_issue=1, pending_rerun=1, probation_left=0,
                          shadow=1 if policy.shadow else 0)
        state.quarantined, state.carries_label = True, False
        changes.quarantined(decision.runner, now)
        changes.audit("quarantine", decision.runner, decision.reason, evidence=list(decision.evidence),
                      shadow=policy.shadow)
    elif decision.action == "storm":
        if snapshot.storm_at is None or now - snapshot.storm_at > policy.storm_hours * 3600:
            snapshot.storm_at = now
            changes.storm(now, decision.reason)
            changes.audit("storm", decision.runner, decision.reason)
    elif decision.action == "hold" and current.get("last_hold") != decision.reason:
        changes.set_state(decision.runner, last_hold=decision.reason)
        changes.audit("hold", decision.runner, decision.reason)


def _probation_tick(changes: Changes, runner: str, policy: HealthPolicy) -> None:
    state = changes.state(runner)
    left = int(state.get("probation_left") or 0)
    if left > 0 and state.get("quarantined") != "1":
        changes.set_state(runner, probation_left=left - 1)
        if left - 1 == 0:
            changes.audit("probation_end", runner, f"{policy.probation_jobs} jobs since the restore")
