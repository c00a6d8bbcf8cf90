"""Take one completed job through the policy: record, re-attribute, decide, mark what to do.

The same function serves the live worker and ``nimbys backtest`` (which passes
no annotations and carries out nothing), so there is one policy.
"""

from __future__ import annotations

import logging

from bot.runner_health.decide import Decision, classify, decide, score
from bot.runner_health.ledger import Ledger, record_json
from bot.runner_health.outcomes import JobOutcome, infra_signature
from bot.runner_health.policy import HealthPolicy

log = logging.getLogger("bot.runner_health")


async def process_outcome(ledger: Ledger, outcome: JobOutcome, annotations: list[str], policy: HealthPolicy,
                          now: float | None = None) -> list[Decision]:
    """Decisions caused by this job (several runners may be affected by new evidence about a key)."""
    now = outcome.completed_at if now is None else now
    async with ledger.lock():
        if await ledger.seen(outcome):
            return []
        affected = await _record(ledger, outcome, annotations, policy)
        pool = await ledger.pool(with_records=affected)
        decisions: list[Decision] = []
        ordered = [outcome.runner, *sorted(affected - {outcome.runner})]
        for runner in ordered:
            if runner not in pool:
                continue
            decision = decide(runner, pool, policy, now, await ledger.last_auto_quarantine())
            await _mark(ledger, pool, decision, policy, now, outcome)
            if decision.action != "none":
                decisions.append(decision)
        await _probation_tick(ledger, outcome.runner, policy)
        await ledger.mark_seen(outcome)
    return decisions


async def _record(ledger: Ledger, outcome: JobOutcome, annotations: list[str], policy: HealthPolicy) -> set[str]:
    """Store the job and re-attribute every failure of its key; the runners whose records changed."""
    infra = infra_signature(outcome, annotations, policy)
    runs = await ledger.add_run(outcome)
    await ledger.set_state(outcome.runner, runner_id=outcome.runner_id, last_seen=outcome.completed_at)
    affected = {outcome.runner}
    for run in runs:
        existing = await ledger.record(run.runner, run.job_id)
        if run.job_id == outcome.job_id:
            run_infra = infra
        elif existing is None:
            continue  # trimmed from its runner's history: nothing to update
        else:
            run_infra = existing.get("infra")
        if not run.failed:
            if run.job_id == outcome.job_id:
                await ledger.put_record(run.runner, record_json(outcome, None, 0.0, "passed", None), existing)
            continue
        attribution = classify(run, runs, run_infra, policy)
        if existing and existing.get("cls") == attribution.cls:
            continue
        source = outcome if run.job_id == outcome.job_id else run
        data = record_json(source, attribution.cls, attribution.weight, attribution.why, run_infra)
        if existing:
            data.update({k: existing[k] for k in ("url", "run_id", "repo", "job_name", "key") if k in existing})
        await ledger.put_record(run.runner, data, existing)
        affected.add(run.runner)
    return affected


async def _mark(ledger: Ledger, pool: dict, decision: Decision, policy: HealthPolicy, now: float,
                outcome: JobOutcome) -> None:
    state = pool[decision.runner]
    current = await ledger.state(decision.runner)
    s = score(state.records, policy)
    if decision.action in {"warn", "quarantine", "storm", "hold"} and not current.get("warn_since"):
        await ledger.set_state(decision.runner, warn_since=now)
        state.warn_since = now
        await ledger.audit("warn", decision.runner, f"score {s:g} reached the warn level", score=s)
    elif decision.action == "none" and current.get("warn_since") and s < policy.warn_score:
        await ledger.set_state(decision.runner, warn_since="")
        state.warn_since = None
    if decision.action == "quarantine":
        await ledger.set_state(decision.runner, quarantined=1, quarantined_by="nimbys-bot", reason=decision.reason,
                               quarantined_at=now, evidence=",".join(map(str, decision.evidence)),
                               pending_label=1, pending_issue=1, pending_rerun=1, probation_left=0,
                               shadow=1 if policy.shadow else 0)
        state.quarantined, state.carries_label = True, False
        await ledger.mark_auto_quarantine(now)
        await ledger.r.sadd(ledger.pending_key, decision.runner)
        await ledger.audit("quarantine", decision.runner, decision.reason, evidence=list(decision.evidence),
                           shadow=policy.shadow)
        log.warning("quarantine %s: %s", decision.runner, decision.reason)
    elif decision.action == "storm":
        last = await ledger.r.get(f"{ledger.p}:storm-at")
        if not last or now - float(last) > policy.storm_hours * 3600:
            await ledger.r.set(f"{ledger.p}:storm-at", now)
            await ledger.r.set(f"{ledger.p}:storm-pending", decision.reason)
            await ledger.audit("storm", decision.runner, decision.reason)
    elif decision.action == "hold" and current.get("last_hold") != decision.reason:
        await ledger.set_state(decision.runner, last_hold=decision.reason)
        await ledger.audit("hold", decision.runner, decision.reason)


async def _probation_tick(ledger: Ledger, runner: str, policy: HealthPolicy) -> None:
    state = await ledger.state(runner)
    left = int(state.get("probation_left") or 0)
    if left > 0 and state.get("quarantined") != "1":
        await ledger.set_state(runner, probation_left=left - 1)
        if left - 1 == 0:
            await ledger.audit("probation_end", runner, f"{policy.probation_jobs} jobs since the restore")
