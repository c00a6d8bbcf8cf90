"""App authentication: a JWT from gidgethub, installation tokens shared through Redis.

bedevere mints a new installation token for every delivery; a token lives an
hour, so here it is minted once per installation and kept in Redis until a few
minutes before it expires, for every worker process to use. A short lock keeps
several workers that all miss the cache at once from minting several tokens.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time

import aiohttp
import gidgethub.aiohttp
import redis.asyncio as aioredis
from gidgethub import apps

from bot.logs import register_secret

log = logging.getLogger("bot.github.tokens")

REFRESH_MARGIN_SECONDS = 300


class InstallationTokens:
    """Installation access tokens for one App, cached in Redis and in the process."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        redis_client: aioredis.Redis,
        *,
        app_id: str,
        private_key: str,
        base_url: str,
        user_agent: str,
        prefix: str,
    ) -> None:
        self.session = session
        self.redis = redis_client
        self.app_id = app_id
        self.private_key = private_key
        self.base_url = base_url
        self.user_agent = user_agent
        self.prefix = prefix
        self._local: dict[int, tuple[str, float]] = {}

    def _key(self, installation_id: int) -> str:
        return f"{self.prefix}:token:{installation_id}"

    async def token(self, installation_id: int) -> str:
        cached = self._local.get(installation_id)
        if cached and cached[1] > time.time():
            return cached[0]
        key = self._key(installation_id)
        for _ in range(50):
            raw = await self.redis.get(key)
            if raw:
                return self._remember(installation_id, raw.decode(), await self.redis.ttl(key))
            if await self.redis.set(f"{key}:lock", "1", nx=True, ex=10):
                try:
                    return await self._mint(installation_id)
                finally:
                    await self.redis.delete(f"{key}:lock")
            await asyncio.sleep(0.1)
        return await self._mint(installation_id)

    async def _mint(self, installation_id: int) -> str:
        gh = gidgethub.aiohttp.GitHubAPI(self.session, self.user_agent, base_url=self.base_url)
        answer = await apps.get_installation_access_token(
            gh, installation_id=str(installation_id), app_id=self.app_id, private_key=self.private_key
        )
        token = answer["token"]
        register_secret(token)
        expires = dt.datetime.fromisoformat(answer["expires_at"].replace("Z", "+00:00")).timestamp()
        ttl = int(expires - time.time() - REFRESH_MARGIN_SECONDS)
        if ttl > 0:
            await self.redis.set(self._key(installation_id), token, ex=ttl)
        log.info("minted an installation token", extra={"for_installation": installation_id, "ttl": ttl})
        return self._remember(installation_id, token, ttl)

    def _remember(self, installation_id: int, token: str, ttl: int) -> str:
        register_secret(token)
        if ttl and ttl > 0:
            self._local[installation_id] = (token, time.time() + min(ttl, 60))
        return token
