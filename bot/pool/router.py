"""workflow_job queued / in_progress: how long pool jobs wait for a runner (for the page and /api/pool)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from gidgethub import routing, sansio

from bot.context import BotContext

router = routing.Router()
DAY = 86400


def _ts(value: Any) -> float | None:
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _pool_labels(job: dict[str, Any], ctx: BotContext) -> list[str]:
    tracked = {x.lower(): x for x in ctx.health_policy.tracked_labels}
    return [tracked[x.lower()] for x in job.get("labels") or [] if isinstance(x, str) and x.lower() in tracked]


@router.register("workflow_job", action="queued")
async def job_queued(event: sansio.Event, gh: Any, ctx: BotContext) -> None:
    job = event.data.get("workflow_job") or {}
    queued_at = _ts(job.get("created_at"))
    if not isinstance(job.get("id"), int) or queued_at is None:
        return
    for label in _pool_labels(job, ctx):
        key = f"{ctx.prefix}:queued:{label}"
        await ctx.redis.hset(key, str(job["id"]), queued_at)
        await ctx.redis.expire(key, DAY)


@router.register("workflow_job", action="in_progress")
@router.register("workflow_job", action="completed")
async def job_left_queue(event: sansio.Event, gh: Any, ctx: BotContext) -> None:
    job = event.data.get("workflow_job") or {}
    if not isinstance(job.get("id"), int):
        return
    started, queued = _ts(job.get("started_at")), _ts(job.get("created_at"))
    for label in _pool_labels(job, ctx):
        removed = await ctx.redis.hdel(f"{ctx.prefix}:queued:{label}", str(job["id"]))
        if removed and started and queued and event.data.get("action") == "in_progress":
            key = f"{ctx.prefix}:wait:{label}"
            await ctx.redis.zadd(key, {f"{job['id']}:{max(0.0, started - queued):.1f}": started})
            await ctx.redis.zremrangebyscore(key, "-inf", started - DAY)
