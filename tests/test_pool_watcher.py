"""The pool watcher against the fake GitHub: paginated runners, offline flags, the 10-day reminder."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from bot.context import BotContext
from bot.pool.watcher import org_client, watch_forever, watch_once
from tests.test_runner_health import ORG, Pool, feed, issues, live


def run(settings: Any, body: Any) -> Any:
    async def main() -> Any:
        client = aioredis.Redis.from_url(settings.redis_url)
        async with aiohttp.ClientSession() as session:
            ctx = BotContext(settings=settings, redis=client, session=session)
            try:
                return await body(ctx)
            finally:
                await client.aclose()

    return asyncio.run(main())


def test_watcher_lists_every_runner_flags_offline_and_reminds(settings_for, fake_github, r) -> None:  # type: ignore[no-untyped-def]
    names = [f"r{i:03d}-stx-1" for i in range(120)]  # more than one page of 100
    pool = Pool(fake_github, names)
    settings = live(settings_for, fake_github)
    feed(settings, r, pool.bad_streak("r000-stx-1", "r001-stx-1", 6))
    [number] = issues(fake_github)
    runners = fake_github.state.runners[ORG]
    runners[pool.ids["r000-stx-1"]].status = "offline"
    runners[pool.ids["r002-stx-1"]].status = "offline"
    runners[pool.ids["r003-stx-1"]].labels.remove("stx")  # a person took it out

    async def body(ctx: BotContext) -> None:
        gh = await org_client(ctx)
        assert gh is not None
        await watch_once(gh, ctx, ORG, now=time.time())
        await watch_once(gh, ctx, ORG, now=time.time() + 11 * 86400)
        await watch_once(gh, ctx, ORG, now=time.time() + 12 * 86400)  # reminded once only

    before = len(fake_github.calls_to("GET", f"^/orgs/{ORG}/actions/runners$"))
    run(settings, body)
    assert len(fake_github.calls_to("GET", f"^/orgs/{ORG}/actions/runners$")) - before == 6  # 2 pages x 3 polls
    assert r.scard("nimbys:health:pool") == 120
    assert r.hget("nimbys:health:state:r002-stx-1", "offline_since")
    assert r.hget("nimbys:health:state:r003-stx-1", "removed_by_person") == b"1"
    reminders = [c for c in fake_github.state.comments.values() if c["body"].startswith("Reminder:")]
    assert len(reminders) == 1 and reminders[0]["issue"] == number and "14 days" in reminders[0]["body"]


def test_only_one_worker_polls_per_interval(settings_for, fake_github, r) -> None:  # type: ignore[no-untyped-def]
    Pool(fake_github, ["a-stx-1", "b-stx-1"])
    settings = dataclasses.replace(live(settings_for, fake_github), watch_seconds=30)

    async def body(ctx: BotContext) -> None:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(watch_forever(ctx, stop)) for _ in range(3)]
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*tasks)

    run(settings, body)
    assert len(fake_github.calls_to("GET", f"^/orgs/{ORG}/actions/runners$")) == 1


def test_failed_deliveries_are_requested_again_once(settings_for, fake_github, r) -> None:  # type: ignore[no-untyped-def]
    from bot.intake.recover import redeliver_failed

    now = time.time()

    def item(n: int, guid: str, code: int, hours_ago: float) -> dict[str, Any]:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - hours_ago * 3600))
        return {"id": n, "guid": guid, "delivered_at": stamp, "redelivery": False, "duration": 0.1,
                "status": "failed" if code >= 300 or code == 0 else "OK", "status_code": code,
                "event": "workflow_job", "action": "completed", "installation_id": 1, "repository_id": 2}

    fake_github.state.hook_deliveries = [
        item(1, "down-503", 503, 1),        # Redis was down: ask again
        item(2, "unreachable", 0, 2),       # no answer at all: ask again
        item(3, "arrived-later", 503, 3),   # failed once, then reached us: leave
        item(4, "bad-signature", 401, 4),   # our refusal: would fail again
        item(5, "ok", 202, 5),              # delivered
        item(6, "too-old", 503, 100),       # past GitHub's 3 days
    ]
    r.set("nimbys:delivery:arrived-later", "done")
    settings = live(settings_for, fake_github)

    async def body(ctx: BotContext) -> list[list[str]]:
        gh = await org_client(ctx)
        assert gh is not None
        return [await redeliver_failed(gh, ctx.redis, ctx.settings, now=now) for _ in range(2)]

    first, second = run(settings, body)
    assert first == ["down-503", "unreachable"] and second == []
    assert fake_github.state.redelivered == [1, 2]
