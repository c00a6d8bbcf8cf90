"""Runner health end to end: real worker(s), real Redis, the strict fake GitHub keeping runners and issues."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import itertools
import json
import logging
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from bot.context import BotContext
from bot.github.client import GitHubClient
from bot.github.tokens import InstallationTokens
from bot.intake.queue import Keys
from bot.runner_health.actions import restore
from bot.runner_health.ledger import Ledger
from bot.runner_health.policy import load_policy
from tests.conftest import FIXTURES
from tests.test_worker import enqueue, run_until

KEYS = Keys("nimbys")
EXAMPLE = json.loads((FIXTURES / "webhooks" / "workflow_job.completed.1.json").read_text())
ORG, REPO, ISSUES = "aigdat", "aigdat/gaia", "aigdat/nimbys"
ids = itertools.count(5000)
STREAK = 6  # blamed failures the sequential test needs (h = 9) against a healthy pool's prior


class Pool:
    """Runners in the fake GitHub, and workflow_job payloads for them."""

    def __init__(self, fake: Any, names: list[str]) -> None:
        self.fake = fake
        self.ids = {}
        for name in names:
            alias = name.split("-stx")[0]
            runner = fake.state.add_runner(ORG, name, ["self-hosted", "Windows", "stx", alias])
            self.ids[name] = runner.id
        self.clock = 1_800_000_000.0

    def job(self, runner: str, conclusion: str, sha: str, attempt: int = 1, name: str = "npu",
            steps: list[tuple[str, str | None]] | None = None) -> dict[str, Any]:
        self.clock += 600
        data = copy.deepcopy(EXAMPLE)
        job = data["workflow_job"]
        job.update(id=next(ids), run_id=900 + attempt, run_attempt=attempt, runner_name=runner,
                   runner_id=self.ids[runner], conclusion=conclusion, head_sha=sha, labels=["stx"],
                   workflow_name="Test NPU 🌩️", name=name,
                   html_url=f"https://github.com/{REPO}/actions/runs/1/job/{job['id']}")
        job["completed_at"] = _iso(self.clock)
        job["steps"] = [{"name": n, "conclusion": c, "status": "completed", "number": i}
                        for i, (n, c) in enumerate(steps or [("Set up job", "success"), ("Test", conclusion)], 1)]
        data["repository"] = {"full_name": REPO, "owner": {"login": ORG}}
        data["organization"] = {"login": ORG}
        data["installation"] = {"id": 1}
        return data

    def bad_streak(self, bad: str, good: str, commits: int) -> list[dict[str, Any]]:
        """`bad` fails each commit's job; a re-run of it passes on `good` (DISCORDANT evidence)."""
        out = []
        for _ in range(commits):
            sha = f"c{next(ids)}"
            out += [self.job(bad, "failure", sha), self.job(good, "success", sha, attempt=2)]
        return out

    def labels(self, runner: str) -> list[str]:
        return self.fake.state.runners[ORG][self.ids[runner]].labels


def _iso(ts: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def feed(settings: Any, r: Any, payloads: list[dict[str, Any]], workers: int = 1) -> None:
    deliveries = [enqueue(r, "workflow_job", p) for p in payloads]
    run_until(settings, lambda: all(r.get(KEYS.status(d)) in (b"done", b"failed") for d in deliveries),
              workers=workers, timeout=60)
    assert all(r.get(KEYS.status(d)) == b"done" for d in deliveries), r.xrange(KEYS.dead)


def audit(r: Any) -> list[tuple[str, str]]:
    return [(f[b"action"].decode(), f[b"runner"].decode()) for _id, f in r.xrange("nimbys:audit")]


def live(settings_for: Any, fake: Any, policy: str = "") -> Any:
    import tempfile

    path = tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False)
    path.write("health:\n  issues-repo: aigdat/nimbys\n  admins: [pool-admin]\n" + policy)
    path.close()
    return settings_for(live=True, github_url=fake.url, policy_path=path.name, max_attempts=2)


def issues(fake: Any) -> dict[int, dict[str, Any]]:
    return fake.state.issues.get(ISSUES, {})


