"""The pool watcher: the org's runners every few minutes, by one worker at a time.

The same periodic pass asks GitHub again for deliveries that failed while the
bot was down (``bot.intake.recover``).

Keeps each runner's status (online, offline, busy) and labels (``roster``),
notes when a runner went offline (a laptop that fell asleep), and reminds the
maintainer of a quarantined runner offline for ``reminder_offline_days`` days
on its issue: GitHub deletes self-hosted runners offline for 14 days.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from gidgethub import HTTPException, apps

from bot.context import BotContext
from bot.github.client import GitHubClient
from bot.intake.recover import redeliver_failed
from bot.runner_health.ledger import Ledger
from bot.runner_health.roster import sync_roster

log = logging.getLogger("bot.pool")


async def watch_once(gh: Any, ctx: BotContext, org: str, now: float | None = None) -> None:
    now = time.time() if now is None else now
    policy = ctx.health_policy
    ledger = Ledger(ctx.redis, ctx.prefix, policy)
    await sync_roster(gh, ledger, org, force=True)
    for name in await ledger.runners():
        st = await ledger.state(name)
        if st.get("status") == "offline":
            if not st.get("offline_since"):
                await ledger.set_state(name, offline_since=now)
                if st.get("has_label") == "1" and st.get("quarantined") != "1":
                    await ledger.audit("offline", name, "in the pool but offline (asleep?)")
                continue
        elif st.get("offline_since"):
            await ledger.set_state(name, offline_since="", reminded=0)
            continue
        offline_for = now - float(st.get("offline_since") or now)
        if st.get("quarantined") == "1" and st.get("issue_number") and st.get("reminded") != "1" \
                and offline_for >= policy.reminder_offline_days * 86400:
            owner, _, repo = policy.issues_repo.partition("/")
            days = int(offline_for // 86400)
            await gh.post("/repos/{owner}/{repo}/issues/{number}/comments",
                          {"owner": owner, "repo": repo, "number": st["issue_number"]},
                          data={"body": f"Reminder: `{name}` has been offline for {days} days. GitHub deletes "
                                        "self-hosted runners that stay offline for 14 days; bring it back online "
                                        f"(and `/nimbys restore {name}` once it is fixed) to keep its registration."})
            await ledger.set_state(name, reminded=1)
            await ledger.audit("reminder", name, f"offline for {days} days")


async def org_client(ctx: BotContext) -> GitHubClient | None:
    """A client for the org's installation (its id asked once with the App JWT and kept in Redis)."""
    settings = ctx.settings
    if not settings.has_app_credentials:
        return None
    from bot.github.tokens import InstallationTokens

    key = f"{ctx.prefix}:installation:{settings.org}"
    cached = await ctx.redis.get(key)
    base = dict(base_url=settings.github_api_url, user_agent=settings.user_agent)
    if cached is None:
        jwt = apps.get_jwt(app_id=str(settings.app_id), private_key=str(settings.private_key))
        app_gh = GitHubClient(ctx.session, installation_id=None, tokens=None, dry_run=None, **base)
        try:
            found = await app_gh.getitem("/orgs/{org}/installation", {"org": settings.org}, jwt=jwt)
        except HTTPException as exc:
            log.warning("the App is not installed on %s (GitHub answered %s)", settings.org, int(exc.status_code))
            return None
        cached = str(found["id"]).encode()
        await ctx.redis.set(key, cached, ex=3600)
    tokens = InstallationTokens(ctx.session, ctx.redis, app_id=str(settings.app_id),
                                private_key=str(settings.private_key), prefix=settings.key_prefix, **base)
    return GitHubClient(ctx.session, installation_id=int(cached), tokens=tokens, dry_run=None,
                        redis_client=ctx.redis, stats_key=f"{ctx.prefix}:stats:github", **base)


async def watch_forever(ctx: BotContext, stopping: asyncio.Event) -> None:
    """Every NIMBYS_WATCH_SECONDS, one worker of all (a Redis lock) polls the org's runners."""
    every = ctx.settings.watch_seconds
    if every <= 0:
        return
    while not stopping.is_set():
        try:
            if await ctx.redis.set(f"{ctx.prefix}:pool:watch-lock", ctx.settings.worker_name, nx=True, ex=every):
                gh = await org_client(ctx)
                if gh is not None:
                    await watch_once(gh, ctx, ctx.settings.org)
                    if ctx.settings.redeliver_hours > 0:
                        await redeliver_failed(gh, ctx.redis, ctx.settings)
        except Exception:  # the watcher must never take the worker down
            log.exception("pool watcher failed; next try in %s s", every)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=every)
