"""Ask GitHub again for deliveries that failed while the bot was down or Redis was unreachable.

GitHub does not redeliver a failed delivery by itself. A delivery answered 503
(Redis down) or never answered (the bot unreachable) is listed by
``GET /app/hook/deliveries?status=failure``; those neither queued nor
processed here are requested again (``POST …/attempts``), once each. Refusals
of ours (4xx: a bad signature, a malformed body) would fail again and are left
alone. GitHub keeps deliveries for 3 days, so that is the default window.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from gidgethub import HTTPException, apps

from bot.intake.queue import Keys
from bot.settings import Settings

log = logging.getLogger("bot.intake")


def _ts(value: Any) -> float:
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


async def redeliver_failed(gh: Any, client: aioredis.Redis, settings: Settings, now: float | None = None,
                           limit: int = 100) -> list[str]:
    """Request redelivery of recent failed deliveries we never received; returns their delivery ids."""
    now = time.time() if now is None else now
    window = settings.redeliver_hours * 3600
    keys = Keys(settings.key_prefix)
    jwt = apps.get_jwt(app_id=str(settings.app_id), private_key=str(settings.private_key))
    asked: list[str] = []
    try:
        async for item in gh.getiter("/app/hook/deliveries{?per_page,status}",
                                     {"per_page": 100, "status": "failure"}, jwt=jwt):
            if now - _ts(item.get("delivered_at")) > window:
                break  # newest first: the rest is older still
            guid, code = str(item.get("guid") or ""), int(item.get("status_code") or 0)
            if not guid or 400 <= code < 500:
                continue  # our refusals would fail again
            if await client.get(keys.status(guid)) in (b"queued", b"done"):
                continue  # it did reach us (a later attempt, or a redelivery already)
            if not await client.set(f"{settings.key_prefix}:redelivery:{guid}", "1", nx=True, ex=int(window)):
                continue  # asked once already
            await gh.post("/app/hook/deliveries/{id}/attempts", {"id": item["id"]}, data=b"", jwt=jwt)
            asked.append(guid)
            log.info("asked GitHub to redeliver a delivery that failed", extra={"redelivered": guid,
                                                                                 "status_code": code})
            if len(asked) >= limit:
                break
    except HTTPException as exc:
        log.warning("could not list or redeliver failed deliveries (GitHub answered %s)", int(exc.status_code))
    return asked
