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

A job costs five round trips (lock, :meth:`Ledger.begin`, :meth:`Ledger.apply`,
the :class:`Changes` of its decisions, unlock): two Lua scripts do the reading
and writing that would otherwise take a round trip each, and keep each
runner's running totals (blame sum, failures, jobs) in step with its records
atomically, trimming included. The scripts touch keys derived from their
arguments, which standalone Redis allows (Redis Cluster is not supported).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis

from bot.runner_health.decide import Record, RunnerState
from bot.runner_health.outcomes import JobOutcome
from bot.runner_health.policy import HealthPolicy

AUDIT_MAX = 5000

# Shared by both scripts: a record's part in its runner's running totals.
_TOTALS_LUA = """
local function weight(r) if r and type(r.weight) == 'number' then return r.weight end return 0 end
local function fails(r) if r and r.failed == true and r.cls ~= 'CODE' then return 1 end return 0 end
"""

# Record one run of a job key and return what re-attributing the key needs, unless
# this job attempt was recorded already (a redelivery): then nil.
# KEYS: seen mark, the key's runs, pool set. ARGV: job id, run json, ttl, records-key prefix.
_BEGIN_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
local runs = redis.call('HVALS', KEYS[2])
local existing = {}
for i, raw in ipairs(runs) do
  local run = cjson.decode(raw)
  existing[i] = redis.call('HGET', ARGV[4] .. run.runner, string.format('%.0f', run.job_id)) or ''
end
return {runs, existing, redis.call('SMEMBERS', KEYS[3])}
"""

# Write records (keeping totals and the history cap), note where the job's runner was seen,
# and read what deciding needs: every pool member's state, the records of the runners named,
# the last automatic quarantine and the last storm.
# KEYS: pool set, last-auto-quarantine, storm-at.
# ARGV: key prefix, history, runner, runner_id, last_seen, n writes, (runner, job id, at, json) x n,
#       n reads, runner x n.
_APPLY_LUA = _TOTALS_LUA + """
local p, history = ARGV[1], tonumber(ARGV[2])
local function put(runner, id, at, raw)
  local records, order, state = p .. ':records:' .. runner, p .. ':order:' .. runner, p .. ':state:' .. runner
  local prev_raw = redis.call('HGET', records, id)
  local prev = prev_raw and cjson.decode(prev_raw) or nil
  local new = cjson.decode(raw)
  redis.call('HSET', records, id, raw)
  redis.call('ZADD', order, at, id)
  redis.call('SADD', KEYS[1], runner)
  local dw, df, dj = weight(new) - weight(prev), fails(new) - fails(prev), prev and 0 or 1
  local extra = redis.call('ZCARD', order) - history
  if extra > 0 then
    local old = redis.call('ZRANGE', order, 0, extra - 1)
    for _, oid in ipairs(old) do
      local gone = redis.call('HGET', records, oid)
      if gone then local r = cjson.decode(gone); dw = dw - weight(r); df = df - fails(r) end
      dj = dj - 1
      redis.call('ZREM', order, oid)
      redis.call('HDEL', records, oid)
    end
  end
  if dw ~= 0 then redis.call('HINCRBYFLOAT', state, 'blame_sum', dw) end
  if df ~= 0 then redis.call('HINCRBY', state, 'fail_sum', df) end
  if dj ~= 0 then redis.call('HINCRBY', state, 'job_count', dj) end