def test_a_laptop_failing_where_others_pass_is_taken_out_once(settings_for, fake_github, r) -> None:  # type: ignore[no-untyped-def]
    pool = Pool(fake_github, [f"{a}-stx-1" for a in ("jefowers", "amy", "bo", "cy", "di", "ed")])
    fake_github.state.users.add("jefowers")
    settings = live(settings_for, fake_github)
    feed(settings, r, pool.bad_streak("jefowers-stx-1", "amy-stx-1", STREAK))
    assert "stx" not in pool.labels("jefowers-stx-1")
    assert len(fake_github.calls_to("DELETE", "/labels/stx$")) == 1
    [issue] = issues(fake_github).values()
    assert issue["assignees"] == ["jefowers"] and "jefowers-stx-1" in issue["title"]
    assert issue["body"].count("| DISCORDANT |") >= 2 and "amy-stx-1: success" in issue["body"]
    assert "sequential test" in issue["body"]
    assert "/nimbys restore jefowers-stx-1" in issue["body"]
    assert len(fake_github.state.reruns) == STREAK  # each job in evidence re-run once
    assert ("quarantine", "jefowers-stx-1") in audit(r)
    # Everyone else is untouched; more failures of a quarantined runner change nothing.
    assert all("stx" in pool.labels(n) for n in pool.ids if n != "jefowers-stx-1")
    feed(settings, r, [pool.job("jefowers-stx-1", "failure", "late")])
    assert len(fake_github.calls_to("DELETE", "/labels/")) == 1 and len(issues(fake_github)) == 1


def test_a_commit_failing_on_every_runner_quarantines_nobody(settings_for, fake_github, r) -> None:  # type: ignore[no-untyped-def]
    names = [f"r{i}-stx-1" for i in range(5)]
    pool = Pool(fake_github, names)
    settings = live(settings_for, fake_github)
    payloads = [pool.job(n, "failure", f"broken{k}") for k in range(4) for n in names]
    feed(settings, r, payloads)
    assert not fake_github.calls_to("DELETE", "/labels/") and not issues(fake_github)
    assert not [a for a in audit(r) if a[0] == "quarantine"]


def test_a_redelivered_event_changes_nothing(settings_for, fake_github, r) -> None:  # type: ignore[no-untyped-def]
    pool = Pool(fake_github, [f"r{i}-stx-1" for i in range(6)])
    settings = live(settings_for, fake_github)
    streak = pool.bad_streak("r0-stx-1", "r1-stx-1", STREAK - 2)
    feed(settings, r, streak)
    before = audit(r)
    feed(settings, r, streak)  # the same jobs again, under new delivery ids
    assert audit(r) == before and not fake_github.calls_to("DELETE", "/labels/")


def test_pool_floor_holds_a_quarantine(settings_for, fake_github, r) -> None:  # type: ignore[no-untyped-def]
    # Floor: three runners and a floor of three: nobody can leave.
    small = Pool(fake_github, ["a-stx-1", "b-stx-1", "c-stx-1"])
    settings = live(settings_for, fake_github, "  floor-min: 3\n")
    feed(settings, r, small.bad_streak("a-stx-1", "b-stx-1", STREAK))
    assert not fake_github.calls_to("DELETE", "/labels/")
    assert any(a == ("hold", "a-stx-1") for a in audit(r))


def test_rate_limit_holds_a_second_quarantine(settings_for, fake_github, r) -> None:  # type: ignore[no-untyped-def]
    pool = Pool(fake_github, [f"r{i}-stx-1" for i in range(8)])
    settings = live(settings_for, fake_github)
    feed(settings, r, pool.bad_streak("r0-stx-1", "r2-stx-1", STREAK) + pool.bad_streak("r1-stx-1", "r3-stx-1", STREAK))
    assert [a for a in audit(r) if a[0] == "quarantine"] == [("quarantine", "r0-stx-1")]
    assert ("hold", "r1-stx-1") in audit(r)
    assert "stx" in pool.labels("r1-stx-1")


def test_storm_guard_opens_one_pool_wide_issue(settings_for, fake_github, r) -> None:  # type: ignore[no-untyped-def]
    # Many runners failing raise the pool's own failure rate, which already quiets the sequential
    # test; the storm guard is for absolute signs: here the same runner error twice on one laptop
    # while half the pool is at warn level.
    names = [f"r{i}-stx-1" for i in range(6)]
    pool = Pool(fake_github, names)
    settings = live(settings_for, fake_github)
    payloads = pool.bad_streak("r1-stx-1", "r5-stx-1", 2) + pool.bad_streak("r2-stx-1", "r4-stx-1", 2)
    payloads += pool.bad_streak("r0-stx-1", "r3-stx-1", 1)
    setup_failed = [("Set up job", "failure")]
    payloads += [pool.job("r0-stx-1", "failure", f"i{i}", steps=setup_failed) for i in range(2)]
    feed(settings, r, payloads)
    assert not fake_github.calls_to("DELETE", "/labels/")
    storm = [i for i in issues(fake_github).values() if "nimbys-storm" in i["body"]]
    assert len(storm) == 1 and "@pool-admin" in storm[0]["body"]
    assert ("storm", "r0-stx-1") in audit(r)


