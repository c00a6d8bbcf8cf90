"""Handlers plugged into real workers through ``NIMBYS_EXTRA_ROUTERS`` by the tests.

They record what happened in Redis (``test:*`` keys), so a test can tell how
often a handler started and finished across worker processes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from gidgethub import routing, sansio

router = routing.Router()
log = logging.getLogger("tests.routers")


@router.register("ping")
async def record_ping(event: sansio.Event, gh: Any, ctx: Any) -> None:
    await ctx.redis.rpush("test:handled", event.delivery_id)


@router.register("test_slow")
async def slow(event: sansio.Event, gh: Any, ctx: Any) -> None:
    await ctx.redis.incr(f"test:started:{event.delivery_id}")
    await asyncio.sleep(float(event.data.get("seconds", 2)))
    await ctx.redis.incr(f"test:finished:{event.delivery_id}")


@router.register("test_fail")
async def fail(event: sansio.Event, gh: Any, ctx: Any) -> None:
    await ctx.redis.incr(f"test:attempts:{event.delivery_id}")
    raise RuntimeError(f"boom {event.data.get('n', '')}")


@router.register("test_github")
async def call_github(event: sansio.Event, gh: Any, ctx: Any) -> None:
    """Read the org's runners and comment on an issue: one read, one write."""
    runners = await gh.getitem("/orgs/{org}/actions/runners", {"org": "aigdat"})
    log.info("read %d runners", runners["total_count"])
    await gh.post("/repos/{owner}/{repo}/issues/{number}/comments",
                  {"owner": "aigdat", "repo": "nimbys", "number": 1},
                  data={"body": f"seen {event.delivery_id}"})
    await ctx.redis.rpush("test:github-done", event.delivery_id)