end
local i = 7
for _ = 1, tonumber(ARGV[6]) do
  put(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
  i = i + 4
end
redis.call('SADD', KEYS[1], ARGV[3])
redis.call('HSET', p .. ':state:' .. ARGV[3], 'runner_id', ARGV[4], 'last_seen', ARGV[5])
local reads = {}
for k = 1, tonumber(ARGV[i]) do
  local runner = ARGV[i + k]
  local ids = redis.call('ZRANGE', p .. ':order:' .. runner, 0, -1)
  local raws = {}
  if #ids > 0 then raws = redis.call('HMGET', p .. ':records:' .. runner, unpack(ids)) end
  reads[k] = {runner, raws}
end
local states = {}
for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  states[#states + 1] = {name, redis.call('HGETALL', p .. ':state:' .. name)}
end
return {states, reads, redis.call('GET', KEYS[2]) or '', redis.call('GET', KEYS[3]) or ''}
"""


@dataclass
class Begun:
    """A job's key as :meth:`Ledger.begin` found it: every run of the key, each one's current record."""

    runs: list[JobOutcome]
    existing: dict[int, dict[str, Any]]  # job id -> its record on its runner, where one is kept


@dataclass
class PoolView:
    """What deciding reads, in one round trip: the pool's states (records for the runners asked)."""

    pool: dict[str, RunnerState]
    states: dict[str, dict[str, str]]  # raw states, kept current by :class:`Changes`
    last_auto_quarantine: float | None
    storm_at: float | None


class Ledger:
    def __init__(self, client: aioredis.Redis, prefix: str, policy: HealthPolicy) -> None:
        self.r = client
        self.p = f"{prefix}:health"
        self.audit_key = f"{prefix}:audit"
        self.policy = policy
        self._begin = client.register_script(_BEGIN_LUA)
        self._apply = client.register_script(_APPLY_LUA)

    # ---- keys ----------------------------------------------------------------------------------
    def _key(self, key: str) -> str:
        return f"{self.p}:key:{key}"

    def _records(self, runner: str) -> str:
        return f"{self.p}:records:{runner}"

    def _order(self, runner: str) -> str:
        return f"{self.p}:order:{runner}"

    def _state(self, runner: str) -> str:
        return f"{self.p}:state:{runner}"

    def _seen(self, outcome: JobOutcome) -> str:
        return f"{self.p}:seen:{outcome.job_id}:{outcome.attempt}"

    @property
    def pool_key(self) -> str:
        return f"{self.p}:pool"

    @property
    def pending_key(self) -> str:
        return f"{self.p}:pending"

    @property
    def storm_at_key(self) -> str:
        return f"{self.p}:storm-at"

    @property
    def storm_pending_key(self) -> str:
        return f"{self.p}:storm-pending"

    @property
    def last_auto_key(self) -> str:
        return f"{self.p}:last-auto-quarantine"

    @property
    def ttl(self) -> int:
        return int(self.policy.key_ttl_days * 86400)

    def lock(self) -> Any:
        return self.r.lock(f"{self.p}:lock", timeout=30, blocking_timeout=60)

    # ---- one job: begin, apply, changes ---------------------------------------------------------
    async def begin(self, outcome: JobOutcome) -> Begun | None:
        """Record this run of its key; every run of the key with its current record. None: seen already.

        A redelivered event must not count twice; the seen mark is set last (by :class:`Changes`),
        so a worker dying halfway leaves the job to be recorded again on retry.
        """
        answer = await self._begin(
            keys=[self._seen(outcome), self._key(outcome.key.as_str()), self.pool_key],
            args=[outcome.job_id, orjson.dumps(_run_json(outcome)), self.ttl, f"{self.p}:records:"])
        if answer is None:
            return None
        raw_runs, raw_existing, _members = answer
        runs = [_run_from_json(outcome, orjson.loads(v)) for v in raw_runs]
        existing = {run.job_id: orjson.loads(raw) for run, raw in zip(runs, raw_existing, strict=True) if raw}
        return Begun(runs, existing)

    async def apply(self, outcome: JobOutcome, writes: list[dict[str, Any]], read: set[str]) -> PoolView:
        """Write the job's (re-)attributed records; read the pool, with records for the runners in ``read``."""
        args: list[Any] = [self.p, self.policy.history, outcome.runner, outcome.runner_id or "",
                           outcome.completed_at, len(writes)]
        for record in writes:
            args += [record["runner"], record["job_id"], record["at"], orjson.dumps(record)]
        names = sorted(read)
        args += [len(names), *names]
        states_raw, reads, last_auto, storm_at = await self._apply(
            keys=[self.pool_key, self.last_auto_key, self.storm_at_key], args=args)
        records = {runner.decode(): [record_from(orjson.loads(x)) for x in raws if x] for runner, raws in reads}
        states = {name.decode(): _pairs(flat) for name, flat in states_raw}
        pool = {name: runner_state(name, states[name], records.get(name, []), self.policy)
                for name in sorted(states)}
        return PoolView(pool, states, float(last_auto) if last_auto else None,
                        float(storm_at) if storm_at else None)

    def changes(self, view: PoolView) -> Changes:
        return Changes(self, view.states)

    # ---- reads for commands, actions and the page ------------------------------------------------
    async def record(self, runner: str, job_id: int) -> dict[str, Any] | None:
        raw = await self.r.hget(self._records(runner), str(job_id))
        return orjson.loads(raw) if raw else None

    async def state(self, runner: str) -> dict[str, str]:
        raw = await self.r.hgetall(self._state(runner))
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def set_state(self, runner: str, **fields: Any) -> None:
        if fields:
            await self.r.hset(self._state(runner), mapping=_state_fields(fields))

    async def runners(self) -> list[str]:
        return sorted(x.decode() for x in await self.r.smembers(self.pool_key))

    async def pool(self, with_records: set[str]) -> dict[str, RunnerState]:
        """The pool's states (pipelined), with records only for the runners named.

        Other runners count through their running totals (blame sum and jobs), not their records.
        """
        names = await self.runners()
        wanted = [n for n in names if n in with_records]
        pipe = self.r.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self._state(name))
        for name in wanted:
            pipe.zrange(self._order(name), 0, -1)
        replies = await pipe.execute()
        states, orders = replies[:len(names)], replies[len(names):]
        pipe = self.r.pipeline(transaction=False)
        for name, ids in zip(wanted, orders, strict=True):
            pipe.hmget(self._records(name), ids or [b"-"])
        raws = dict(zip(wanted, await pipe.execute(), strict=True)) if wanted else {}
        return {name: runner_state(name, {k.decode(): v.decode() for k, v in raw.items()},
                                   [record_from(orjson.loads(x)) for x in raws.get(name, []) if x], self.policy)
                for name, raw in zip(names, states, strict=True)}

    async def last_auto_quarantine(self) -> float | None:
        raw = await self.r.get(self.last_auto_key)
        return float(raw) if raw else None

    # ---- audit ---------------------------------------------------------------------------------
    async def audit(self, action: str, runner: str, reason: str, **extra: Any) -> None:
        await self.r.xadd(self.audit_key, _audit_entry(action, runner, reason, extra), maxlen=AUDIT_MAX,
                          approximate=True)


class Changes:
    """The writes a job's decisions cause, sent in one transaction with the job's seen mark.

    Also keeps the raw states read by :meth:`Ledger.apply` current, so later decisions in
    the same job (probation) see the changes made before them.
    """

    def __init__(self, ledger: Ledger, states: dict[str, dict[str, str]]) -> None:
        self.ledger = ledger
        self.states = states
        self.pipe = ledger.r.pipeline(transaction=True)

    def state(self, runner: str) -> dict[str, str]:
        return self.states.setdefault(runner, {})

    def set_state(self, runner: str, **fields: Any) -> None:
        clean = _state_fields(fields)
        self.state(runner).update(clean)
        self.pipe.hset(self.ledger._state(runner), mapping=clean)

    def audit(self, action: str, runner: str, reason: str, **extra: Any) -> None:
        self.pipe.xadd(self.ledger.audit_key, _audit_entry(action, runner, reason, extra), maxlen=AUDIT_MAX,
                       approximate=True)

    def quarantined(self, runner: str, at: float) -> None:
        """The bookkeeping around an automatic quarantine: the rate limit's clock, the pending actions."""
        self.pipe.set(self.ledger.last_auto_key, at)
        self.pipe.sadd(self.ledger.pending_key, runner)

    def storm(self, at: float, reason: str) -> None:
        self.pipe.set(self.ledger.storm_at_key, at)
        self.pipe.set(self.ledger.storm_pending_key, reason)

    async def commit(self, outcome: JobOutcome) -> None:
        self.pipe.set(self.ledger._seen(outcome), "1", ex=self.ledger.ttl)
        await self.pipe.execute()


def _pairs(flat: list[bytes]) -> dict[str, str]:
    return {flat[i].decode(): flat[i + 1].decode() for i in range(0, len(flat), 2)}


def _state_fields(fields: dict[str, Any]) -> dict[str, str]:
    return {k: ("" if v is None else str(v)) for k, v in fields.items()}


def _audit_entry(action: str, runner: str, reason: str, extra: dict[str, Any]) -> dict[str, str]:
    return {"ts": f"{time.time():.3f}", "action": action, "runner": runner, "reason": reason,
            **{k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in extra.items()}}


def runner_state(name: str, st: dict[str, str], records: list[Record], policy: HealthPolicy) -> RunnerState:
    """A runner as the policy sees it, from its raw state hash and (optionally) its records."""
    synced = st.get("has_label") not in (None, "")
    return RunnerState(
        name=name, records=records,
        carries_label=(st.get("has_label") == "1" and st.get("quarantined") != "1") if synced
        else st.get("quarantined") != "1" and st.get("removed_by_person") != "1",
        exempt=st.get("exempt") == "1" or name in policy.exempt,
        quarantined=st.get("quarantined") == "1",
        removed_by_person=st.get("removed_by_person") == "1",
        probation_left=int(st.get("probation_left") or 0),
        warn_since=float(st["warn_since"]) if st.get("warn_since") else None,
        blame_sum=float(st.get("blame_sum") or 0.0),
        job_count=int(st.get("job_count") or 0),
        fail_sum=int(st.get("fail_sum") or 0),
    )


def _run_json(o: JobOutcome) -> dict[str, Any]:
    return {"job_id": o.job_id, "runner": o.runner, "conclusion": o.conclusion, "at": o.completed_at,
            "attempt": o.attempt, "url": o.url, "run_id": o.run_id}


def _run_from_json(template: JobOutcome, data: dict[str, Any]) -> JobOutcome:
    return JobOutcome(job_id=int(data["job_id"]), run_id=data.get("run_id"), attempt=data.get("attempt", 1),
                      key=template.key, runner=data["runner"], runner_id=None, labels=(), conclusion=data["conclusion"],
                      completed_at=data["at"], url=data.get("url", ""), steps=())


def record_json(outcome: JobOutcome, cls: str | None, weight: float, why: str, infra: str | None) -> dict[str, Any]:
    return {"job_id": outcome.job_id, "runner": outcome.runner, "job_name": outcome.job_name,
            "key": outcome.key.as_str(), "at": outcome.completed_at, "failed": outcome.failed, "cls": cls,
            "weight": weight, "why": why, "infra": infra, "url": outcome.url, "run_id": outcome.run_id,
            "repo": outcome.key.repo}


def record_from(data: dict[str, Any]) -> Record:
    return Record(job_id=data["job_id"], job_name=data.get("job_name", ""), at=data.get("at", 0.0),
                  weight=data.get("weight") or 0.0, cls=data.get("cls"), infra=data.get("infra"),
                  failed=bool(data.get("failed")))
