"""nimbys backtest and nimbys simulate: same policy code, machine-readable output, nothing left behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import redis

from bot.runner_health.simulate import SimConfig, Truth, generate
from tests.conftest import ROOT


def run(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(ROOT), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300, env=env)


def test_backtest_jsonl_decisions_and_summary(tmp_path: Path, redis_url: str) -> None:
    truth = Truth()
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(p) + "\n" for p in generate(SimConfig(jobs=800, seed=3), truth)))
    done = run("backtest", str(events), "--format", "jsonl", env_extra={"REDIS_URL": redis_url})
    assert done.returncode == 0, done.stderr
    lines = [json.loads(x) for x in done.stdout.splitlines()]
    *decisions, last = lines
    assert set(last) == {"summary"}
    assert last["summary"]["events"] == 800 and last["summary"]["tracked_jobs"] == 800
    for d in decisions:
        assert set(d) == {"seq", "action", "runner", "reason", "evidence"}
        assert d["action"] in {"warn", "quarantine", "storm", "hold", "probation_end", "removed_by_person"}
    assert any(d["action"] == "quarantine" and d["runner"] in truth.bad for d in decisions)
    assert not redis.Redis.from_url(redis_url).keys("nimbys-backtest-*")  # nothing left behind


def test_backtest_on_a_private_redis_and_bad_input(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(p) + "\n" for p in generate(SimConfig(jobs=200, seed=4))))
    done = run("backtest", str(events))
    assert done.returncode == 0 and "tracked jobs" in done.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    failed = run("backtest", str(bad))
    assert failed.returncode == 2 and "bad.jsonl:1" in failed.stderr


def test_simulator_figures_within_generous_bounds(redis_url: str) -> None:
    done = run("simulate", "--jobs", "3000", "--bad", "2", "--bad-rate", "0.6", "--seed", "2", "--backtest",
               env_extra={"REDIS_URL": redis_url})
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["bad_caught"] == 2
    assert figures["jobs_until_caught_max"] <= 80
    assert figures["code_bug_quarantines"] <= 1
    assert figures["false_quarantines"] <= 2


def test_simulated_stream_is_realistic() -> None:
    truth = Truth()
    payloads = list(generate(SimConfig(jobs=1000, seed=5, code_bug_rate=0.05), truth))
    runners = {p["workflow_job"]["runner_name"] for p in payloads}
    attempts = [p["workflow_job"]["run_attempt"] for p in payloads]
    assert len(runners) == 12 and max(attempts) >= 2 and truth.code_jobs
    assert {p["workflow_job"]["conclusion"] for p in payloads} == {"success", "failure"}


def test_the_simulator_can_give_bad_runners_infra_signs() -> None:
    """--infra-share: a bad runner's own failures fail "Set up runner" (as a pre-job health check makes them)."""
    truth = Truth()
    payloads = list(generate(SimConfig(jobs=1500, seed=4, infra_share=1.0), truth))
    setup_failed = {p["workflow_job"]["runner_name"] for p in payloads
                    if any(s["name"] == "Set up runner" and s["conclusion"] == "failure"
                           for s in p["workflow_job"]["steps"])}
    assert setup_failed and setup_failed <= truth.bad
    plain = list(generate(SimConfig(jobs=1500, seed=4)))  # the default draws the same stream as before
    assert not any(s["name"] == "Set up runner" for p in plain for s in p["workflow_job"]["steps"])
