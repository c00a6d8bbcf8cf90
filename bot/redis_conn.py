"""Redis clients with short timeouts.

The receiver must answer 503 quickly when Redis is down (so GitHub records a
failed delivery that can be redelivered) instead of hanging past GitHub's 10 s
limit; the worker must notice an outage and retry rather than block forever.
"""

from __future__ import annotations

import redis
import redis.asyncio as aioredis

from bot.settings import Settings


def sync_client(settings: Settings) -> redis.Redis:
    assert settings.redis_url, "REDIS_URL must be resolved before connecting"
    return redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=max(settings.redis_timeout_seconds, 5.0),
        socket_connect_timeout=settings.redis_timeout_seconds,
        health_check_interval=30,
    )


def async_client(settings: Settings) -> aioredis.Redis:
    assert settings.redis_url, "REDIS_URL must be resolved before connecting"
    return aioredis.Redis.from_url(
        settings.redis_url,
        socket_timeout=30.0,
        socket_connect_timeout=settings.redis_timeout_seconds,
        health_check_interval=30,
    )
