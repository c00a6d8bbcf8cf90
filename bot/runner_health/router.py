"""workflow_job events: attribute failed jobs to runners, take bad runners out of the pool."""

from __future__ import annotations

import logging
from typing import Any

from gidgethub import HTTPException, routing, sansio

from bot.context import BotContext
from bot.runner_health.actions import carry_out, storm_issue
from bot.runner_health.ledger import Ledger
from bot.runner_health.outcomes import JobOutcome, outcome_from_payload
from bot.runner_health.process import process_outcome
from bot.runner_health.roster import sync_roster

router = routing.Router()
log = logging.getLogger("bot.runner_health")


def org_of(data: dict[str, Any]) -> str:
    org = data.get("organization") if isinstance(data.get("organization"), dict) else None
    if org and org.get("login"):
        return str(org["login"])
    repo = data.get("repository") if isinstance(data.get("repository"), dict) else {}
    return str((repo.get("owner") or {}).get("login") or "")


async def annotations_of(gh: Any, outcome: JobOutcome) -> list[str]:
    """The job's check-run annotations (a job's id is its check run's id); asked only for failed jobs."""
    if not outcome.failed or "/" not in outcome.key.repo:
        return []
    owner, _, repo = outcome.key.repo.partition("/")
    try:
        return [str(a.get("message") or "") async for a in gh.getiter(
            "/repos/{owner}/{repo}/check-runs/{id}/annotations{?per_page}",
            {"owner": owner, "repo": repo, "id": outcome.job_id, "per_page": 100})]
    except HTTPException as exc:
        log.warning("annotations of job %s unavailable (GitHub answered %s)", outcome.job_id, int(exc.status_code))
        return []


@router.register("workflow_job", action="completed")
async def track_completed_job(event: sansio.Event, gh: Any, ctx: BotContext) -> None:
    policy = ctx.health_policy
    outcome = outcome_from_payload(event.data, policy)
    if outcome is None:
        return
    ledger = Ledger(ctx.redis, ctx.prefix, policy)
    org = org_of(event.data)
    processed = await process_outcome(ledger, outcome, [], policy, org=org,
                                      refresh_roster=lambda: sync_roster(gh, ledger, org, force=True),
                                      fetch_annotations=lambda: annotations_of(gh, outcome))
    for decision in processed.decisions:
        log.info("runner %s: %s", decision.runner, decision.action, extra={"reason": decision.reason})
    for runner in sorted(processed.pending):  # this event's quarantines, and any left unfinished
        await carry_out(gh, ctx, ledger, org, runner)
    if processed.storm_pending:
        await storm_issue(gh, ledger)
