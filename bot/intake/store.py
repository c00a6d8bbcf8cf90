"""The web side of the queue: append verified deliveries, report the backlog.

Synchronous redis-py, because the receiver is a WSGI app; the worker uses the
async client on the same keys and scripts (``bot.intake.queue``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import redis

from bot.intake.queue import (
    ENQUEUE_LUA,
    F_RECEIVED_AT,
    Keys,
    entry_fields,
)


@dataclass(frozen=True)
class Backlog:
    """Deliveries received and not yet processed."""

    depth: int
    in_stream: int
    awaiting_retry: int
    oldest_age_seconds: float | None
    dead_letters: int


class IntakeStore:
    """Append deliveries to the stream; dedup by delivery id, atomically."""

    def __init__(self, client: redis.Redis, keys: Keys, *, queued_ttl: int) -> None:
        self.client = client
        self.keys = keys
        self.queued_ttl = queued_ttl
        self._enqueue = client.register_script(ENQUEUE_LUA)
        self._local = threading.local()

    def _own_connection(self) -> redis.Redis:
        """A connection kept by this thread (from the shared pool) for the hot path.

        Measured: redis-py's per-command pool checkout (a lock, a readiness poll,
        bookkeeping) cost as much as the enqueue itself under load. Created lazily,
        so it belongs to the gunicorn worker thread, never to the pre-fork master.
        """
        own = getattr(self._local, "client", None)
        if own is None:
            own = redis.Redis(connection_pool=self.client.connection_pool, single_connection_client=True)
            self._local.client = own
        return own

    def enqueue(
        self,
        *,
        event: str,
        delivery: str,
        content_type: str,
        body: bytes,
        headers: dict[str, str],
    ) -> str:
        """Return ``"queued"`` (new entry), ``"pending"`` (already queued) or ``"done"``."""
        fields = entry_fields(
            event=event, delivery=delivery, content_type=content_type, body=body, headers=headers
        )
        result = self._enqueue(
            keys=[self.keys.stream, self.keys.status(delivery), self.keys.stats],
            args=[self.queued_ttl, *fields],
            client=self._own_connection(),
        )
        result = result.decode() if isinstance(result, bytes) else str(result)
        if result == "done":
            return "done"
        if result == "queued":
            return "pending"
        return "queued"

    def count_refusal(self, reason: str) -> None:
        """Refusals are counted for /metrics; a Redis outage must not turn a 401 into a 500."""
        try:
            self.client.hincrby(self.keys.stats, f"refused:{reason}", 1)
        except redis.RedisError:
            pass

    def backlog(self) -> Backlog:
        pipe = self.client.pipeline(transaction=False)
        pipe.xlen(self.keys.stream)
        pipe.zcard(self.keys.retry)
        pipe.xrange(self.keys.stream, "-", "+", count=1)
        pipe.zrange(self.keys.retry, 0, 99)
        pipe.xlen(self.keys.dead)
        in_stream, retrying, head, retry_ids, dead = pipe.execute()
        received: list[float] = []
        if head:
            received.append(_received_at(head[0][1]))
        if retry_ids:
            pipe = self.client.pipeline(transaction=False)
            for delivery in retry_ids:
                d = delivery.decode() if isinstance(delivery, bytes) else delivery
                pipe.hget(self.keys.retry_entry(d), F_RECEIVED_AT)
            received += [float(v) for v in pipe.execute() if v]
        oldest = round(time.time() - min(received), 3) if received else None
        return Backlog(
            depth=in_stream + retrying,
            in_stream=in_stream,
            awaiting_retry=retrying,
            oldest_age_seconds=oldest,
            dead_letters=dead,
        )


def _received_at(fields: dict[Any, Any]) -> float:
    raw = fields.get(F_RECEIVED_AT.encode()) or fields.get(F_RECEIVED_AT)
    try:
        return float(raw)
    except (TypeError, ValueError):
        return time.time()
