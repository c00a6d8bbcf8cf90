"""A synthetic pool, to measure the policy against the design's targets before trusting it.

Each commit starts several workflows of several jobs; each job lands on a random
runner; some commits break a job on every runner; any job may fail by chance
(flaky); bad runners (from a point in the stream on) fail at their own rate;
people re-run some failed jobs, which land on a random runner again. The stream
is `workflow_job` payloads as GitHub sends them; the truth (which runner is bad
since when, which jobs failed because of code) is kept aside to score the
decisions the backtest makes.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SimConfig:
    runners: int = 12
    jobs: int = 5000
    bad: int = 2
    bad_rate: float = 0.5
    flaky: float = 0.05
    code_bug_rate: float = 0.03
    seed: int = 1
    bad_after: float = 0.2  # bad runners turn bad after this fraction of the stream
    # Of a bad runner's own failures, the share that shows an INFRA sign: its "Set up runner" step
    # fails, as a pre-job health check (disk, NPU driver, power) makes a bad laptop's jobs fail.
    infra_share: float = 0.0
    rerun_rate: float = 0.5  # people re-run this share of failed jobs
    workflows: int = 3
    jobs_per_workflow: int = 2
    minutes_between_jobs: float = 4.0


@dataclass
class Truth:
    bad: set[str] = field(default_factory=set)
    bad_from_seq: int = 0
    code_jobs: set[int] = field(default_factory=set)
    runner_of_seq: list[str] = field(default_factory=list)


def _payload(job_id: int, runner: str, runner_id: int, conclusion: str, sha: str, workflow: str, name: str,
             attempt: int, at: float, setup_failed: bool = False) -> dict[str, Any]:
    steps = [{"name": "Set up job", "status": "completed", "conclusion": "success", "number": 1},
             {"name": "Test", "status": "completed", "conclusion": conclusion, "number": 2}]
    if setup_failed:
        steps[1:] = [{"name": "Set up runner", "status": "completed", "conclusion": "failure", "number": 2},
                     {"name": "Test", "status": "completed", "conclusion": "skipped", "number": 3}]
    stamp = dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "action": "completed",
        "workflow_job": {
            "id": job_id, "run_id": job_id // 10, "run_attempt": attempt, "head_sha": sha, "name": name,
            "workflow_name": workflow, "status": "completed", "conclusion": conclusion, "labels": ["stx"],
            "runner_id": runner_id, "runner_name": runner, "runner_group_name": "stx",
            "started_at": stamp, "completed_at": stamp,
            "html_url": f"https://github.com/aigdat/sim/actions/runs/{job_id // 10}/job/{job_id}",
            "steps": steps,
        },
        "repository": {"full_name": "aigdat/sim", "owner": {"login": "aigdat"}},
        "organization": {"login": "aigdat"},
    }


def generate(cfg: SimConfig, truth: Truth | None = None) -> Iterator[dict[str, Any]]:
    rng = random.Random(cfg.seed)
    runners = [f"sim{i:02d}-stx-1" for i in range(cfg.runners)]
    truth = truth if truth is not None else Truth()
    truth.bad = set(runners[:cfg.bad])
    truth.bad_from_seq = int(cfg.jobs * cfg.bad_after)
    names = [(f"workflow-{w}", f"job-{j}") for w in range(cfg.workflows) for j in range(cfg.jobs_per_workflow)]
    at = 1_800_000_000.0
    seq = 0
    job_id = 100_000
    commit = 0
    while seq < cfg.jobs:
        commit += 1
        sha = f"{commit:040x}"
        broken = {n for n in names if rng.random() < cfg.code_bug_rate}
        for workflow, name in names:
            attempt = 1
            while seq < cfg.jobs:
                runner = rng.choice(runners)
                setup_failed = False
                if (workflow, name) in broken:
                    failed = True
                    truth.code_jobs.add(job_id)
                elif runner in truth.bad and seq >= truth.bad_from_seq:
                    own = rng.random() < cfg.bad_rate
                    failed = own or rng.random() < cfg.flaky
                    setup_failed = own and cfg.infra_share > 0 and rng.random() < cfg.infra_share
                else:
                    failed = rng.random() < cfg.flaky
                at += cfg.minutes_between_jobs * 60
                truth.runner_of_seq.append(runner)
                yield _payload(job_id, runner, runners.index(runner) + 1, "failure" if failed else "success", sha,
                               workflow, name, attempt, at, setup_failed)
                job_id += 1
                seq += 1
                if not failed or attempt >= 3 or rng.random() >= cfg.rerun_rate:
                    break
                attempt += 1


def score_decisions(decisions: list[dict[str, Any]], truth: Truth) -> dict[str, Any]:
    """How the policy did against the truth: the figures the design's targets are about."""
    caught: dict[str, int] = {}
    false_quarantines = code_quarantines = 0
    for d in decisions:
        if d["action"] != "quarantine":
            continue
        runner, seq = d["runner"], d["seq"]
        if runner in truth.bad and seq >= truth.bad_from_seq:
            caught.setdefault(runner, seq)
        else:
            false_quarantines += 1
        evidence = d.get("evidence") or []
        if evidence and sum(1 for j in evidence if j in truth.code_jobs) * 2 > len(evidence):
            code_quarantines += 1
    delays = []
    for runner, seq in caught.items():
        delays.append(sum(1 for s in range(truth.bad_from_seq, seq + 1) if truth.runner_of_seq[s] == runner))
    guards = {a: sum(1 for d in decisions if d["action"] == a) for a in ("hold", "storm", "warn")}
    return {
        "bad_runners": len(truth.bad),
        "bad_caught": len(caught),
        "jobs_until_caught_median": statistics.median(delays) if delays else None,
        "jobs_until_caught_max": max(delays) if delays else None,
        "caught_within_10_jobs": sum(1 for x in delays if x <= 10),
        "false_quarantines": false_quarantines,
        "code_bug_quarantines": code_quarantines,
        "guard_activations": guards,
    }
