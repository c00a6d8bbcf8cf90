"""Take one completed job through the policy: record, re-attribute, decide, mark what to do.

The same function serves the live worker and ``nimbys backtest`` (which passes
no annotations and carries out nothing), so there is one policy. The I/O is
three ledger calls inside the pool lock (begin, apply, commit); what happens
between them is pure: :func:`reattribute` and :func:`decide`.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.runner_health.decide import Decision, classify, decide, score
from bot.runner_health.ledger import Begun, Changes, Ledger, PoolView, record_json
from bot.runner_health.outcomes import JobOutcome, infra_signature
from bot.runner_health.policy import HealthPolicy

log = logging.getLogger("bot.runner_health")


async def process_outcome(ledger: Ledger, outcome: JobOutcome, annotations: list[str], policy: HealthPolicy,
                          now: float | None = None) -> list[Decision]:
    """Decisions caused by this job (several runners may be affected by new evidence about a key)."""
    now = outcome.completed_at if now is None else now
    infra = infra_signature(outcome, annotations, policy)
    async with ledger.lock():
        begun = await ledger.begin(outcome)
        if begun is None:
            return []
        writes = reattribute(outcome, begun, infra, policy)
        affected = {outcome.runner} | {w["runner"] for w in writes}
        view = await ledger.apply(outcome, writes, affected)
        changes = ledger.changes(view)
        decisions: list[Decision] = []
        for runner in [outcome.runner, *sorted(affected - {outcome.runner})]:
            if runner not in view.pool:
                continue
            decision = decide(runner, view.pool, policy, now, view.last_auto_quarantine)
            _mark(changes, view, decision, policy, now)
            if decision.action != "none":
                decisions.append(decision)
        _probation_tick(changes, outcome.runner, policy)
        await changes.commit(outcome)
    return decisions


def reattribute(outcome: JobOutcome, begun: Begun, infra: str | None, policy: HealthPolicy) -> list[dict[str, Any]]:
    """The records to write: this job's, and every earlier failure of its key whose class the new evidence changes."""
    writes = []
    for run in begun.runs:
        existing = begun.existing.get(run.job_id)
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
        attribution = classify(run, begun.runs, run_infra, policy)
        if existing and existing.get("cls") == attribution.cls:
            continue
        source = outcome if run.job_id == outcome.job_id else run
        data = record_json(source, attribution.cls, attribution.weight, attribution.why, run_infra)
        if existing:
            data.update({k: existing[k] for k in ("url", "run_id", "repo", "job_name", "key") if k in existing})
        writes.append(data)
    return writes


def _mark(changes: Changes, view: PoolView, decision: Decision, policy: HealthPolicy, now: float) -> None:
    """Record a decision in the runner's state and the audit log (the actions follow, outside the lock)."""
    state = view.pool[decision.runner]
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
        view.last_auto_quarantine = now
        changes.quarantined(decision.runner, now)
        changes.audit("quarantine", decision.runner, decision.reason, evidence=list(decision.evidence),
                      shadow=policy.shadow)
        log.warning("quarantine %s: %s", decision.runner, decision.reason)
    elif decision.action == "storm":
        if view.storm_at is None or now - view.storm_at > policy.storm_hours * 3600:
            view.storm_at = now
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
