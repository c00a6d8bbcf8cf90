"""What a handler gets besides the event and the GitHub client."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
import redis.asyncio as aioredis

from bot.settings import Settings


@dataclass
class BotContext:
    """Shared, per-worker resources: handlers are called as ``handler(event, gh, ctx)``."""

    settings: Settings
    redis: aioredis.Redis
    session: aiohttp.ClientSession

    @property
    def prefix(self) -> str:
        return self.settings.key_prefix
