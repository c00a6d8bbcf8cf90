"""The worker: read the delivery stream through a consumer group and dispatch.

Guarantees, and how:

* **Nothing acknowledged before it is done.** An entry is XACKed (and deleted)
  only in the same Lua script that marks its delivery ``done``.
* **A dead worker's entries are not lost.** Every worker periodically runs
  XAUTOCLAIM for entries idle longer than ``NIMBYS_CLAIM_IDLE_MS``. While a
  handler runs, its worker refreshes the entry's idle time (XCLAIM ... JUSTID),
  so a slow handler is not mistaken for a dead one. An entry that kills its
  workers again and again is dead-lettered after ``NIMBYS_MAX_ATTEMPTS``
  deliveries.
* **Failures are retried without blocking.** A handler that raises puts its
  entry on the retry schedule (exponential backoff) and the worker moves on;
  after the last attempt the entry goes to the dead-letter stream with the
  error, for ``nimbys dead-letters``.
* **Redeliveries do nothing twice.** An entry whose delivery is already
  ``done`` is acknowledged without running handlers.
* **SIGTERM** stops reading; the event in hand is finished first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from gidgethub import routing, sansio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.context import BotContext
from bot.github.client import DryRunLog, GitHubClient
from bot.github.tokens import InstallationTokens
from bot.intake.queue import (
    DEAD_LETTER_LUA,
    F_ATTEMPT,
    F_BODY,
    F_CONTENT_TYPE,
    F_DELIVERY,
    F_EVENT,
    FINISH_LUA,
    GROUP,
    MOVE_DUE_LUA,
    SCHEDULE_RETRY_LUA,
    Keys,
    backoff_seconds,
    decode_fields,
    flatten,
)
from bot.logs import delivery_context, redact
from bot.settings import Settings

log = logging.getLogger("bot.worker")

REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


class PermanentError(Exception):
    """An entry that no retry can fix (undecodable); dead-lettered at once."""


def parse_entry(fields: dict[str, Any]) -> sansio.Event:
    """Rebuild the gidgethub Event from a stream entry, with gidgethub's own decoder."""
    headers = {
        "content-type": fields.get(F_CONTENT_TYPE) or "application/json",
        "x-github-event": fields.get(F_EVENT, ""),
        "x-github-delivery": fields.get(F_DELIVERY, ""),
    }
    body = fields.get(F_BODY) or b""
    try:
        event = sansio.Event.from_http(headers, body if isinstance(body, bytes) else body.encode())
    except Exception as exc:
        raise PermanentError(f"entry cannot be decoded: {type(exc).__name__}") from exc
    if not isinstance(event.data, dict):
        raise PermanentError("entry body is not a JSON object")
    return event


def installation_of(data: dict[str, Any]) -> int | None:
    inst = data.get("installation")
    value = inst.get("id") if isinstance(inst, dict) else None
    return value if isinstance(value, int) else None


