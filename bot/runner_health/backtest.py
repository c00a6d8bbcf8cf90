"""Replay recorded `workflow_job` deliveries through the live policy code and list its decisions.

Users tune the policy on their history before enabling it. The events go
through ``process_outcome`` exactly as in the worker (one implementation);
GitHub is not called: annotations are taken as absent and no action is carried
out, so decisions stand as the worker would have logged them (the audit
stream). It runs on a private Redis (or ``REDIS_URL`` under a throwaway key
prefix) and leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from bot.runner_health.ledger import Ledger
from bot.runner_health.outcomes import outcome_from_payload
from bot.runner_health.policy import HealthPolicy
from bot.runner_health.process import process_outcome

REPORTED = ("warn", "quarantine", "storm", "hold", "probation_end", "removed_by_person")


@dataclass
class BacktestResult:
    decisions: list[dict[str, Any]] = field(default_factory=list)
    classes: Counter[str] = field(default_factory=Counter)
    tracked: int = 0
    events: int = 0

    @property
    def summary(self) -> dict[str, Any]:
        actions = Counter(d["action"] for d in self.decisions)
        return {"events": self.events, "tracked_jobs": self.tracked, "actions": dict(sorted(actions.items())),
                "failure_classes": dict(sorted(self.classes.items()))}


@contextlib.asynccontextmanager
async def scratch_redis(url: str | None) -> AsyncIterator[tuple[aioredis.Redis, str]]:
    """A Redis to play in, and a key prefix; everything is removed afterwards."""
    if url:
        client = aioredis.Redis.from_url(url)
        prefix = f"nimbys-backtest-{uuid.uuid4().hex[:8]}"
        try:
            yield client, prefix
        finally:
            async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
                await client.delete(key)
            await client.aclose()
        return
    from bot.embedded_redis import EmbeddedRedis

    with tempfile.TemporaryDirectory(prefix="nimbys-backtest-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis").start()
        client = aioredis.Redis.from_url(server.url)
        try:
            yield client, "nimbys"
        finally:
            await client.aclose()
            server.stop()


async def backtest(payloads: Iterable[Any], policy: HealthPolicy, redis_url: str | None = None) -> BacktestResult:
    result = BacktestResult()
    async with scratch_redis(redis_url) as (client, prefix):
        ledger = Ledger(client, prefix, policy)
        last_id = "0-0"
        failed: dict[int, str] = {}
        for seq, payload in enumerate(payloads):
            result.events += 1
            outcome = outcome_from_payload(payload, policy)
            if outcome is None:
                continue
            result.tracked += 1
            await process_outcome(ledger, outcome, [], policy)
            if outcome.failed:
                failed[outcome.job_id] = outcome.runner
            for entry_id, fields in await client.xrange(ledger.audit_key, f"({last_id}", "+"):
                last_id = entry_id.decode()
                action = fields[b"action"].decode()
                if action in REPORTED:
                    evidence = json.loads(fields.get(b"evidence", b"[]"))
                    result.decisions.append({"seq": seq, "action": action, "runner": fields[b"runner"].decode(),
                                             "reason": fields[b"reason"].decode(), "evidence": evidence})
        for job_id, runner in failed.items():
            record = await ledger.record(runner, job_id)
            result.classes[(record or {}).get("cls") or "TRIMMED"] += 1
    return result


def read_jsonl(path: str) -> Iterable[Any]:
    """Payloads one per line; `-` for stdin. A bad line is an error naming its number."""
    import sys

    handle = sys.stdin if path == "-" else open(path, encoding="utf-8")
    with handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError:
                    raise ValueError(f"{path}:{number}: not a JSON object") from None


def as_text(result: BacktestResult) -> str:
    lines = [f"{'seq':>7}  {'action':<14} {'runner':<24} reason"]
    for d in result.decisions:
        lines.append(f"{d['seq']:>7}  {d['action']:<14} {d['runner']:<24} {d['reason']}")
    s = result.summary
    lines.append("")
    lines.append(f"{s['events']} events, {s['tracked_jobs']} tracked jobs; actions: "
                 + (", ".join(f"{k} {v}" for k, v in s["actions"].items()) or "none")
                 + "; failures: " + (", ".join(f"{k} {v}" for k, v in s["failure_classes"].items()) or "none"))
    return "\n".join(lines) + "\n"


def as_jsonl(result: BacktestResult) -> str:
    lines = [json.dumps(d) for d in result.decisions]
    lines.append(json.dumps({"summary": result.summary}))
    return "\n".join(lines) + "\n"
