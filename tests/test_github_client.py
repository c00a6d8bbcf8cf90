"""The GitHub client against the strict fake: tokens, retries, rate limits, dry-run."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from gidgethub import BadRequest, GitHubBroken

from bot.cli import main as nimbys
from bot.github.client import DryRunLog, GitHubClient, wait_for_limit
from bot.github.tokens import REFRESH_MARGIN_SECONDS, InstallationTokens
from bot.settings import Settings

RUNNERS = "/orgs/{org}/actions/runners"


def with_client(settings: Settings, body: Callable[..., Awaitable[Any]], *, dry_run: bool = False,
                clients: int = 1, retries: int = 3, max_wait: float = 900.0) -> Any:
    async def main() -> Any:
        rc = aioredis.Redis.from_url(settings.redis_url)
        async with aiohttp.ClientSession() as session:
            made = []
            for _ in range(clients):
                tokens = InstallationTokens(session, rc, app_id="4242", private_key=str(settings.private_key),
                                            base_url=settings.github_api_url, user_agent="t", prefix="nimbys")
                made.append(GitHubClient(
                    session, base_url=settings.github_api_url, user_agent="nimbys-bot", installation_id=1,
                    tokens=tokens, dry_run=DryRunLog(rc, "nimbys", 100) if dry_run else None,
                    redis_client=rc, stats_key="nimbys:stats:github", retries=retries, max_wait=max_wait,
                    retry_base=0.01))
            try:
                return await body(*made)
            finally:
                await rc.aclose()

    return asyncio.run(main())


def test_installation_token_is_minted_once_and_shared_through_redis(settings_for, fake_github, r) -> None:  # type: ignore[no-untyped-def]
    fake_github.state.add_runner("aigdat", "a-stx-1", ["stx"])
    settings = settings_for(live=True, github_url=fake_github.url)

    async def body(a: GitHubClient, b: GitHubClient) -> None:
        for gh in (a, b, a):
            data = await gh.getitem(RUNNERS, {"org": "aigdat"})
            assert data["total_count"] == 1

    with_client(settings, body, clients=2)
    assert len(fake_github.calls_to("POST", "/access_tokens$")) == 1
    assert all(c.auth.startswith("token ghs_") for c in fake_github.calls_to("GET", "/runners$"))
    ttl = r.ttl("nimbys:token:1")
    assert 3600 - REFRESH_MARGIN_SECONDS - 10 < ttl <= 3600 - REFRESH_MARGIN_SECONDS
    assert r.hget("nimbys:stats:github", "status:200") == b"3"
    # A new process finds the token in Redis and mints nothing.
    with_client(settings, lambda gh: gh.getitem(RUNNERS, {"org": "aigdat"}))
    assert len(fake_github.calls_to("POST", "/access_tokens$")) == 1


def test_server_errors_are_retried_with_backoff(settings_for, fake_github) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for(live=True, github_url=fake_github.url)
    fake_github.fail_next("GET", "/runners$", 502, times=2)
    data = with_client(settings, lambda gh: gh.getitem(RUNNERS, {"org": "aigdat"}))
    assert data["total_count"] == 0
    assert [c.status for c in fake_github.calls_to("GET", "/runners$")] == [502, 502, 200]
    fake_github.fail_next("GET", "/runners$", 503, times=5)
    with pytest.raises(GitHubBroken):
        with_client(settings, lambda gh: gh.getitem(RUNNERS, {"org": "aigdat"}), retries=2)


def test_secondary_rate_limit_waits_retry_after(settings_for, fake_github) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for(live=True, github_url=fake_github.url)
    fake_github.fail_next("GET", "/runners$", 403, headers={"retry-after": "1"},
                          message="You have exceeded a secondary rate limit")
    started = time.monotonic()
    with_client(settings, lambda gh: gh.getitem(RUNNERS, {"org": "aigdat"}))
    assert time.monotonic() - started >= 1.0
    assert [c.status for c in fake_github.calls_to("GET", "/runners$")] == [403, 200]


def test_primary_rate_limit_waits_until_reset(settings_for, fake_github) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for(live=True, github_url=fake_github.url)
    reset = int(time.time()) + 1
    fake_github.fail_next("GET", "/runners$", 403, headers={
        "x-ratelimit-remaining": "0", "x-ratelimit-limit": "5000", "x-ratelimit-reset": str(reset)},
        message="API rate limit exceeded")
    with_client(settings, lambda gh: gh.getitem(RUNNERS, {"org": "aigdat"}))
    assert time.time() >= reset
    assert [c.status for c in fake_github.calls_to("GET", "/runners$")] == [403, 200]


def test_a_wait_longer_than_allowed_is_left_to_the_worker_retry(settings_for, fake_github) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for(live=True, github_url=fake_github.url)
    fake_github.fail_next("GET", "/runners$", 429, headers={"retry-after": "3600"})
    started = time.monotonic()
    with pytest.raises(BadRequest):
        with_client(settings, lambda gh: gh.getitem(RUNNERS, {"org": "aigdat"}), max_wait=60)
    assert time.monotonic() - started < 5


def test_rate_limit_decisions() -> None:
    def exc(status: int, headers: dict[str, str], msg: str = "") -> Any:
        return BadRequest(status, msg, headers=headers)  # type: ignore[arg-type]

    assert wait_for_limit(exc(403, {"retry-after": "7"}), 0) == 7
    assert wait_for_limit(exc(403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "100"}), 50) == 51
    assert wait_for_limit(exc(403, {}, "You have exceeded a secondary rate limit"), 0) == 60
    assert wait_for_limit(exc(429, {}), 0) == 60
    assert wait_for_limit(exc(403, {}, "Resource not accessible by integration"), 0) is None
    assert wait_for_limit(exc(404, {"retry-after": "1"}), 0) is None


def test_dry_run_makes_no_write_and_records_it(settings_for, fake_github, r, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for(live=True, github_url=fake_github.url)

    async def body(gh: GitHubClient) -> Any:
        await gh.getitem(RUNNERS, {"org": "aigdat"})  # reads still happen
        return await gh.post("/repos/{owner}/{repo}/issues", {"owner": "aigdat", "repo": "nimbys"},
                             data={"title": "Runner x-stx-1 quarantined", "assignees": ["x"]})

    assert with_client(settings, body, dry_run=True) == {}
    assert not fake_github.calls_to("POST", "/issues$")
    [entry] = [json.loads(x) for x in r.lrange("nimbys:dry-run:actions", 0, -1)]
    assert entry["method"] == "POST" and entry["path"] == "/repos/aigdat/nimbys/issues"
    assert entry["body"]["title"] == "Runner x-stx-1 quarantined"
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    assert nimbys(["actions"]) == 0
    assert "POST   /repos/aigdat/nimbys/issues" in capsys.readouterr().out


def test_the_fake_rejects_what_github_would(settings_for, fake_github) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for(live=True, github_url=fake_github.url)

    async def body(gh: GitHubClient) -> None:
        with pytest.raises(BadRequest):
            await gh.post("/repos/{owner}/{repo}/issues", {"owner": "aigdat", "repo": "nimbys"},
                          data={"titel": "typo"})

    with_client(settings, body)
    assert len(fake_github.violations) == 1 and "title" in fake_github.violations[0]
    fake_github.violations.clear()
