"""Who is in the pool: the org's runners and their labels, from GitHub, cached in Redis.

Decisions need the whole pool (its size for the floor and the storm guard, who
still carries the label), not just the runners seen in jobs. Listing the org's
runners is one paginated call, cached for ``ROSTER_TTL`` seconds and shared by
workers. A runner in the pool without its label that the bot did not take out
was taken out by a person, and is never put back automatically.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from gidgethub import HTTPException

from bot.runner_health.ledger import Ledger

log = logging.getLogger("bot.runner_health")
ROSTER_TTL = 300


async def sync_roster(gh: Any, ledger: Ledger, org: str, force: bool = False) -> None:
    if not org:
        return
    fresh = ledger.roster_fresh_key(org)
    if not force and await ledger.r.exists(fresh):
        return
    tracked = {label.lower() for label in ledger.policy.tracked_labels}
    quarantine = {label.lower() for label in ledger.policy.quarantine_labels}
    try:
        runners = [r async for r in gh.getiter("/orgs/{org}/actions/runners{?per_page}",
                                               {"org": org, "per_page": 100}, iterable_key="runners")]
    except HTTPException as exc:
        log.warning("could not list the org's runners (GitHub answered %s)", int(exc.status_code))
        return
    for runner in runners:
        name = runner.get("name")
        if not isinstance(name, str) or not name:
            continue
        labels = [str(x.get("name", "")) for x in runner.get("labels") or [] if isinstance(x, dict)]
        lowered = {x.lower() for x in labels}
        state = await ledger.state(name)
        if not (lowered & tracked) and not state:
            continue  # not a pool runner and never was
        has_label = bool(lowered & quarantine)
        fields: dict[str, Any] = {"runner_id": runner.get("id"), "labels": json.dumps(labels),
                                  "has_label": int(has_label), "status": runner.get("status", ""),
                                  "busy": int(bool(runner.get("busy")))}
        by_bot = state.get("quarantined") == "1"
        had_label = state.get("has_label") == "1" or state.get("removed_by_person") == "1"
        if has_label:
            fields["removed_by_person"] = 0  # (a person may have put it back)
        elif not by_bot and had_label:
            if state.get("removed_by_person") != "1":
                await ledger.audit("removed_by_person", name, "the pool label was removed by hand")
            fields["removed_by_person"] = 1
        await ledger.set_state(name, **fields)
        await ledger.r.sadd(ledger.pool_key, name)
    await ledger.r.set(fresh, "1", ex=ROSTER_TTL)
