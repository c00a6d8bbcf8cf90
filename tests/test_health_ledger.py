"""The runner-health ledger on a real redis-server: running totals, optimistic commits, many workers at once."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import redis.asyncio as aioredis

from bot.runner_health.ledger import Changes, Ledger, Seen, Snapshot
from bot.runner_health.outcomes import JobOutcome, outcome_from_payload
from bot.runner_health.policy import HealthPolicy
from bot.runner_health.process import process_outcome, reattribute
from bot.runner_health.simulate import SimConfig, generate

POLICY = replace(HealthPolicy(), history=20)  # a short history: trimming happens on most jobs


def stream(jobs: int, seed: int = 5) -> list[JobOutcome]:
    outcomes = [outcome_from_payload(p, POLICY) for p in generate(SimConfig(jobs=jobs, runners=8, seed=seed))]
    return [o for o in outcomes if o is not None]


async def totals_match_records(client: aioredis.Redis, ledger: Ledger) -> dict[str, int]:
    """Each runner's stored totals equal the sums over its kept records; returns records kept per runner."""
    kept = {}
    for name in await ledger.runners():
        state = await ledger.state(name)
        records = [json.loads(x) for x in (await client.hgetall(f"{ledger.p}:records:{name}")).values()]
        assert await client.zcard(f"{ledger.p}:order:{name}") == len(records) <= POLICY.history
        assert int(state.get("job_count") or 0) == len(records), name
        assert abs(float(state.get("blame_sum") or 0) - sum(r["weight"] for r in records)) < 1e-6, name
        assert int(state.get("fail_sum") or 0) == sum(r["failed"] and r["cls"] != "CODE" for r in records), name
        kept[name] = len(records)
    return kept


def test_running_totals_stay_equal_to_the_kept_records(redis_url: str) -> None:
    async def main() -> None:
        client = aioredis.Redis.from_url(redis_url)
        ledger = Ledger(client, "t", POLICY)
        for outcome in stream(1200):
            await process_outcome(ledger, outcome, [], POLICY)
        kept = await totals_match_records(client, ledger)
        assert kept and all(n == POLICY.history for n in kept.values())  # trimmed, every runner
        await client.aclose()
    asyncio.run(main())


def test_a_commit_on_a_stale_read_writes_nothing(redis_url: str) -> None:
    async def main() -> None:
        client = aioredis.Redis.from_url(redis_url)
        ledger = Ledger(client, "t", POLICY)
        first, second = stream(2)
        snapshot = await ledger.read(first)
        assert isinstance(snapshot, Snapshot)
        writes = reattribute(first, snapshot, None, POLICY)
        await process_outcome(ledger, second, [], POLICY)  # another worker commits meanwhile
        before = {k: await client.dump(k) for k in await client.keys("t:*")}
        assert not await ledger.commit(snapshot, first, writes, Changes(ledger, snapshot))
        assert {k: await client.dump(k) for k in await client.keys("t:*")} == before
        assert (await process_outcome(ledger, first, [], POLICY)).decisions == []  # read again, decided, committed
        assert isinstance(await ledger.read(first), Seen)  # now seen: a redelivery changes nothing
        await client.aclose()
    asyncio.run(main())


def test_eight_workers_at_once_record_every_job_once(redis_url: str) -> None:
    """Jobs handed out to eight concurrent workers (own connections): conflicts retry, nothing is lost or doubled."""
    async def main() -> None:
        outcomes = stream(600, seed=9)
        queue: asyncio.Queue[JobOutcome] = asyncio.Queue()
        for outcome in outcomes:
            queue.put_nowait(outcome)
        clients = [aioredis.Redis.from_url(redis_url) for _ in range(8)]
        policy = replace(POLICY, history=1000)  # keep everything, to count it

        async def worker(client: aioredis.Redis) -> None:
            ledger = Ledger(client, "t", policy)
            while not queue.empty():
                outcome = queue.get_nowait()
                await process_outcome(ledger, outcome, [], policy)
                await process_outcome(ledger, outcome, [], policy)  # a redelivery on the same worker

        await asyncio.gather(*(worker(c) for c in clients))
        ledger = Ledger(clients[0], "t", policy)
        counted = 0
        for name in await ledger.runners():
            counted += int((await ledger.state(name)).get("job_count") or 0)
        assert counted == len({o.job_id for o in outcomes})
        assert int(await clients[0].get(ledger.version_key)) >= len(outcomes)
        for client in clients:
            await client.aclose()
    asyncio.run(main())


def test_a_job_seen_already_still_reports_its_unfinished_quarantine(redis_url: str) -> None:
    """A worker that died after committing a quarantine, before acting on GitHub: the retried event finds it."""
    async def main() -> None:
        client = aioredis.Redis.from_url(redis_url)
        ledger = Ledger(client, "t", HealthPolicy())
        payloads = generate(SimConfig(jobs=3000, runners=8, seed=2, bad=1, bad_rate=0.6))
        for outcome in filter(None, (outcome_from_payload(p, HealthPolicy()) for p in payloads)):
            processed = await process_outcome(ledger, outcome, [], HealthPolicy())
            quarantined = [d.runner for d in processed.decisions if d.action == "quarantine"]
            if quarantined:
                break
        assert quarantined and set(quarantined) <= processed.pending
        again = await ledger.read(outcome)
        assert isinstance(again, Seen) and set(quarantined) <= again.pending
        retried = await process_outcome(ledger, outcome, [], HealthPolicy())
        assert retried.decisions == [] and set(quarantined) <= retried.pending
        await client.aclose()
    asyncio.run(main())