class Worker:
    """One consumer of the delivery stream."""

    def __init__(
        self,
        settings: Settings,
        redis_client: aioredis.Redis,
        session: aiohttp.ClientSession,
        router: routing.Router,
    ) -> None:
        self.settings = settings
        self.redis = redis_client
        self.session = session
        self.router = router
        self.keys = Keys(settings.key_prefix)
        self.name = settings.worker_name
        self.ctx = BotContext(settings=settings, redis=redis_client, session=session)
        self._stopping = asyncio.Event()
        self._finish = redis_client.register_script(FINISH_LUA)
        self._retry = redis_client.register_script(SCHEDULE_RETRY_LUA)
        self._dead = redis_client.register_script(DEAD_LETTER_LUA)
        self._move_due = redis_client.register_script(MOVE_DUE_LUA)
        self.tokens: InstallationTokens | None = None
        if settings.has_app_credentials:
            self.tokens = InstallationTokens(
                session,
                redis_client,
                app_id=str(settings.app_id),
                private_key=str(settings.private_key),
                base_url=settings.github_api_url,
                user_agent=settings.user_agent,
                prefix=settings.key_prefix,
            )
        self.dry_run_log = (
            DryRunLog(redis_client, settings.key_prefix, settings.dry_run_actions_max)
            if settings.dry_run
            else None
        )
        self.handled = 0

    def request_stop(self) -> None:
        if not self._stopping.is_set():
            log.info("stop requested: finishing the event in hand, then exiting")
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def github_for(self, installation_id: int | None) -> GitHubClient:
        return GitHubClient(
            self.session,
            base_url=self.settings.github_api_url,
            user_agent=self.settings.user_agent,
            installation_id=installation_id,
            tokens=self.tokens,
            dry_run=self.dry_run_log,
            redis_client=self.redis,
            stats_key=f"{self.keys.prefix}:stats:github",
            retries=self.settings.github_retries,
            max_wait=self.settings.github_max_wait_seconds,
        )

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.keys.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self) -> None:
        """Consume until asked to stop. Redis outages are waited out, never fatal."""
        log.info("worker started", extra={"worker": self.name, "mode": self.settings.mode})
        from bot.pool.watcher import watch_forever

        watcher = asyncio.create_task(watch_forever(self.ctx, self._stopping))
        claim_every = max(0.05, self.settings.claim_idle_ms / 2000)
        last_claim = 0.0
        outage = 0
        group_ready = False
        while not self.stopping:
            try:
                if not group_ready:
                    await self.ensure_group()
                    group_ready = True
                await self._move_due(keys=[self.keys.stream, self.keys.retry],
                                     args=[time.time(), 100, self.keys.prefix])
                if time.monotonic() - last_claim >= claim_every:
                    last_claim = time.monotonic()
                    if await self._claim_abandoned():
                        continue
                block = int(min(1000, claim_every * 1000))
                answer = await self.redis.xreadgroup(
                    GROUP, self.name, {self.keys.stream: ">"}, count=1, block=block
                )
                if outage:
                    log.info("redis is back", extra={"after_errors": outage})
                    outage = 0
                for _stream, entries in answer or []:
                    for entry_id, raw in entries:
                        await self.handle_entry(entry_id, raw)
            except REDIS_DOWN as exc:
                outage += 1
                if outage == 1 or outage % 30 == 0:
                    log.warning("redis unreachable (%s); retrying", type(exc).__name__)
                await self._pause(min(5.0, 0.2 * outage))
            except ResponseError as exc:
                if "NOGROUP" in str(exc):
                    group_ready = False  # Redis came back empty: recreate the group
                    continue
                log.exception("redis refused a command")
                await self._pause(1.0)
        await watcher
        log.info("worker stopped", extra={"worker": self.name, "handled": self.handled})

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def _claim_abandoned(self) -> int:
        """Take over entries whose worker died (idle past the claim time). Returns how many."""
        _next, claimed, _deleted = await self.redis.xautoclaim(
            self.keys.stream, GROUP, self.name, min_idle_time=self.settings.claim_idle_ms,
            start_id="0-0", count=10,
        )
        done = 0
        for entry_id, raw in claimed:
            if self.stopping:
                break
            if not raw:
                continue
            pending = await self.redis.xpending_range(
                self.keys.stream, GROUP, min=entry_id, max=entry_id, count=1
            )
            times = pending[0]["times_delivered"] if pending else 1
            fields = decode_fields(raw)
            with delivery_context(fields.get(F_DELIVERY), fields.get(F_EVENT), None):
                log.warning("claimed an entry abandoned by a dead worker",
                            extra={"entry": _s(entry_id), "times_delivered": times})
                if times > self.settings.max_attempts:
                    await self._dead_letter(entry_id, fields, f"worker died {times - 1} times handling it")
                    done += 1
                    continue
            await self.handle_entry(entry_id, raw)
            done += 1
        return done

    async def handle_entry(self, entry_id: Any, raw: dict[Any, Any]) -> None:
        fields = decode_fields(raw)
        delivery = fields.get(F_DELIVERY, "")
        event_name = fields.get(F_EVENT, "")
        with delivery_context(delivery, event_name, None):
            status = await self.redis.get(self.keys.status(delivery))
            if status == b"done":
                log.info("already processed; acknowledging without running handlers")
                await self._finish(keys=[self.keys.stream, self.keys.status(delivery)],
                                   args=[GROUP, entry_id, self.settings.delivery_ttl_seconds])
                return
            try:
                event = parse_entry(fields)
            except PermanentError as exc:
                log.error("dead-lettering an undecodable entry: %s", exc)
                await self._dead_letter(entry_id, fields, str(exc))
                return
        installation = installation_of(event.data)
        action = event.data.get("action") if isinstance(event.data.get("action"), str) else None
        with delivery_context(delivery, event_name, installation):
            attempt = int(fields.get(F_ATTEMPT) or 1)
            log.info("event received", extra={"action": action, "attempt": attempt})
            started = time.monotonic()
            heartbeat = asyncio.create_task(self._heartbeat(entry_id))
            try:
                await self.router.dispatch(event, self.github_for(installation), self.ctx)
            except Exception as exc:
                heartbeat.cancel()
                await self._failed(entry_id, fields, exc)
                return
            finally:
                heartbeat.cancel()
            await self._finish(keys=[self.keys.stream, self.keys.status(delivery)],
                               args=[GROUP, entry_id, self.settings.delivery_ttl_seconds])
            self.handled += 1
            elapsed = round((time.monotonic() - started) * 1000, 1)
            await self._observe(time.time() - float(fields.get("received_at") or time.time()))
            log.info("event handled", extra={"action": action, "ms": elapsed})

    async def _observe(self, seconds: float) -> None:
        """Count processed deliveries and their latency from receipt (for /metrics)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hincrby(f"{self.keys.prefix}:stats:worker", "processed", 1)
        pipe.hincrbyfloat(f"{self.keys.prefix}:stats:worker", "latency_sum", seconds)
        for bound in (0.1, 0.5, 1, 5, 30, 120, 600):
            if seconds <= bound:
                pipe.hincrby(f"{self.keys.prefix}:stats:worker", f"latency_le:{bound}", 1)
        await pipe.execute()

    async def _heartbeat(self, entry_id: Any) -> None:
        """Keep our own entry's idle time low while its handler runs."""
        every = max(0.05, self.settings.claim_idle_ms / 3000)
        with contextlib.suppress(asyncio.CancelledError, *REDIS_DOWN):
            while True:
                await asyncio.sleep(every)
                await self.redis.xclaim(self.keys.stream, GROUP, self.name, 0, [entry_id], justid=True)

    async def _failed(self, entry_id: Any, fields: dict[str, Any], exc: Exception) -> None:
        attempt = int(fields.get(F_ATTEMPT) or 1)
        error = redact(f"{type(exc).__name__}: {exc}")[:2000]
        if attempt >= self.settings.max_attempts:
            log.error("handler failed on the last attempt; dead-lettered: %s", error,
                      exc_info=exc, extra={"attempt": attempt})
            await self._dead_letter(entry_id, fields, error)
            return
        delay = backoff_seconds(attempt, self.settings.retry_base_seconds, self.settings.retry_max_seconds)
        log.warning("handler failed; retry in %.1f s: %s", delay, error,
                    exc_info=exc, extra={"attempt": attempt})
        retry_fields = dict(fields, **{F_ATTEMPT: str(attempt + 1), "last_error": error})
        delivery = fields.get(F_DELIVERY, "")
        await self._retry(
            keys=[self.keys.stream, self.keys.retry, self.keys.retry_entry(delivery)],
            args=[GROUP, entry_id, time.time() + delay, delivery, *flatten(retry_fields)],
        )

    async def _dead_letter(self, entry_id: Any, fields: dict[str, Any], error: str) -> None:
        dead = dict(fields, error=error, failed_at=f"{time.time():.3f}", worker=self.name)
        await self._dead(
            keys=[self.keys.stream, self.keys.dead, self.keys.status(fields.get(F_DELIVERY, ""))],
            args=[GROUP, entry_id, self.settings.delivery_ttl_seconds,
                  self.settings.dead_letter_max, *flatten(dead)],
        )


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def run_worker(settings: Settings, router: routing.Router) -> None:
    """Run one worker until SIGTERM/SIGINT."""
    from bot.redis_conn import async_client

    redis_client = async_client(settings)
    timeout = aiohttp.ClientTimeout(total=60, connect=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        worker = Worker(settings, redis_client, session, router)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.request_stop)
        try:
            await worker.run()
        finally:
            await redis_client.aclose()
