"""The worker against a real Redis: dispatch, retries, dead letters, redeliveries."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from gidgethub import routing

from bot.cli import main as nimbys
from bot.intake.queue import GROUP, Keys
from bot.intake.store import IntakeStore
from bot.settings import Settings
from bot.worker.consumer import Worker
from bot.worker.routing import build_router

KEYS = Keys("nimbys")


def enqueue(r, event: str, payload: dict[str, Any], delivery: str | None = None) -> str:  # type: ignore[no-untyped-def]
    delivery = delivery or str(uuid.uuid4())
    IntakeStore(r, KEYS, queued_ttl=3600).enqueue(
        event=event, delivery=delivery, content_type="application/json",
        body=json.dumps(payload).encode(), headers={})
    return delivery


def run_until(settings: Settings, done: Callable[[], bool], *, router: routing.Router | None = None,
              workers: int = 1, timeout: float = 15.0) -> list[Worker]:
    """Run real Worker objects on the settings' Redis until ``done()`` holds, then stop them."""

    async def main() -> list[Worker]:
        client = aioredis.Redis.from_url(settings.redis_url)
        async with aiohttp.ClientSession() as session:
            pool = [Worker(dataclass_replace(settings, worker_name=f"w{i}"), client, session,
                           router or build_router(("tests.support.routers:router",)))
                    for i in range(workers)]
            tasks = [asyncio.create_task(w.run()) for w in pool]
            deadline = time.monotonic() + timeout
            while not done() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            for w in pool:
                w.request_stop()
            await asyncio.gather(*tasks)
        await client.aclose()
        assert done(), "condition not met before the timeout"
        return pool

    return asyncio.run(main())


def dataclass_replace(settings: Settings, **kw: Any) -> Settings:
    import dataclasses

    return dataclasses.replace(settings, **kw)


def test_every_event_is_dispatched_and_logged_with_its_delivery(settings_for, r, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO)
    delivery = enqueue(r, "ping", {"zen": "hi", "installation": {"id": 7}})
    enqueue(r, "workflow_job", {"action": "queued"})  # no handler: still logged and acknowledged
    run_until(settings_for(), lambda: r.xlen(KEYS.stream) == 0)
    assert r.lrange("test:handled", 0, -1) == [delivery.encode()]
    received = [rec for rec in caplog.records if rec.getMessage() == "event received"]
    assert {(rec.event, getattr(rec, "action", None)) for rec in received} == {("ping", None),
                                                                                ("workflow_job", "queued")}
    assert all(rec.delivery for rec in received)
    assert [rec.installation for rec in received if rec.event == "ping"] == [7]
    assert r.get(KEYS.status(delivery)) == b"done"
    assert r.xpending(KEYS.stream, GROUP)["pending"] == 0


def test_failing_handler_is_retried_with_backoff_then_dead_lettered(settings_for, r, capsys) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for(max_attempts=3, retry_base_seconds=0.1)
    delivery = enqueue(r, "test_fail", {"n": 1})
    started = time.monotonic()
    run_until(settings, lambda: r.xlen(KEYS.dead) == 1)
    elapsed = time.monotonic() - started
    assert r.get(f"test:attempts:{delivery}") == b"3"
    assert elapsed >= 0.1 + 0.2  # waited base, then 2 x base
    assert r.get(KEYS.status(delivery)) == b"failed"
    assert r.xlen(KEYS.stream) == 0 and r.zcard(KEYS.retry) == 0
    [(_id, fields)] = r.xrange(KEYS.dead)
    assert fields[b"error"] == b"RuntimeError: boom 1"
    # Operators see it, and can requeue it.
    import os

    os.environ["REDIS_URL"] = settings.redis_url
    try:
        assert nimbys(["dead-letters", "--json"]) == 0
        shown = json.loads(capsys.readouterr().out.strip())
        assert shown["delivery"] == delivery and shown["error"] == "RuntimeError: boom 1"
        assert nimbys(["dead-letters", "--requeue", delivery]) == 0
        assert r.xlen(KEYS.dead) == 0 and r.xlen(KEYS.stream) == 1
    finally:
        del os.environ["REDIS_URL"]


def test_a_delivery_already_done_does_not_run_handlers_again(settings_for, r) -> None:  # type: ignore[no-untyped-def]
    delivery = enqueue(r, "ping", {})
    run_until(settings_for(), lambda: r.llen("test:handled") == 1)
    # The same entry reaching the stream again (e.g. requeued by hand) is acknowledged only.
    r.set(KEYS.status("again"), "done")
    r.xadd(KEYS.stream, {"event": "ping", "delivery": "again", "content_type": "application/json",
                         "attempt": "1", "body": b"{}"})
    run_until(settings_for(), lambda: r.xlen(KEYS.stream) == 0)
    assert r.lrange("test:handled", 0, -1) == [delivery.encode()]


def test_two_workers_share_the_stream_and_handle_each_delivery_once(settings_for, r) -> None:  # type: ignore[no-untyped-def]
    deliveries = {enqueue(r, "ping", {"n": i}) for i in range(40)}
    pool = run_until(settings_for(), lambda: r.llen("test:handled") == 40 and r.xlen(KEYS.stream) == 0,
                     workers=2)
    handled = [d.decode() for d in r.lrange("test:handled", 0, -1)]
    assert sorted(handled) == sorted(deliveries)
    assert sum(w.handled for w in pool) == 40


def test_an_undecodable_entry_is_dead_lettered_not_retried(settings_for, r) -> None:  # type: ignore[no-untyped-def]
    r.xadd(KEYS.stream, {"event": "ping", "delivery": "bad", "content_type": "application/json",
                         "attempt": "1", "body": b"\xff{"})
    run_until(settings_for(), lambda: r.xlen(KEYS.dead) == 1)
    assert b"cannot be decoded" in r.xrange(KEYS.dead)[0][1][b"error"]


def test_extra_routers_must_be_gidgethub_routers() -> None:
    import pytest

    assert build_router(("tests.support.routers:router",)).fetch  # composes
    with pytest.raises(TypeError, match=r"not a gidgethub routing\.Router"):
        build_router(("tests.support.routers:log",))