def test_shadow_mode_changes_no_label_and_says_would_have(settings_for, fake_github, r) -> None:  # type: ignore[no-untyped-def]
    pool = Pool(fake_github, [f"r{i}-stx-1" for i in range(6)])
    settings = live(settings_for, fake_github, "  mode: shadow\n")
    feed(settings, r, pool.bad_streak("r0-stx-1", "r1-stx-1", STREAK))
    assert not fake_github.calls_to("DELETE", "/labels/") and "stx" in pool.labels("r0-stx-1")
    [issue] = issues(fake_github).values()
    assert "would have been taken out" in issue["body"] and "(shadow)" in issue["title"]


def test_an_exempt_runner_is_never_quarantined(settings_for, fake_github, r) -> None:  # type: ignore[no-untyped-def]
    pool = Pool(fake_github, [f"r{i}-stx-1" for i in range(6)])
    settings = live(settings_for, fake_github, "  exempt: [r0-stx-1]\n")
    feed(settings, r, pool.bad_streak("r0-stx-1", "r1-stx-1", STREAK + 1))
    assert not fake_github.calls_to("DELETE", "/labels/") and ("hold", "r0-stx-1") in audit(r)


async def _restore(settings: Any, runner: str, by: str) -> str:
    client = aioredis.Redis.from_url(settings.redis_url)
    async with aiohttp.ClientSession() as session:
        ctx = BotContext(settings=settings, redis=client, session=session)
        tokens = InstallationTokens(session, client, app_id="4242", private_key=str(settings.private_key),
                                    base_url=settings.github_api_url, user_agent="t", prefix="nimbys")
        gh = GitHubClient(session, base_url=settings.github_api_url, user_agent="t", installation_id=1,
                          tokens=tokens, dry_run=None)
        done = await restore(gh, ctx, Ledger(client, "nimbys", ctx.health_policy), ORG, runner, by)
    await client.aclose()
    return done


def test_restore_then_probation_and_a_second_quarantine_comments_on_the_open_issue(  # type: ignore[no-untyped-def]
        settings_for, fake_github, r) -> None:
    pool = Pool(fake_github, [f"r{i}-stx-1" for i in range(6)])
    settings = live(settings_for, fake_github)
    feed(settings, r, pool.bad_streak("r0-stx-1", "r1-stx-1", STREAK))
    [number] = issues(fake_github)
    assert asyncio.run(_restore(settings, "r0-stx-1", "someone")) == "r0-stx-1 restored; on probation for 5 jobs"
    assert "stx" in pool.labels("r0-stx-1") and issues(fake_github)[number]["state"] == "closed"
    restored = r.hgetall("nimbys:health:state:r0-stx-1")  # a fresh start: no records, and no totals either
    assert not r.exists("nimbys:health:records:r0-stx-1")
    assert (restored[b"job_count"], restored[b"fail_sum"], float(restored[b"blame_sum"])) == (b"0", b"0", 0.0)
    # On probation: one blamed failure takes it out again, past the 6 h rate limit.
    feed(settings, r, pool.bad_streak("r0-stx-1", "r1-stx-1", 1))  # one blamed failure on probation
    assert "stx" not in pool.labels("r0-stx-1")
    assert [a for a in audit(r) if a[0] == "quarantine"] == [("quarantine", "r0-stx-1")] * 2
    # A new issue (the old one is closed); were it open, it would get a comment instead:
    assert len(issues(fake_github)) == 2
    reopened = issues(fake_github)[max(issues(fake_github))]
    state = r.hgetall("nimbys:health:state:r0-stx-1")
    assert int(state[b"issue_number"]) == max(issues(fake_github)) and reopened["state"] == "open"
    r.hset("nimbys:health:state:r0-stx-1", mapping={"quarantined": 0, "probation_left": 0})  # put back by hand
    r.delete("nimbys:health:last-auto-quarantine")
    feed(settings, r, pool.bad_streak("r0-stx-1", "r1-stx-1", STREAK))
    assert len(issues(fake_github)) == 2
    assert any(c["body"].startswith("Quarantined again") for c in fake_github.state.comments.values())


