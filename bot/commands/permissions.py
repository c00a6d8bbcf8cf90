"""Who may run what: asked from GitHub, cached for a minute in Redis, closed on doubt.

A 403 or 404 (or 302) from these endpoints means "not allowed", never an
error that lets the command through (bedevere's ``is_core_dev`` does the same).
"""

from __future__ import annotations

from typing import Any

from gidgethub import HTTPException

from bot.context import BotContext

CACHE_SECONDS = 60
WRITE_ROLES = frozenset({"admin", "maintain", "write"})


class Access:
    def __init__(self, gh: Any, ctx: BotContext) -> None:
        self.gh = gh
        self.ctx = ctx

    async def _cached(self, key: str, fetch: Any) -> str:
        full = f"{self.ctx.prefix}:perm:{key}"
        cached = await self.ctx.redis.get(full)
        if cached is not None:
            return cached.decode()
        value = await fetch()
        await self.ctx.redis.set(full, value, ex=CACHE_SECONDS)
        return value

    async def org_member(self, org: str, login: str) -> bool:
        async def fetch() -> str:
            try:
                await self.gh.getitem("/orgs/{org}/members/{username}", {"org": org, "username": login})
                return "yes"
            except HTTPException:
                return "no"

        return await self._cached(f"member:{org}:{login.lower()}", fetch) == "yes"

    async def org_admin(self, org: str, login: str) -> bool:
        async def fetch() -> str:
            try:
                data = await self.gh.getitem("/orgs/{org}/memberships/{username}", {"org": org, "username": login})
            except HTTPException:
                return "none"
            return str(data.get("role")) if data.get("state") == "active" else "none"

        return await self._cached(f"role:{org}:{login.lower()}", fetch) == "admin"

    async def repo_role(self, repo: str, login: str) -> str:
        owner, _, name = repo.partition("/")

        async def fetch() -> str:
            try:
                data = await self.gh.getitem("/repos/{owner}/{repo}/collaborators/{username}/permission",
                                             {"owner": owner, "repo": name, "username": login})
            except HTTPException:
                return "none"
            return str(data.get("role_name") or data.get("permission") or "none")

        return await self._cached(f"repo:{repo.lower()}:{login.lower()}", fetch)

    async def can_write(self, repo: str, login: str) -> bool:
        return await self.repo_role(repo, login) in WRITE_ROLES
