"""The delivery queue: one Redis Stream, a retry schedule and a dead-letter stream.

Why this shape:

* A delivery is appended to the stream only after it was verified, together with
  its status key, in one Lua script: the dedup check and the append cannot be
  split by a crash or by a second web process receiving the same redelivery.
* Workers read through one consumer group, so any number of them share the
  work; an entry stays pending until the worker that took it finished, and a
  live worker claims it (XAUTOCLAIM) when its owner died.
* A finished entry is acknowledged *and deleted*, so the stream holds exactly
  the deliveries received and not yet processed: its length is the queue depth.
* A failed attempt leaves the stream for a sorted set keyed by the time it is
  due again (exponential backoff) instead of blocking a worker while it waits;
  any worker moves due entries back, atomically.

Status of a delivery id (``<prefix>:delivery:<id>``): ``queued`` while it is in
the stream or the retry schedule, ``done`` once processed (GitHub's redelivery
of it is answered 200 and not queued), ``failed`` once dead-lettered (a
redelivery is processed again).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

GROUP = "workers"

# Fields of a stream entry. The body is the raw request body, byte for byte.
F_EVENT = "event"
F_DELIVERY = "delivery"
F_CONTENT_TYPE = "content_type"
F_HOOK_ID = "hook_id"
F_TARGET_TYPE = "target_type"
F_TARGET_ID = "target_id"
F_RECEIVED_AT = "received_at"
F_ATTEMPT = "attempt"
F_BODY = "body"

# Headers the handlers may need, besides event, delivery and content type.
KEPT_HEADERS = {
    "x-github-hook-id": F_HOOK_ID,
    "x-github-hook-installation-target-type": F_TARGET_TYPE,
    "x-github-hook-installation-target-id": F_TARGET_ID,
}


@dataclass(frozen=True)
class Keys:
    """Every Redis key of the intake, under one prefix (several bots can share a Redis)."""

    prefix: str = "nimbys"

    @property
    def stream(self) -> str:
        return f"{self.prefix}:deliveries"

    @property
    def retry(self) -> str:
        return f"{self.prefix}:retry"

    @property
    def dead(self) -> str:
        return f"{self.prefix}:dead-letters"

    @property
    def stats(self) -> str:
        return f"{self.prefix}:stats:intake"

    def status(self, delivery: str) -> str:
        return f"{self.prefix}:delivery:{delivery}"

    def retry_entry(self, delivery: str) -> str:
        return f"{self.prefix}:retry:{delivery}"


# KEYS: stream, status, stats.  ARGV: queued_ttl, then field/value pairs.
# Returns the new entry id, or "done" / "queued" when the delivery is known.
ENQUEUE_LUA = """
local st = redis.call('GET', KEYS[2])
if st == 'done' then
  redis.call('HINCRBY', KEYS[3], 'duplicate_done', 1)
  return 'done'
end
if st == 'queued' then
  redis.call('HINCRBY', KEYS[3], 'duplicate_queued', 1)
  return 'queued'
end
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
redis.call('SET', KEYS[2], 'queued', 'EX', tonumber(ARGV[1]))
redis.call('HINCRBY', KEYS[3], 'accepted', 1)
return id
"""

# KEYS: stream, retry zset.  ARGV: now (s), max entries, prefix.
# Moves due retries back to the stream; returns how many moved.
MOVE_DUE_LUA = """
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, delivery in ipairs(due) do
  local hkey = ARGV[3] .. ':retry:' .. delivery
  local fields = redis.call('HGETALL', hkey)
  if #fields > 0 then
    redis.call('XADD', KEYS[1], '*', unpack(fields))
  end
  redis.call('DEL', hkey)
  redis.call('ZREM', KEYS[2], delivery)
end
return #due
"""

# KEYS: stream, status.  ARGV: group, entry id, ttl.
FINISH_LUA = """
redis.call('SET', KEYS[2], 'done', 'EX', tonumber(ARGV[3]))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
"""

# KEYS: stream, retry zset, retry hash.  ARGV: group, entry id, due (s), delivery, fields...
SCHEDULE_RETRY_LUA = """
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], unpack(ARGV, 5))
redis.call('ZADD', KEYS[2], tonumber(ARGV[3]), ARGV[4])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
"""

# KEYS: stream, dead stream, status.  ARGV: group, entry id, ttl, maxlen, fields...
DEAD_LETTER_LUA = """
redis.call('XADD', KEYS[2], 'MAXLEN', '~', tonumber(ARGV[4]), '*', unpack(ARGV, 5))
redis.call('SET', KEYS[3], 'failed', 'EX', tonumber(ARGV[3]))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
"""


def entry_fields(
    *,
    event: str,
    delivery: str,
    content_type: str,
    body: bytes,
    headers: dict[str, str],
    received_at: float | None = None,
) -> list[Any]:
    """Flatten a verified delivery into stream field/value pairs."""
    pairs: list[Any] = [
        F_EVENT, event,
        F_DELIVERY, delivery,
        F_CONTENT_TYPE, content_type,
        F_RECEIVED_AT, f"{received_at if received_at is not None else time.time():.6f}",
        F_ATTEMPT, "1",
    ]  # fmt: skip
    for header, name in KEPT_HEADERS.items():
        if headers.get(header):
            pairs += [name, headers[header]]
    pairs += [F_BODY, body]
    return pairs


def decode_fields(raw: dict[Any, Any]) -> dict[str, Any]:
    """Stream fields as str, except the body, which stays bytes."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.decode() if isinstance(key, bytes) else key
        if name != F_BODY and isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        out[name] = value
    return out


def flatten(fields: dict[str, Any]) -> list[Any]:
    pairs: list[Any] = []
    for key, value in fields.items():
        pairs += [key, value]
    return pairs


def backoff_seconds(attempt: int, base: float, cap: float) -> float:
    """Delay before attempt ``attempt + 1``: base, 2·base, 4·base, ... capped."""
    return min(cap, base * (2 ** max(0, attempt - 1)))
