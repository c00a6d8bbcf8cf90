"""Runner-health state in Redis: job evidence, runner records, runner states, the audit log.

Bounded by design: each runner keeps its last ``history`` records (a hash plus a
time-ordered sorted set, trimmed on write); job-key evidence and dedup marks
expire after ``key_ttl_days``; the audit stream is capped. So memory is about
``runners x history x ~300 B`` plus the keys of the last two weeks.

One pool-wide lock (redis-py's ``Lock``) serialises "record, re-attribute,
decide, mark" across workers, so two workers handling two jobs of the same
runner at once cannot both decide to quarantine it. The side effects (label,
issue, re-runs) happen after the lock, driven by flags in the runner's state,
so a retry after a crash finishes them and never repeats one.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis.asyncio as aioredis

from bot.runner_health.decide import Record, RunnerState
from bot.runner_health.outcomes import JobOutcome
from bot.runner_health.policy import HealthPolicy

AUDIT_MAX = 5000


class Ledger:
    def __init__(self, client: aioredis.Redis, prefix: str, policy: HealthPolicy) -> None:
        self.r = client
        self.p = f"{prefix}:health"
        self.audit_key = f"{prefix}:audit"
        self.policy = policy

    # ---- keys ----------------------------------------------------------------------------------
    def _key(self, key: str) -> str:
        return f"{self.p}:key:{key}"

    def _records(self, runner: str) -> str:
        return f"{self.p}:records:{runner}"

    def _order(self, runner: str) -> str:
        return f"{self.p}:order:{runner}"

    def _state(self, runner: str) -> str:
        return f"{self.p}:state:{runner}"

    @property
    def pool_key(self) -> str:
        return f"{self.p}:pool"

    def lock(self) -> Any:
        return self.r.lock(f"{self.p}:lock", timeout=30, blocking_timeout=60)

    # ---- dedup ---------------------------------------------------------------------------------
    async def seen(self, outcome: JobOutcome) -> bool:
        """Was this job attempt already recorded? (A redelivered event must not count twice.)"""
        return bool(await self.r.exists(f"{self.p}:seen:{outcome.job_id}:{outcome.attempt}"))

    async def mark_seen(self, outcome: JobOutcome) -> None:
        """Set last, inside the lock: a worker dying before it leaves the job to be recorded on retry."""
        ttl = int(self.policy.key_ttl_days * 86400)
        await self.r.set(f"{self.p}:seen:{outcome.job_id}:{outcome.attempt}", "1", ex=ttl)

    @property
    def pending_key(self) -> str:
        return f"{self.p}:pending"

    # ---- evidence per job key -------------------------------------------------------------------
    async def add_run(self, outcome: JobOutcome) -> list[JobOutcome]:
        """Record this run of its key; return every known run of the key (this one included)."""
        key = self._key(outcome.key.as_str())
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(key, str(outcome.job_id), json.dumps(_run_json(outcome)))
        pipe.expire(key, int(self.policy.key_ttl_days * 86400))
        pipe.hgetall(key)
        *_, runs = await pipe.execute()
        return [_run_from_json(outcome, json.loads(v)) for v in runs.values()]

    # ---- runner records ------------------------------------------------------------------------
    async def put_record(self, runner: str, record: dict[str, Any], previous: dict[str, Any] | None = None) -> None:
        """Write a record and keep the runner's running totals (blame sum, jobs) in step with its records."""
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(self._records(runner), str(record["job_id"]), json.dumps(record))
        pipe.zadd(self._order(runner), {str(record["job_id"]): record["at"]})
        pipe.sadd(self.pool_key, runner)
        delta = (record.get("weight") or 0.0) - ((previous or {}).get("weight") or 0.0)
        if delta:
            pipe.hincrbyfloat(self._state(runner), "blame_sum", delta)
        fail_delta = _counts_as_failure(record) - _counts_as_failure(previous)
        if fail_delta:
            pipe.hincrby(self._state(runner), "fail_sum", fail_delta)
        if previous is None:
            pipe.hincrby(self._state(runner), "job_count", 1)
        pipe.zcard(self._order(runner))
        *_, size = await pipe.execute()
        if size > self.policy.history:
            await self._trim(runner, size - self.policy.history)

    async def _trim(self, runner: str, extra: int) -> None:
        old = await self.r.zrange(self._order(runner), 0, extra - 1)
        gone = [json.loads(x) for x in await self.r.hmget(self._records(runner), old) if x]
        pipe = self.r.pipeline(transaction=True)
        pipe.zrem(self._order(runner), *old)
        pipe.hdel(self._records(runner), *old)
        pipe.hincrbyfloat(self._state(runner), "blame_sum", -sum(r.get("weight") or 0.0 for r in gone))
        pipe.hincrby(self._state(runner), "fail_sum", -sum(_counts_as_failure(r) for r in gone))
        pipe.hincrby(self._state(runner), "job_count", -len(old))
        await pipe.execute()

    async def record(self, runner: str, job_id: int) -> dict[str, Any] | None:
        raw = await self.r.hget(self._records(runner), str(job_id))
        return json.loads(raw) if raw else None

    async def records(self, runner: str) -> list[dict[str, Any]]:
        ids = await self.r.zrange(self._order(runner), 0, -1)
        if not ids:
            return []
        raw = await self.r.hmget(self._records(runner), ids)
        return [json.loads(x) for x in raw if x]

    # ---- runner state --------------------------------------------------------------------------
    async def state(self, runner: str) -> dict[str, str]:
        raw = await self.r.hgetall(self._state(runner))
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def set_state(self, runner: str, **fields: Any) -> None:
        clean = {k: ("" if v is None else str(v)) for k, v in fields.items()}
        if clean:
            await self.r.hset(self._state(runner), mapping=clean)

    async def runners(self) -> list[str]:
        return sorted(x.decode() for x in await self.r.smembers(self.pool_key))

    async def pool(self, with_records: set[str]) -> dict[str, RunnerState]:
        """The pool's states (one pipelined round trip), with records only for the runners named.

        Other runners count through their running totals (blame sum and jobs), not their records.
        """
        names = await self.runners()
        pipe = self.r.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self._state(name))
        states = await pipe.execute()
        wanted = [n for n in names if n in with_records]
        pipe = self.r.pipeline(transaction=False)
        for name in wanted:
            pipe.zrange(self._order(name), 0, -1)
        orders = await pipe.execute() if wanted else []
        pipe = self.r.pipeline(transaction=False)
        for name, ids in zip(wanted, orders, strict=True):
            pipe.hmget(self._records(name), ids or [b"-"])
        raws = dict(zip(wanted, await pipe.execute(), strict=True)) if wanted else {}
        out = {}
        for name, raw_state in zip(names, states, strict=True):
            st = {k.decode(): v.decode() for k, v in raw_state.items()}
            recs = [record_from(json.loads(x)) for x in raws.get(name, []) if x]
            synced = st.get("has_label") not in (None, "")
            out[name] = RunnerState(
                name=name, records=recs,
                carries_label=(st.get("has_label") == "1" and st.get("quarantined") != "1") if synced
                else st.get("quarantined") != "1" and st.get("removed_by_person") != "1",
                exempt=st.get("exempt") == "1" or name in self.policy.exempt,
                quarantined=st.get("quarantined") == "1",
                removed_by_person=st.get("removed_by_person") == "1",
                probation_left=int(st.get("probation_left") or 0),
                warn_since=float(st["warn_since"]) if st.get("warn_since") else None,
                blame_sum=float(st.get("blame_sum") or 0.0),
                job_count=int(st.get("job_count") or 0),
                fail_sum=int(st.get("fail_sum") or 0),
            )
        return out

    async def last_auto_quarantine(self) -> float | None:
        raw = await self.r.get(f"{self.p}:last-auto-quarantine")
        return float(raw) if raw else None

    async def mark_auto_quarantine(self, at: float) -> None:
        await self.r.set(f"{self.p}:last-auto-quarantine", at)

    # ---- audit ---------------------------------------------------------------------------------
    async def audit(self, action: str, runner: str, reason: str, **extra: Any) -> None:
        entry = {"ts": f"{time.time():.3f}", "action": action, "runner": runner, "reason": reason,
                 **{k: json.dumps(v) if not isinstance(v, str) else v for k, v in extra.items()}}
        await self.r.xadd(self.audit_key, entry, maxlen=AUDIT_MAX, approximate=True)


