"""``nimbys runner restore NAME``: the restore path from a terminal (the slash command's twin)."""

from __future__ import annotations

import sys

import aiohttp
import redis.asyncio as aioredis
from gidgethub import HTTPException, apps

from bot.context import BotContext
from bot.github.client import DryRunLog, GitHubClient
from bot.github.tokens import InstallationTokens
from bot.runner_health.actions import restore
from bot.runner_health.ledger import Ledger
from bot.settings import Settings


async def restore_command(name: str, org: str, by: str) -> int:
    settings = Settings.from_env()
    if not settings.redis_url:
        print("nimbys runner: REDIS_URL is not set (the bot's Redis holds the runner's state)", file=sys.stderr)
        return 2
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        async with aiohttp.ClientSession() as session:
            ctx = BotContext(settings=settings, redis=client, session=session)
            installation = None
            tokens = None
            if settings.has_app_credentials:
                jwt = apps.get_jwt(app_id=str(settings.app_id), private_key=str(settings.private_key))
                app_gh = GitHubClient(session, base_url=settings.github_api_url, user_agent=settings.user_agent,
                                      installation_id=None, tokens=None, dry_run=None)
                try:
                    installation = (await app_gh.getitem("/orgs/{org}/installation", {"org": org}, jwt=jwt))["id"]
                except HTTPException as exc:
                    print(f"nimbys runner: the App is not installed on {org} ({int(exc.status_code)})", file=sys.stderr)
                    return 2
                tokens = InstallationTokens(session, client, app_id=str(settings.app_id),
                                            private_key=str(settings.private_key), base_url=settings.github_api_url,
                                            user_agent=settings.user_agent, prefix=settings.key_prefix)
            gh = GitHubClient(session, base_url=settings.github_api_url, user_agent=settings.user_agent,
                              installation_id=installation, tokens=tokens,
                              dry_run=DryRunLog(client, settings.key_prefix, settings.dry_run_actions_max)
                              if settings.dry_run else None)
            done = await restore(gh, ctx, Ledger(client, settings.key_prefix, ctx.health_policy), org, name, by)
    finally:
        await client.aclose()
    print(done)
    return 0 if "restored" in done else 1
