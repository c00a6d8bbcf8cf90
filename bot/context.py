"""What a handler gets besides the event and the GitHub client."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis

from bot.runner_health.policy import HealthPolicy, load_policy
from bot.settings import Settings


@dataclass
class BotContext:
    """Shared, per-worker resources: handlers are called as ``handler(event, gh, ctx)``."""

    settings: Settings
    redis: aioredis.Redis
    session: aiohttp.ClientSession
    policy_text: str | None = field(default=None, repr=False)

    @cached_property
    def health_policy(self) -> HealthPolicy:
        """The runner-health policy from NIMBYS_CONFIG (the defaults when unset)."""
        text = self.policy_text
        if text is None and self.settings.policy_path:
            text = Path(self.settings.policy_path).read_text()
        return load_policy(text)

    @property
    def prefix(self) -> str:
        return self.settings.key_prefix