def test_a_runner_deleted_from_github_is_logged_clearly(settings_for, fake_github, r, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.WARNING)
    pool = Pool(fake_github, [f"r{i}-stx-1" for i in range(6)])
    settings = live(settings_for, fake_github)
    streak = pool.bad_streak("r0-stx-1", "r1-stx-1", STREAK)
    del fake_github.state.runners[ORG][pool.ids["r0-stx-1"]]
    feed(settings, r, streak)
    assert any("no longer exists on GitHub" in rec.getMessage() for rec in caplog.records)
    assert ("runner_gone", "r0-stx-1") in audit(r)


def test_two_workers_decide_as_one(settings_for, fake_github, r) -> None:  # type: ignore[no-untyped-def]
    pool = Pool(fake_github, [f"r{i}-stx-1" for i in range(8)])
    settings = live(settings_for, fake_github)
    payloads = pool.bad_streak("r0-stx-1", "r2-stx-1", STREAK + 1) + pool.bad_streak("r1-stx-1", "r3-stx-1",
                                                                                        STREAK + 1)
    feed(settings, r, payloads, workers=2)
    quarantines = [a for a in audit(r) if a[0] == "quarantine"]
    assert len(quarantines) == 1  # the rate limit holds the second, whichever came first
    assert len(fake_github.calls_to("DELETE", "/labels/")) == 1 and len(issues(fake_github)) == 1


def test_policy_defaults_and_settings_path(settings_for, fake_github) -> None:  # type: ignore[no-untyped-def]
    settings = live(settings_for, fake_github, "  window: 12\n")
    assert dataclasses.replace(settings).policy_path
    assert load_policy(open(settings.policy_path).read()).window == 12


def test_with_a_pre_job_health_check_one_failed_check_is_enough(settings_for, fake_github, r) -> None:  # type: ignore[no-untyped-def]
    """`infra-repeat-count: 1`: the laptop's first failed "Set up runner" (its health check) takes it out."""
    pool = Pool(fake_github, [f"r{i}-stx-1" for i in range(6)])
    settings = live(settings_for, fake_github, "  infra-repeat-count: 1\n")
    warmup = [pool.job(f"r{i % 6}-stx-1", "success", f"w{i}") for i in range(12)]
    check_failed = pool.job("r0-stx-1", "failure", "c1", steps=[("Set up job", "success"),
                                                                 ("Set up runner", "failure"), ("Test", "skipped")])
    feed(settings, r, [*warmup, check_failed])
    assert "stx" not in pool.labels("r0-stx-1")
    [issue] = issues(fake_github).values()
    assert "step 'Set up runner' failed" in issue["body"] and issue["state"] == "open"
    assert [a for a in audit(r) if a[0] == "quarantine"] == [("quarantine", "r0-stx-1")]


def test_runner_error_annotations_are_read_for_failed_jobs_only(settings_for, fake_github, r) -> None:  # type: ignore[no-untyped-def]
    """The check run's "lost communication" annotation is an INFRA sign; twice within a day takes the laptop out.

    Annotations are asked for failed jobs only, and not again when the same delivery comes back.
    """
    pool = Pool(fake_github, [f"r{i}-stx-1" for i in range(6)])
    settings = live(settings_for, fake_github)
    passed = [pool.job(f"r{i % 6}-stx-1", "success", f"w{i}") for i in range(12)]
    lost = [pool.job("r0-stx-1", "failure", f"l{k}") for k in range(2)]
    for job in lost:
        fake_github.state.annotations[job["workflow_job"]["id"]] = [
            "The self-hosted runner: r0-stx-1 lost communication with the server."]
    feed(settings, r, [*passed, *lost])
    assert len(fake_github.calls_to("GET", "/annotations$")) == 2  # the two failed jobs, none of the passed
    assert "stx" not in pool.labels("r0-stx-1")
    [issue] = issues(fake_github).values()
    assert "lost communication with the server" in issue["body"]
    feed(settings, r, [lost[0]])  # redelivered (a new delivery id, the same job): recorded already
    assert len(fake_github.calls_to("GET", "/annotations$")) == 2
