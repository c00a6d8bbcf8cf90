"""The GitHub API client handlers get: gidgethub's aiohttp client plus what a bot needs.

* **Lazy installation tokens.** No token is minted for an event whose handlers
  make no call; when one is needed it comes from the shared Redis cache
  (``bot.github.tokens``), so workers do not each mint their own.
* **Retries and rate limits** through gidgethub's ``handle_rate_limit_error``
  hook: 5xx retried with backoff; primary limit (403/429 with
  ``x-ratelimit-remaining: 0``) waits until ``x-ratelimit-reset``; secondary
  limit waits ``retry-after`` or at least 60 s. A wait longer than the
  configured maximum is not taken: the error propagates and the worker's own
  retry schedule takes over, so a worker is never parked for an hour.
* **Dry-run**: no write reaches GitHub. Each write is logged as one JSON line
  and kept in Redis (``nimbys actions``); the handler gets an empty 200.
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
from typing import Any

import aiohttp
import gidgethub.aiohttp
import redis.asyncio as aioredis
from gidgethub import HTTPException

from bot.github.tokens import InstallationTokens
from bot.logs import delivery_var

log = logging.getLogger("bot.github")

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
SECONDARY_LIMIT_FLOOR = 60.0


class DryRunLog:
    """Writes the bot would have made, kept in a capped Redis list."""

    def __init__(self, client: aioredis.Redis, prefix: str, cap: int) -> None:
        self.client = client
        self.key = f"{prefix}:dry-run:actions"
        self.cap = cap

    async def record(self, method: str, path: str, body: Any) -> None:
        entry = {
            "ts": time.time(),
            "delivery": delivery_var.get(),
            "method": method,
            "path": path,
            "body": body,
        }
        log.info("dry-run: would %s %s", method, path, extra={"dry_run": entry})
        pipe = self.client.pipeline(transaction=True)
        pipe.lpush(self.key, json.dumps(entry, ensure_ascii=False))
        pipe.ltrim(self.key, 0, self.cap - 1)
        await pipe.execute()


def wait_for_limit(exc: HTTPException, now: float) -> float | None:
    """Seconds to wait before retrying a rate-limited request, or None when not rate limited."""
    status = int(exc.status_code)
    headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
    if status not in (403, 429):
        return None
    retry_after = headers.get("retry-after")
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(retry_after)
            return max(0.0, parsed.timestamp() - now)
    if headers.get("x-ratelimit-remaining") == "0" and headers.get("x-ratelimit-reset"):
        try:
            return max(1.0, float(headers["x-ratelimit-reset"]) - now + 1)
        except ValueError:
            return SECONDARY_LIMIT_FLOOR
    message = str(exc).lower()
    if status == 429 or "secondary rate limit" in message or "abuse" in message:
        return SECONDARY_LIMIT_FLOOR
    return None


class GitHubClient(gidgethub.aiohttp.GitHubAPI):
    """gidgethub client for one installation, one event."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        user_agent: str,
        installation_id: int | None,
        tokens: InstallationTokens | None,
        dry_run: DryRunLog | None,
        redis_client: aioredis.Redis | None = None,
        stats_key: str | None = None,
        retries: int = 3,
        max_wait: float = 900.0,
        retry_base: float = 0.5,
    ) -> None:
        super().__init__(session, user_agent, base_url=base_url)
        self.installation_id = installation_id
        self.tokens = tokens
        self.dry_run_log = dry_run
        self.redis = redis_client
        self.stats_key = stats_key
        self.retries = retries
        self.max_wait = max_wait
        self.retry_base = retry_base

    @property
    def dry_run(self) -> bool:
        return self.dry_run_log is not None

    async def _request(
        self, method: str, url: str, headers: Any, body: bytes = b""
    ) -> tuple[int, Any, bytes]:
        path = url[len(self.base_url):] if url.startswith(self.base_url) else url
        if method in WRITE_METHODS and self.dry_run_log is not None:
            parsed = json.loads(body) if body else None
            await self.dry_run_log.record(method, path, parsed)
            return 200, {"content-type": "application/json"}, b"{}"
        headers = dict(headers)
        if "authorization" not in headers and self.tokens is not None and self.installation_id:
            token = await self.tokens.token(self.installation_id)
            headers["authorization"] = f"token {token}"
        started = time.monotonic()
        status, resp_headers, data = await super()._request(method, url, headers, body)
        elapsed_ms = round((time.monotonic() - started) * 1000, 1)
        log.debug("github %s %s -> %s", method, path.split("?")[0], status, extra={"ms": elapsed_ms})
        await self._count(status, resp_headers)
        return status, resp_headers, data

    async def _count(self, status: int, headers: Any) -> None:
        if self.redis is None or not self.stats_key:
            return
        pipe = self.redis.pipeline(transaction=False)
        pipe.hincrby(self.stats_key, f"status:{status}", 1)
        remaining = headers.get("x-ratelimit-remaining")
        if remaining is not None:
            pipe.hset(self.stats_key, "ratelimit_remaining", remaining)
        try:
            await pipe.execute()
        except Exception:  # metrics must never fail a call
            log.debug("could not record GitHub call metrics", exc_info=True)

    async def handle_rate_limit_error(
        self, *, method: str, url: str, exception: HTTPException, attempt: int
    ) -> bool:
        if attempt > self.retries:
            return False
        status = int(exception.status_code)
        wait = wait_for_limit(exception, time.time())
        if wait is None and status >= 500:
            wait = self.retry_base * (2 ** (attempt - 1))
        if wait is None:
            return False
        if wait > self.max_wait:
            log.warning("GitHub asks to wait %.0f s, more than %.0f s: giving up this attempt",
                        wait, self.max_wait, extra={"status": status})
            return False
        log.warning("GitHub answered %s to %s; retrying in %.1f s (attempt %d)",
                    status, method, wait, attempt, extra={"status": status})
        await self.sleep(wait)
        return True
