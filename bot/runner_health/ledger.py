"""Runner-health state in Redis: job evidence, runner records, runner states, the audit log.

Bounded by design: each runner keeps its last ``history`` records (a hash plus a
time-ordered sorted set, trimmed on write); job-key evidence and dedup marks
expire after ``key_ttl_days``; the audit stream is capped. So memory is about
``runners x history x ~300 B`` plus the keys of the last two weeks.

A job costs two round trips, both Lua scripts: :meth:`Ledger.read` gathers what
deciding needs (the job key's runs, the records of the runners concerned, the
pool's states and clocks, and the pool's version); the decisions are made in
Python from that snapshot; :meth:`Ledger.commit` writes the job, its
(re-)attributed records and the decisions' changes at once, only if the
pool's version is still the one read. Otherwise nothing is written and the
job is read and decided again. So two workers handling jobs of the same runner
at once cannot both decide to quarantine it, without a lock held across round
trips. The scripts keep each runner's running totals (blame sum, failures,
jobs) equal to the sums over its kept records, trimming included.

The side effects (label, issue, re-runs) happen after the commit, driven by
flags in the runner's state, so a retry after a crash finishes them and never
repeats one. The scripts touch keys derived from their arguments, which
standalone Redis allows (Redis Cluster is not supported).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
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

# Read what handling a job needs: the pool's version, the key's runs, the kept records of the
# key's runners and of the job's runner, every pool member's state (the fields deciding reads),
# the last automatic quarantine and storm; and, for what follows the decisions, the runners with
# quarantine actions pending, whether a storm issue is pending and whether the roster is fresh.
# A job attempt recorded already (a redelivery, or a retry after a crash) gets only the latter:
# its decisions' actions may still be unfinished.
# KEYS: version, seen mark, the key's runs, pool set, last-auto-quarantine, storm-at,
#       pending set, storm-pending, roster-fresh.
# ARGV: key prefix, the job's runner, state field names.
_READ_LUA = """
local after = {redis.call('SMEMBERS', KEYS[7]), redis.call('EXISTS', KEYS[8]), redis.call('EXISTS', KEYS[9])}
if redis.call('EXISTS', KEYS[2]) == 1 then return {0, after} end
local p = ARGV[1]
local runs = redis.call('HVALS', KEYS[3])
local wanted, names = {[ARGV[2]] = true}, {ARGV[2]}
for _, raw in ipairs(runs) do
  local runner = cjson.decode(raw).runner
  if not wanted[runner] then wanted[runner] = true; names[#names + 1] = runner end
end
local reads = {}
for k, runner in ipairs(names) do
  local ids = redis.call('ZRANGE', p .. ':order:' .. runner, 0, -1)
  local raws = {}
  if #ids > 0 then raws = redis.call('HMGET', p .. ':records:' .. runner, unpack(ids)) end
  reads[k] = {runner, raws}
end
local states = {}
for _, name in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  states[#states + 1] = {name, redis.call('HMGET', p .. ':state:' .. name, unpack(ARGV, 3))}
end
return {1, after, redis.call('GET', KEYS[1]) or '', runs, reads, states,
        redis.call('GET', KEYS[5]) or '', redis.call('GET', KEYS[6]) or ''}
"""

# Write everything a job caused, if nobody wrote since it was read (else 0: read again): the run,
# its (re-)attributed records (keeping each runner's totals and history cap), the decisions'
# commands, the seen mark; then move the version on.
# KEYS: version, seen mark, the key's runs, pool set.
# ARGV: version read, key prefix, history, ttl, job id, run json, n, (runner, id, at, json) x n,
#       commands as JSON (a list of argument lists).
_COMMIT_LUA = _TOTALS_LUA + """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
local p, history = ARGV[2], tonumber(ARGV[3])
local function put(runner, id, at, raw)
  local records, order, state = p .. ':records:' .. runner, p .. ':order:' .. runner, p .. ':state:' .. runner
  local prev_raw = redis.call('HGET', records, id)
  local prev = prev_raw and cjson.decode(prev_raw) or nil
  local new = cjson.decode(raw)
  redis.call('HSET', records, id, raw)
  redis.call('ZADD', order, at, id)
  redis.call('SADD', KEYS[4], runner)
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
redis.call('HSET', KEYS[3], ARGV[5], ARGV[6])
redis.call('EXPIRE', KEYS[3], ARGV[4])
local i = 8
for _ = 1, tonumber(ARGV[7]) do
  put(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
  i = i + 4
end
for _, command in ipairs(cjson.decode(ARGV[i])) do redis.call(unpack(command)) end
redis.call('SET', KEYS[2], '1', 'EX', ARGV[4])
redis.call('INCR', KEYS[1])
return 1
"""


# The state fields a decision reads (and :class:`Changes` may update in passing).
DECIDING_FIELDS = ("has_label", "quarantined", "removed_by_person", "exempt", "probation_left", "warn_since",
                   "last_hold", "blame_sum", "job_count", "fail_sum")


@lru_cache(maxsize=8192)
def _record(raw: bytes) -> Record:
    """A stored record, decoded once per process: every job of a runner reads all its records again."""
    return record_from(orjson.loads(raw))


@dataclass
class Seen:
    """A job attempt recorded already: nothing to decide, but its quarantines' actions may be pending."""

    pending: set[str]  # runners whose quarantine actions are not all done
    storm_pending: bool  # a pool-wide storm issue waits to be filed


@dataclass
class Snapshot:
    """What handling one job reads, in one round trip. The job's own run is already among ``runs``."""

    version: str
    runs: list[JobOutcome]  # every known run of the job's key
    records: dict[str, list[bytes]]  # the kept records (stored JSON, oldest first) of the key's runners
    states: dict[str, dict[str, str]]  # every pool member's state (DECIDING_FIELDS)
    last_auto_quarantine: float | None
    storm_at: float | None
    pending: set[str]  # as in Seen, before this job's decisions
    storm_pending: bool
    roster_fresh: bool  # False: sync the org's runners from GitHub, then read again

    def existing(self, run: JobOutcome) -> dict[str, Any] | None:
        """The record a run has on its runner now (None: never recorded, or trimmed)."""
        for raw in self.records.get(run.runner, []):
            if _record(raw).job_id == run.job_id:
                return orjson.loads(raw)
        return None

    def pool_after(self, writes: list[dict[str, Any]], also: str, policy: HealthPolicy) -> dict[str, RunnerState]:
        """The pool as it will be once ``writes`` are committed: what the decisions are about.

        The runners written to (and ``also``, the job's runner) come with their records, trimmed as
        the commit will trim them, and totals summed from those records (the commit keeps the stored
        totals equal to these sums); the others count through their stored totals.
        """
        written: dict[str, dict[int, Record]] = {also: {}}
        for data in writes:
            written.setdefault(data["runner"], {})[data["job_id"]] = record_from(data)
        pool = {}
        for name in sorted(set(self.states) | set(written)):
            state = self.states.get(name, {})
            if name not in written:
                pool[name] = runner_state(name, state, [], policy)
                continue
            kept = {r.job_id: r for r in map(_record, self.records.get(name, []))} | written[name]
            records = sorted(kept.values(), key=lambda r: (r.at, str(r.job_id)))[-policy.history:]
            pool[name] = runner_state(name, state, records, policy)
            pool[name].blame_sum = sum(r.weight for r in records)
            pool[name].job_count = len(records)
            pool[name].fail_sum = sum(r.failed and r.cls != "CODE" for r in records)
        return pool


class Ledger:
    def __init__(self, client: aioredis.Redis, prefix: str, policy: HealthPolicy) -> None:
        self.r = client
        self.p = f"{prefix}:health"
        self.audit_key = f"{prefix}:audit"
        self.policy = policy
        self._read = client.register_script(_READ_LUA)
        self._commit = client.register_script(_COMMIT_LUA)

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
    def version_key(self) -> str:
        return f"{self.p}:version"

    @property
    def pool_key(self) -> str:
        return f"{self.p}:pool"

    @property
    def pending_key(self) -> str:
        return f"{self.p}:pending"

    def roster_fresh_key(self, org: str) -> str:
        """Set while the org's roster (its runners and their labels, from GitHub) is fresh."""
        return f"{self.p}:roster-fresh:{org}"

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

    # ---- one job: read, decide (elsewhere), commit ---------------------------------------------
    async def read(self, outcome: JobOutcome, org: str | None = None) -> Snapshot | Seen:
        """Everything deciding about this job needs; :class:`Seen` when the job attempt was recorded already.

        Read-only: nothing is written until :meth:`commit`, which also sets the seen mark, so a
        worker dying halfway leaves the job to be handled again on retry, and a redelivered
        event does not count twice. ``org``: whose roster's freshness to report (None: no roster).
        """
        key = self._key(outcome.key.as_str())
        answer = await self._read(
            keys=[self.version_key, self._seen(outcome), key, self.pool_key, self.last_auto_key, self.storm_at_key,
                  self.pending_key, self.storm_pending_key, self.roster_fresh_key(org or "")],
            args=[self.p, outcome.runner, *DECIDING_FIELDS])
        pending, storm_pending, roster_fresh = answer[1]
        seen = Seen(pending={x.decode() for x in pending}, storm_pending=bool(storm_pending))
        if not answer[0]:
            return seen
        version, raw_runs, reads, raw_states, last_auto, storm_at = answer[2:]
        runs = {run.job_id: run for run in (_run_from_json(outcome, orjson.loads(v)) for v in raw_runs)}
        runs[outcome.job_id] = _run_from_json(outcome, _run_json(outcome))
        return Snapshot(
            version=version.decode() if isinstance(version, bytes) else str(version),
            runs=list(runs.values()),
            records={runner.decode(): [x for x in raws if x] for runner, raws in reads},
            states={name.decode(): {f: v.decode() for f, v in zip(DECIDING_FIELDS, values, strict=True) if v}
                    for name, values in raw_states},
            last_auto_quarantine=float(last_auto) if last_auto else None,
            storm_at=float(storm_at) if storm_at else None,
            pending=seen.pending, storm_pending=seen.storm_pending, roster_fresh=bool(roster_fresh) or not org)

    async def commit(self, snapshot: Snapshot, outcome: JobOutcome, writes: list[dict[str, Any]],
                     changes: Changes) -> bool:
        """Write the job, its records and its decisions' changes at once; False if the pool moved meanwhile.

        Optimistic, like WATCH/MULTI in one round trip: the script compares the pool's version with the
        one read; on a mismatch it writes nothing and the caller reads again and decides again.
        """
        args: list[Any] = [snapshot.version, self.p, self.policy.history, self.ttl, outcome.job_id,
                           orjson.dumps(_run_json(outcome)), len(writes)]
        for record in writes:
            args += [record["runner"], record["job_id"], record["at"], orjson.dumps(record)]
        args.append(orjson.dumps(changes.commands))
        done = await self._commit(
            keys=[self.version_key, self._seen(outcome), self._key(outcome.key.as_str()), self.pool_key],
            args=args)
        return bool(done)

    # ---- reads and writes for commands, actions and the page ------------------------------------
    async def record(self, runner: str, job_id: int) -> dict[str, Any] | None:
        raw = await self.r.hget(self._records(runner), str(job_id))
        return orjson.loads(raw) if raw else None

    async def state(self, runner: str) -> dict[str, str]:
        raw = await self.r.hgetall(self._state(runner))
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def set_state(self, runner: str, **fields: Any) -> None:
        """Change a runner's state outside a job (commands, restore, roster): a decision read before is stale."""
        if fields:
            pipe = self.r.pipeline(transaction=True)
            pipe.hset(self._state(runner), mapping=_state_fields(fields))
            pipe.incr(self.version_key)
            await pipe.execute()

    async def fresh_start(self, runner: str, **fields: Any) -> None:
        """A restored runner's history starts over: its records and their running totals go together."""
        pipe = self.r.pipeline(transaction=True)
        pipe.delete(self._records(runner), self._order(runner))
        pipe.hset(self._state(runner), mapping=_state_fields({**fields, "blame_sum": 0, "fail_sum": 0,
                                                             "job_count": 0}))
        pipe.incr(self.version_key)
        await pipe.execute()

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

    async def audit(self, action: str, runner: str, reason: str, **extra: Any) -> None:
        await self.r.xadd(self.audit_key, _audit_entry(action, runner, reason, extra), maxlen=AUDIT_MAX,
                          approximate=True)


class Changes:
    """The writes a job's decisions cause, as commands for :meth:`Ledger.commit` to run atomically.

    Keeps the raw states read in the snapshot current, so a later decision about the same job
    (probation) sees the changes made before it.
    """

    def __init__(self, ledger: Ledger, snapshot: Snapshot) -> None:
        self.ledger = ledger
        self.states = snapshot.states
        self.commands: list[list[str]] = []
        self.stormed = False  # a storm issue is to be filed

    def state(self, runner: str) -> dict[str, str]:
        return self.states.setdefault(runner, {})

    def set_state(self, runner: str, **fields: Any) -> None:
        clean = _state_fields(fields)
        self.state(runner).update(clean)
        self.commands.append(["HSET", self.ledger._state(runner), *(x for kv in clean.items() for x in kv)])

    def audit(self, action: str, runner: str, reason: str, **extra: Any) -> None:
        entry = _audit_entry(action, runner, reason, extra)
        self.commands.append(["XADD", self.ledger.audit_key, "MAXLEN", "~", str(AUDIT_MAX), "*",
                              *(x for kv in entry.items() for x in kv)])

    def member(self, runner: str) -> None:
        self.commands.append(["SADD", self.ledger.pool_key, runner])

    def quarantined(self, runner: str, at: float) -> None:
        """The bookkeeping around an automatic quarantine: the rate limit's clock, the pending actions."""
        self.commands.append(["SET", self.ledger.last_auto_key, repr(at)])
        self.commands.append(["SADD", self.ledger.pending_key, runner])

    def storm(self, at: float, reason: str) -> None:
        self.stormed = True
        self.commands.append(["SET", self.ledger.storm_at_key, repr(at)])
        self.commands.append(["SET", self.ledger.storm_pending_key, reason])


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
