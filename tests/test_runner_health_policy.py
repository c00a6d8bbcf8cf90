"""The runner-health policy core (pure): payload reading, attribution, score and safeguards."""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import pytest

from bot.runner_health.decide import (
    CODE,
    DISCORDANT,
    INFRA,
    UNRESOLVED,
    Record,
    RunnerState,
    classify,
    cusum,
    decide,
    failures_in_a_row,
    score,
)
from bot.runner_health.outcomes import JobOutcome, infra_signature, outcome_from_payload
from bot.runner_health.policy import HealthPolicy, PolicyError, load_policy
from tests.conftest import FIXTURES

POLICY = HealthPolicy()
EXAMPLE = json.loads((FIXTURES / "webhooks" / "workflow_job.completed.1.json").read_text())
HOUR = 3600.0


def payload(runner: str = "jefowers-stx-1", conclusion: str = "failure", job_id: int = 1, sha: str = "abc",
            labels: tuple[str, ...] = ("stx",), steps: list[tuple[str, str | None]] | None = None) -> dict:
    data = copy.deepcopy(EXAMPLE)
    job = data["workflow_job"]
    job.update(id=job_id, runner_name=runner, conclusion=conclusion, head_sha=sha, labels=list(labels),
               workflow_name="Test NPU", name="npu")
    job["steps"] = [{"name": n, "conclusion": c, "status": "completed", "number": i}
                    for i, (n, c) in enumerate(steps or [("Set up job", "success"), ("Run", conclusion)], 1)]
    data["repository"] = {"full_name": "aigdat/gaia"}
    return data


def outcome(**kw: object) -> JobOutcome:
    result = outcome_from_payload(payload(**kw), POLICY)  # type: ignore[arg-type]
    assert result is not None
    return result


def test_only_completed_pool_jobs_with_a_runner_are_tracked() -> None:
    assert outcome().runner == "jefowers-stx-1" and outcome().key.repo == "aigdat/gaia"
    assert outcome_from_payload(payload(labels=("ubuntu-latest",)), POLICY) is None
    assert outcome_from_payload(payload(conclusion="cancelled"), POLICY) is None
    no_runner = payload()
    no_runner["workflow_job"]["runner_name"] = None
    assert outcome_from_payload(no_runner, POLICY) is None
    assert outcome_from_payload({"action": "completed", "workflow_job": "garbage"}, POLICY) is None
    assert outcome_from_payload(payload(labels=("STX-TEST",)), POLICY) is not None


def test_infra_signs() -> None:
    setup = outcome(steps=[("Set up job", "failure")])
    assert infra_signature(setup, [], POLICY) == "step 'Set up job' failed"
    vanished = outcome(steps=[("Set up job", "success"), ("Run", None)])
    assert "vanished" in (infra_signature(vanished, [], POLICY) or "")
    note = "The self-hosted runner: jefowers-stx-1 lost communication with the server. Verify the machine..."
    assert "lost communication" in (infra_signature(outcome(), [note], POLICY) or "")
    assert infra_signature(outcome(), ["Process completed with exit code 1."], POLICY) is None
    assert infra_signature(outcome(conclusion="success"), [note], POLICY) is None


def test_attribution_from_other_runs_of_the_same_key() -> None:
    bad = outcome(runner="a-stx-1", job_id=1)
    assert classify(bad, [bad], None, POLICY).cls == UNRESOLVED
    passed_elsewhere = outcome(runner="b-stx-1", conclusion="success", job_id=2)
    assert classify(bad, [bad, passed_elsewhere], None, POLICY).cls == DISCORDANT
    failed_elsewhere = outcome(runner="b-stx-1", job_id=3)
    assert classify(bad, [bad, passed_elsewhere, failed_elsewhere], None, POLICY).cls == CODE
    assert classify(bad, [bad, failed_elsewhere], "step 'Set up job' failed", POLICY).cls == INFRA
    rerun_same_runner = outcome(runner="a-stx-1", job_id=4)
    assert classify(bad, [bad, rerun_same_runner], None, POLICY).cls == UNRESOLVED
    assert classify(bad, [bad], None, POLICY).weight == 0.25


def pool(n: int, **states: RunnerState) -> dict[str, RunnerState]:
    runners = {f"r{i}-stx-1": RunnerState(f"r{i}-stx-1") for i in range(n)}
    runners.update(states)
    return runners


def failing(name: str, weights: list[float], infra: str | None = None, start: float = 0.0) -> RunnerState:
    records = [Record(i, "gaia|npu|npu", start + i * 60, w, DISCORDANT if w >= 1 else None,
                      infra if w >= 1 else None) for i, w in enumerate(weights)]
    return RunnerState(name, records)


def test_score_and_runs() -> None:
    records = failing("x", [0, 1, 0.25, 1, 1]).records
    assert score(records, POLICY) == 3.25
    assert failures_in_a_row(records) == 2


