"""Who the bot is on GitHub: its App's slug, to recognise its own comments.

Asked once (``GET /app`` with the App JWT) and kept in Redis for every worker;
``NIMBYS_APP_SLUG`` overrides it, and without App credentials (dry-run) it is
unknown, in which case callers fall back to "a bot's comment with our marker".
"""

from __future__ import annotations

from typing import Any

from gidgethub import HTTPException, apps

from bot.context import BotContext


async def bot_login(gh: Any, ctx: BotContext) -> str | None:
    """``<slug>[bot]``, the login of the App's comments, or None when it cannot be known."""
    settings = ctx.settings
    if settings.app_slug:
        return f"{settings.app_slug}[bot]"
    key = f"{ctx.prefix}:app:slug"
    cached = await ctx.redis.get(key)
    if cached:
        return f"{cached.decode()}[bot]"
    if not settings.has_app_credentials:
        return None
    jwt = apps.get_jwt(app_id=str(settings.app_id), private_key=str(settings.private_key))
    try:
        app = await gh.getitem("/app", jwt=jwt)
    except HTTPException:
        return None
    slug = app.get("slug") if isinstance(app, dict) else None
    if not slug:
        return None
    await ctx.redis.set(key, slug)
    return f"{slug}[bot]"
