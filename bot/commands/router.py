"""issue_comment events: `/nimbys …` commands, authorised, acknowledged and always answered.

Only ``created`` runs commands (an edit does not run them again); comments of
bots, the bot itself included, are ignored; a redelivered comment runs once.
Feedback: 👀 at once, then 🚀 (all succeeded) or 😕 (a refusal or a failure),
and one reply comment per command comment.
"""

from __future__ import annotations

import logging
from typing import Any

from gidgethub import HTTPException, routing, sansio

from bot.commands.handlers import Invocation, run
from bot.commands.parse import MAX_COMMANDS, parse_commands
from bot.commands.permissions import Access
from bot.context import BotContext
from bot.runner_health.ledger import Ledger
from bot.runner_health.router import org_of

router = routing.Router()
log = logging.getLogger("bot.commands")


async def _react(gh: Any, repo: str, comment_id: int, content: str) -> None:
    owner, _, name = repo.partition("/")
    try:
        await gh.post("/repos/{owner}/{repo}/issues/comments/{id}/reactions",
                      {"owner": owner, "repo": name, "id": comment_id}, data={"content": content})
    except HTTPException as exc:
        log.warning("could not react to comment %s (GitHub answered %s)", comment_id, int(exc.status_code))


@router.register("issue_comment", action="created")
async def run_commands(event: sansio.Event, gh: Any, ctx: BotContext) -> None:
    data = event.data
    comment = data.get("comment") if isinstance(data.get("comment"), dict) else {}
    user = comment.get("user") if isinstance(comment.get("user"), dict) else {}
    login = str(user.get("login") or "")
    if not login or user.get("type") == "Bot" or login.endswith("[bot]"):
        return
    commands, over = parse_commands(str(comment.get("body") or ""))
    if not commands:
        return
    issue = data.get("issue") if isinstance(data.get("issue"), dict) else {}
    repo = str((data.get("repository") or {}).get("full_name") or "")
    comment_id = comment.get("id")
    if not repo or not isinstance(comment_id, int) or not isinstance(issue.get("number"), int):
        log.warning("issue_comment payload without repository, comment or issue; skipped")
        return
    done_key = f"{ctx.prefix}:commands:done:{comment_id}"
    if await ctx.redis.exists(done_key):
        log.info("commands of comment %s already answered", comment_id)
        return
    await _react(gh, repo, comment_id, "eyes")
    inv = Invocation(gh=gh, ctx=ctx, org=org_of(data), repo=repo, number=issue["number"],
                     is_pr="pull_request" in issue, login=login, access=Access(gh, ctx),
                     ledger=Ledger(ctx.redis, ctx.prefix, ctx.health_policy))
    parts, all_ok = [], True
    for cmd in commands:
        try:
            text, ok = await run(cmd, inv)
        except HTTPException as exc:
            text, ok = f"GitHub answered {int(exc.status_code)}; nothing more was done.", False
        log.info("command %s by %s: %s", cmd.name, login, "done" if ok else "refused or failed")
        parts.append(f"**`{cmd.line}`**: {text}")
        all_ok = all_ok and ok
    if over:
        parts.append(f"({over} more command(s) ignored: at most {MAX_COMMANDS} per comment.)")
    owner, _, name = repo.partition("/")
    await gh.post("/repos/{owner}/{repo}/issues/{number}/comments",
                  {"owner": owner, "repo": name, "number": issue["number"]},
                  data={"body": f"@{login}\n\n" + "\n\n".join(parts)})
    await _react(gh, repo, comment_id, "rocket" if all_ok else "confused")
    await ctx.redis.set(done_key, "1", ex=7 * 86400)
