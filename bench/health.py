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
from pathlib import Path

import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.embedded_redis import EmbeddedRedis  # noqa: E402
from bot.runner_health.ledger import Ledger  # noqa: E402
from bot.runner_health.outcomes import outcome_from_payload  # noqa: E402
from bot.runner_health.policy import HealthPolicy  # noqa: E402
from bot.runner_health.process import process_outcome  # noqa: E402
from bot.runner_health.simulate import SimConfig, generate  # noqa: E402


async def one_run(outcomes: list, policy: HealthPolicy) -> tuple[float, int, int]:
    """Seconds for the stream on a fresh private redis-server, Redis memory used, keys left."""
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis").start()
        client = aioredis.Redis.from_url(server.url)
        base = (await client.info("memory"))["used_memory"]
        ledger = Ledger(client, "bench", policy)
        started = time.perf_counter()
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
    outcomes = [outcome_from_payload(p, policy) for p in generate(SimConfig(jobs=jobs, runners=runners))]
    assert all(o is not None for o in outcomes)
    runs = [await one_run(outcomes, policy) for _ in range(repeat)]
    rates = sorted(jobs / elapsed for elapsed, _, _ in runs)
    rate = statistics.median(rates)
    _, used, keys = runs[0]
    print(f"{jobs} jobs on {runners} runners (one worker, no GitHub calls), {repeat} runs")
    print(f"  {rate:,.0f} jobs/s classified and scored, median ({1000 / rate:.2f} ms a job; "
          f"runs {rates[0]:,.0f} to {rates[-1]:,.0f})")
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
