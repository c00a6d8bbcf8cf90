"""pull_request events: report the linter's findings on PRs that touch NIMBYS workflows."""

from __future__ import annotations

import logging
from typing import Any

from gidgethub import routing, sansio

from bot.context import BotContext
from bot.lint_report.pull_request import PullRequestRef, report_pull_request

router = routing.Router()
log = logging.getLogger("bot.lint_report")


@router.register("pull_request", action="opened")
@router.register("pull_request", action="synchronize")
@router.register("pull_request", action="reopened")
@router.register("pull_request", action="ready_for_review")
async def lint_pull_request(event: sansio.Event, gh: Any, ctx: BotContext) -> None:
    ref = PullRequestRef.from_payload(event.data.get("pull_request"), event.data.get("repository"))
    if ref is None:
        log.warning("pull_request payload without the head/base fields the report needs; skipped")
        return
    await report_pull_request(gh, ctx, ref)