def test_the_sequential_test_quarantines_a_runner_failing_far_more_than_its_peers() -> None:
    peers = {f"p{i}": RunnerState(f"p{i}", job_count=100, fail_sum=5) for i in range(6)}  # 5 % flaky
    runners = {**peers, "bad": failing("bad", [0, 1, 1, 1, 1, 1])}
    assert decide("bad", {**peers, "bad": failing("bad", [0, 1, 1, 1])}, POLICY, 10 * HOUR, None).action == "warn"
    decision = decide("bad", runners, POLICY, now=10 * HOUR, last_auto_quarantine=None)
    assert decision.action == "quarantine" and "sequential test" in decision.reason
    assert decision.evidence == (1, 2, 3, 4, 5)
    assert cusum(failing("x", [1, 0, 0, 0, 0, 0, 0, 0]).records, 0.05, POLICY) == 0.0  # a one-off fades
    code = [Record(i, "n", i, 0.0, CODE, failed=True) for i in range(10)]
    assert cusum(code, 0.05, POLICY) == 0.0  # failures of the code say nothing about the runner


def test_the_designs_starting_rules_can_be_switched_on() -> None:
    import dataclasses

    policy = dataclasses.replace(POLICY, quarantine_consecutive=3, detector_h=1000)
    decision = decide("bad", pool(6, bad=failing("bad", [0, 0, 1, 1, 1])), policy, 10 * HOUR, None)
    assert decision.action == "quarantine" and "3 failures in a row" in decision.reason


def test_warn_without_quarantine_and_nothing_for_a_healthy_runner() -> None:
    runners = pool(6, meh=failing("meh", [1, 0, 1, 0, 0]))
    assert decide("meh", runners, POLICY, 10 * HOUR, None).action == "warn"
    runners["fine"] = failing("fine", [0, 0, 0.25, 0])
    assert decide("fine", runners, POLICY, 10 * HOUR, None).action == "none"


def test_repeated_infra_signature_within_a_day() -> None:
    state = failing("x", [1, 0, 0, 0, 1], infra="step 'Set up job' failed")
    runners = pool(6, x=state)
    assert "same runner error twice" in decide("x", runners, POLICY, 1 * HOUR, None).reason


def test_one_failed_health_check_can_be_enough() -> None:
    """With a pre-job health check on the laptops, ``infra_repeat_count: 1`` acts on the first failed check."""
    state = failing("x", [0, 0, 0, 0, 1], infra="step 'Set up runner' failed")
    runners = pool(6, x=state)
    assert decide("x", runners, POLICY, 1 * HOUR, None).action != "quarantine"  # the design's default: twice
    once = replace(POLICY, infra_repeat_count=1)
    decision = decide("x", runners, once, 1 * HOUR, None)
    assert decision.action == "quarantine" and "1 time(s)" in decision.reason
    assert decide("x", runners, replace(POLICY, infra_repeat_count=0), 1 * HOUR, None).action != "quarantine"
    assert load_policy("health:\n  infra_repeat_count: 1\n").infra_repeat_count == 1


@pytest.mark.parametrize("guard,setup,word", [
    ("floor", lambda p: [(setattr(s, "carries_label", False), setattr(s, "quarantined", True))
                         for s in list(p.values())[:2]], "pool floor"),
    ("rate", lambda p: None, "rate limit"),
    ("exempt", lambda p: setattr(p["bad"], "exempt", True), "exempt"),
])
def test_safeguards_hold_a_quarantine(guard: str, setup, word: str) -> None:  # type: ignore[no-untyped-def]
    runners = pool(5, bad=failing("bad", [1] * 6))
    setup(runners)
    last = 9 * HOUR if guard == "rate" else None
    decision = decide("bad", runners, POLICY, 10 * HOUR, last)
    assert (decision.action, word in decision.reason) == ("hold", True), decision


def test_storm_guard_quarantines_nobody() -> None:
    runners = pool(6, bad=failing("bad", [1] * 6))
    for state in list(runners.values())[:4]:
        state.warn_since = 9.5 * HOUR
    assert decide("bad", runners, POLICY, 10 * HOUR, None).action == "storm"


def test_probation_goes_past_the_rate_limit_but_not_the_floor() -> None:
    state = failing("back", [0, 0, 1])
    state.probation_left = 3
    runners = pool(5, back=state)
    decision = decide("back", runners, POLICY, 10 * HOUR, last_auto_quarantine=9.9 * HOUR)
    assert decision.action == "quarantine" and decision.past_rate_limit
    for other in list(runners.values())[:3]:
        other.carries_label, other.quarantined = False, True
    assert decide("back", runners, POLICY, 10 * HOUR, 9.9 * HOUR).action == "hold"


def test_a_person_or_an_earlier_quarantine_is_never_second_guessed() -> None:
    state = failing("x", [1, 1, 1])
    state.removed_by_person = True
    assert decide("x", pool(5, x=state), POLICY, 10 * HOUR, None).action == "none"


def test_policy_file() -> None:
    policy = load_policy("health:\n  mode: shadow\n  window: 12\n  exempt: [lab-stx-1]\n"
                         "  maintainers: {x-stx-1: someone}\n  rate-limit-hours: 1\n")
    assert (policy.shadow, policy.window, policy.exempt, policy.rate_limit_hours) == (True, 12, ("lab-stx-1",), 1.0)
    assert policy.maintainers == {"x-stx-1": "someone"}
    for bad, words in [("health: {windw: 3}", "unknown setting"), ("health: {mode: loud}", "live or shadow"),
                       ("health: {window: -1}", "non-negative"), ("health: {exempt: x}", "list of strings")]:
        with pytest.raises(PolicyError, match=words):
            load_policy(bad)
