"""Attribute failures and decide about runners: pure functions with their inputs spelled out.

The Redis ledger (next step) gathers the inputs (the job key's runs, each
runner's recent records, the pool's state) and carries out the decisions; the
live worker and ``nimbys backtest`` share both, so there is one policy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bot.runner_health.outcomes import JobOutcome
from bot.runner_health.policy import HealthPolicy

INFRA, CODE, DISCORDANT, UNRESOLVED = "INFRA", "CODE", "DISCORDANT", "UNRESOLVED"


@dataclass(frozen=True)
class Attribution:
    cls: str
    weight: float
    why: str


def classify(failure: JobOutcome, same_key: list[JobOutcome], infra: str | None,
             policy: HealthPolicy) -> Attribution:
    """Whose fault a failed job is, given every known run of the same key (re-runs, other runners).

    INFRA wins over CODE only for INFRA's own signs; a key that failed on two or
    more runners is the code's; a key that passed on another runner before, or
    within ``discordant_hours`` after, makes this runner the odd one out.
    """
    if infra:
        return Attribution(INFRA, policy.weight(INFRA), infra)
    others = [o for o in same_key if o.job_id != failure.job_id]
    failed_on = {o.runner for o in others if o.failed} | {failure.runner}
    if len(failed_on) >= 2:
        return Attribution(CODE, 0.0, f"the same job failed on {len(failed_on)} runners")
    horizon = policy.discordant_hours * 3600
    passed = [o for o in others if not o.failed and o.runner != failure.runner
              and o.completed_at - failure.completed_at <= horizon]
    if passed:
        return Attribution(DISCORDANT, policy.weight(DISCORDANT), f"the same job passed on {passed[0].runner}")
    return Attribution(UNRESOLVED, policy.weight(UNRESOLVED), "no evidence either way yet")


@dataclass(frozen=True)
class Record:
    """One tracked job of a runner, as currently attributed (success: cls None, weight 0)."""

    job_id: int
    job_name: str
    at: float
    weight: float = 0.0
    cls: str | None = None
    infra: str | None = None
    failed: bool = False


@dataclass
class RunnerState:
    name: str
    records: list[Record] = field(default_factory=list)  # oldest first, capped
    carries_label: bool = True
    exempt: bool = False
    quarantined: bool = False
    removed_by_person: bool = False
    probation_left: int = 0
    warn_since: float | None = None
    blame_sum: float = 0.0  # running totals over its kept records (the ledger keeps them in step)
    job_count: int = 0
    fail_sum: int = 0  # failures not attributed to code


@dataclass(frozen=True)
class Decision:
    action: str  # none | warn | quarantine | storm | hold
    runner: str
    reason: str = ""
    evidence: tuple[int, ...] = ()
    past_rate_limit: bool = False


def score(records: list[Record], policy: HealthPolicy) -> float:
    return round(sum(r.weight for r in records[-policy.window:]), 4)


def failures_in_a_row(records: list[Record]) -> int:
    """Trailing weight-1 failures (a success or a lighter failure ends the run)."""
    count = 0
    for record in reversed(records):
        if record.weight < 1:
            break
        count += 1
    return count


def repeated_infra(records: list[Record], policy: HealthPolicy, now: float) -> str | None:
    """An INFRA signature seen ``infra_repeat_count`` times within ``infra_repeat_hours`` (design: twice a day)."""
    if policy.infra_repeat_count < 1:
        return None
    seen: dict[str, int] = {}
    for record in records:
        if record.infra and now - record.at <= policy.infra_repeat_hours * 3600:
            seen[record.infra] = seen.get(record.infra, 0) + 1
            if seen[record.infra] >= policy.infra_repeat_count:
                return record.infra
    return None


def blame_rate(pool: dict[str, RunnerState], but: str, policy: HealthPolicy, now: float) -> float:
    """p0: how often the rest of the pool is blamed per tracked job, over the records each runner keeps."""
    blame = sum(st.blame_sum for name, st in pool.items() if name != but)
    jobs = sum(st.job_count for name, st in pool.items() if name != but)
    return blame / jobs if jobs else 0.0


def failure_rate(pool: dict[str, RunnerState], but: str, policy: HealthPolicy) -> float:
    """The rest of the pool's failure rate (failures not attributed to code per tracked job).

    Only runners still in the pool count: one already taken out is not the baseline.
    """
    peers = [st for name, st in pool.items() if name != but and st.carries_label]
    fails = sum(st.fail_sum for st in peers) + policy.detector_p0_prior * policy.detector_prior_jobs
    jobs = sum(st.job_count for st in peers) + policy.detector_prior_jobs
    # Clamped: when the whole pool fails (a broken commit not yet proven CODE), nothing singles one out.
    return min(0.9, max(policy.detector_p0_floor, fails / jobs if jobs else 0.0))


def cusum(records: list[Record], p0: float, policy: HealthPolicy) -> float:
    """CUSUM of log-likelihood ratios, 'fails at p0 + margin' against 'fails like the pool (p0)'.

    A failure attributed to code says nothing about the runner (0); any other failure counts
    log(p1/p0); a success counts log((1-p1)/(1-p0)). The sum restarts at 0 when it goes below.
    """
    p1 = min(0.95, p0 + policy.detector_margin)
    fail, ok = math.log(p1 / p0), math.log((1 - p1) / (1 - p0))
    total = 0.0
    for record in records:
        if record.cls == CODE:
            continue
        total = max(0.0, total + (fail if record.failed or record.weight > 0 else ok))
    return total


def pool_floor(pool: dict[str, RunnerState], policy: HealthPolicy) -> int:
    return max(policy.floor_min, math.ceil(policy.floor_fraction * len(pool)))


def decide(name: str, pool: dict[str, RunnerState], policy: HealthPolicy, now: float,
           last_auto_quarantine: float | None) -> Decision:
    """What to do about one runner after its latest record, within the safeguards."""
    state = pool[name]
    if state.quarantined or state.removed_by_person or not state.carries_label or not state.records:
        return Decision("none", name)  # taken out already, by the bot or a person, or never in (stx-test)
    members = {n: st for n, st in pool.items() if st.carries_label or st.quarantined or st.removed_by_person}
    records = state.records
    s = score(records, policy)
    reasons: list[str] = []
    on_probation = state.probation_left > 0 and records[-1].weight >= 1
    if on_probation:
        reasons.append("a weight-1 failure while on probation")
    rate = failure_rate(pool, name, policy)
    evidence_sum = cusum(records, rate, policy)
    if evidence_sum >= policy.detector_h:
        reasons.append(f"fails far more often than the rest of the pool ({rate:.0%} of their jobs): "
                       f"sequential test {evidence_sum:.1f} >= {policy.detector_h:g}")
    streak = failures_in_a_row(records)
    if policy.quarantine_consecutive and streak >= policy.quarantine_consecutive:
        reasons.append(f"{streak} failures in a row blamed on the runner")
    p0 = blame_rate(pool, name, policy, now)
    if policy.quarantine_score and s >= policy.quarantine_score \
            and s / policy.window >= p0 + policy.quarantine_margin:
        reasons.append(f"score {s:g} over its last {policy.window} jobs (rest of the pool: {p0:.2f} per job)")
    infra = repeated_infra(records, policy, now)
    if infra:
        times = "twice" if policy.infra_repeat_count == 2 else f"{policy.infra_repeat_count} time(s)"
        reasons.append(f"the same runner error {times} within {policy.infra_repeat_hours:g} h: {infra}")
    if not reasons:
        if s >= policy.warn_score:
            return Decision("warn", name, f"score {s:g} over its last {policy.window} jobs")
        return Decision("none", name)
    evidence = tuple(r.job_id for r in records[-policy.window:] if r.weight > 0)
    reason = "; ".join(reasons)
    if state.exempt:
        return Decision("hold", name, f"exempt; would have quarantined: {reason}", evidence)
    at_warn = [n for n, st in members.items() if st.warn_since is not None
               and now - st.warn_since <= policy.storm_hours * 3600 and not st.quarantined]
    if len(at_warn) >= policy.storm_fraction * len(members) and len(members) > 1:
        return Decision("storm", name, f"{len(at_warn)} of {len(members)} runners at warn level within "
                                       f"{policy.storm_hours:g} h: a pool-wide cause is likelier", evidence)
    carrying = sum(1 for st in members.values() if st.carries_label)
    if carrying - 1 < pool_floor(members, policy):
        return Decision("hold", name, f"pool floor: only {carrying} runners carry the label "
                                      f"(floor {pool_floor(members, policy)}); would have quarantined: {reason}",
                        evidence)
    if not on_probation and last_auto_quarantine is not None \
            and now - last_auto_quarantine < policy.rate_limit_hours * 3600:
        return Decision("hold", name, f"rate limit: one automatic quarantine per {policy.rate_limit_hours:g} h; "
                                      f"would have quarantined: {reason}", evidence)
    return Decision("quarantine", name, reason, evidence, past_rate_limit=on_probation)
