"""Runner-health benchmark: completed jobs classified and scored per second by one worker, and memory.

Runs the live processing code (``process_outcome``) on a private redis-server over
a simulated stream, without GitHub calls, then reports Redis memory per tracked job.

    .venv/bin/python bench/health.py [--jobs 5000] [--runners 12] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gidgethub import sansio  # noqa: E402

from bot.context import BotContext  # noqa: E402
from bot.embedded_redis import EmbeddedRedis  # noqa: E402
from bot.runner_health.ledger import Ledger  # noqa: E402
from bot.runner_health.outcomes import outcome_from_payload  # noqa: E402
from bot.runner_health.policy import HealthPolicy  # noqa: E402
from bot.runner_health.process import process_outcome  # noqa: E402
from bot.runner_health.router import track_completed_job  # noqa: E402
from bot.runner_health.simulate import SimConfig, generate  # noqa: E402
from bot.settings import Settings  # noqa: E402


class NoGitHub:
    """GitHub left out of the measurement: every list is empty, every write succeeds."""

    async def getiter(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        for item in ():
            yield item

    async def getitem(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {}

    post = patch = delete = put = getitem


async def one_run(payloads: list[dict[str, Any]], policy: HealthPolicy, whole: bool) -> tuple[float, int, int]:
    """Seconds for the stream on a fresh private redis-server, Redis memory used, keys left.

    ``whole``: through the worker's handler (roster freshness, annotations, pending actions, storm issue)
    with GitHub stubbed out; else the policy core alone (``process_outcome``).
    """
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis").start()
        client = aioredis.Redis.from_url(server.url)
        base = (await client.info("memory"))["used_memory"]
        ledger = Ledger(client, "bench", policy)
        ctx = BotContext(settings=Settings(key_prefix="bench"), redis=client, session=None)  # type: ignore[arg-type]
        ctx.__dict__["health_policy"] = policy
        outcomes = [outcome_from_payload(p, policy) for p in payloads]
        events = [sansio.Event(p, event="workflow_job", delivery_id=str(i)) for i, p in enumerate(payloads)]
        gh = NoGitHub()
        started = time.perf_counter()
        if whole:
            for event in events:
                await track_completed_job(event, gh, ctx)
        else:
            for outcome in outcomes:
                await process_outcome(ledger, outcome, [], policy)
        elapsed = time.perf_counter() - started
        used = (await client.info("memory"))["used_memory"] - base
        keys = await client.dbsize()
        await client.aclose()
        server.stop()
    return elapsed, used, keys


async def main(jobs: int, runners: int, repeat: int) -> None:
    logging.disable(logging.WARNING)
    policy = HealthPolicy()
    payloads = [p for p in generate(SimConfig(jobs=jobs, runners=runners))
                if outcome_from_payload(p, policy) is not None]
    print(f"{jobs} jobs on {runners} runners (one worker, GitHub left out), median of {repeat} runs")
    for label, whole in (("policy core (process_outcome)", False), ("the worker's handler", True)):
        runs = [await one_run(payloads, policy, whole) for _ in range(repeat)]
        rates = sorted(jobs / elapsed for elapsed, _, _ in runs)
        rate = statistics.median(rates)
        print(f"  {label:<32} {rate:>6,.0f} jobs/s ({1000 / rate:.2f} ms a job; runs {rates[0]:,.0f} "
              f"to {rates[-1]:,.0f})")
    _, used, keys = runs[0]
    print(f"  Redis memory {used / 1024:,.0f} KiB for {keys} keys: {used / jobs:,.0f} B per tracked job")
    print(f"  bound: records are capped at {policy.history} per runner; job-key evidence and dedup marks "
          f"expire after {policy.key_ttl_days:g} days; the audit stream is capped")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--runners", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.jobs, args.runners, args.repeat))