def _run_json(o: JobOutcome) -> dict[str, Any]:
    return {"job_id": o.job_id, "runner": o.runner, "conclusion": o.conclusion, "at": o.completed_at,
            "attempt": o.attempt, "url": o.url, "run_id": o.run_id}


def _run_from_json(template: JobOutcome, data: dict[str, Any]) -> JobOutcome:
    return JobOutcome(job_id=int(data["job_id"]), run_id=data.get("run_id"), attempt=data.get("attempt", 1),
                      key=template.key, runner=data["runner"], runner_id=None, labels=(), conclusion=data["conclusion"],
                      completed_at=data["at"], url=data.get("url", ""), steps=())


def record_json(outcome: JobOutcome, cls: str | None, weight: float, why: str, infra: str | None) -> dict[str, Any]:
    return {"job_id": outcome.job_id, "job_name": outcome.job_name, "key": outcome.key.as_str(),
            "at": outcome.completed_at, "failed": outcome.failed, "cls": cls, "weight": weight, "why": why,
            "infra": infra, "url": outcome.url, "run_id": outcome.run_id, "repo": outcome.key.repo}


def _counts_as_failure(record: dict[str, Any] | None) -> int:
    return int(bool(record) and bool(record.get("failed")) and record.get("cls") != "CODE")


def record_from(data: dict[str, Any]) -> Record:
    return Record(job_id=data["job_id"], job_name=data.get("job_name", ""), at=data.get("at", 0.0),
                  weight=data.get("weight") or 0.0, cls=data.get("cls"), infra=data.get("infra"),
                  failed=bool(data.get("failed")))

