"""What a quarantine does on GitHub, resumable: each step clears its flag only once done.

Remove the pool label (404 on the label: already gone, done; 404 on the runner:
it no longer exists, logged), file or update the runner's one open issue
(found by a hidden marker) assigned to its maintainer, re-run each blamed job
once. Restore puts the label back, comments and closes the issue, and starts
probation. In shadow mode labels are left alone and the issue says what would
have been done.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Any

from gidgethub import BadRequest, HTTPException
from redis.exceptions import LockError

from bot.context import BotContext
from bot.runner_health.ledger import Ledger
from bot.runner_health.policy import HealthPolicy

log = logging.getLogger("bot.runner_health")

RUNNER_LABEL = "/orgs/{org}/actions/runners/{runner_id}/labels/{name}"
READ_ONLY_LABELS = frozenset({"self-hosted", "windows", "linux", "macos", "x64", "arm64", "arm"})


def marker(runner: str) -> str:
    return f"<!-- nimbys-runner: {runner} -->"


def _split(full: str) -> dict[str, str]:
    owner, _, name = full.partition("/")
    return {"owner": owner, "repo": name}


async def maintainer(gh: Any, org: str, runner: str, runner_id: str | None, policy: HealthPolicy) -> str | None:
    """The configured mapping; else a runner label that is a GitHub login; else the ALIAS of ALIAS-stx-N."""
    if runner in policy.maintainers:
        return policy.maintainers[runner]
    skip = READ_ONLY_LABELS | {x.lower() for x in policy.tracked_labels}
    if runner_id:
        try:
            data = await gh.getitem("/orgs/{org}/actions/runners/{runner_id}", {"org": org, "runner_id": runner_id})
            for label in data.get("labels") or []:
                name = label.get("name", "")
                if name.lower() in skip or not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})", name):
                    continue
                try:
                    await gh.getitem("/users/{username}", {"username": name})
                    return str(name)
                except BadRequest:
                    continue
        except HTTPException:
            pass
    m = re.match(r"^([A-Za-z0-9][A-Za-z0-9-]*)-stx-\d+$", runner)
    return m.group(1) if m else None


async def carry_out(gh: Any, ctx: BotContext, ledger: Ledger, org: str, runner: str) -> None:
    """Finish whatever a quarantine of this runner still has to do.

    One worker at a time per runner: another that finds the lock taken leaves the flags to its holder
    (were the holder to die, the lock expires and the next event's worker finishes them).
    """
    lock = ledger.r.lock(f"{ledger.p}:acting:{runner}", timeout=120, blocking=False)
    if not await lock.acquire():
        return
    try:
        await _carry_out(gh, ledger, org, runner)
    finally:
        with contextlib.suppress(LockError):
            await lock.release()


async def _carry_out(gh: Any, ledger: Ledger, org: str, runner: str) -> None:
    policy = ledger.policy
    state = await ledger.state(runner)
    if state.get("quarantined") != "1":
        await ledger.r.srem(ledger.pending_key, runner)
        return
    if state.get("pending_label") == "1":
        if not policy.shadow:
            await _remove_labels(gh, ledger, org, runner, state.get("runner_id") or "", policy)
        await ledger.set_state(runner, pending_label=0)
    if state.get("pending_issue") == "1":
        number = await _file_issue(gh, ledger, org, runner, state, policy)
        await ledger.set_state(runner, pending_issue=0, issue_number=number or "")
    if state.get("pending_rerun") == "1":
        for job_id in [j for j in (state.get("evidence") or "").split(",") if j]:
            record = await ledger.record(runner, int(job_id))
            repo = (record or {}).get("repo")
            if not repo or not await ledger.r.set(f"{ledger.p}:rerun:{job_id}", "1", nx=True, ex=14 * 86400):
                continue  # at most once per job
            try:
                await gh.post("/repos/{owner}/{repo}/actions/jobs/{job_id}/rerun",
                              {**_split(repo), "job_id": job_id}, data={})
            except HTTPException as exc:
                log.warning("could not re-run job %s: GitHub answered %s", job_id, int(exc.status_code))
        await ledger.set_state(runner, pending_rerun=0)
    await ledger.r.srem(ledger.pending_key, runner)


async def _remove_labels(gh: Any, ledger: Ledger, org: str, runner: str, runner_id: str,
                         policy: HealthPolicy) -> None:
    if not runner_id:
        log.error("cannot remove the pool label of %s: its runner id is unknown", runner)
        return
    for label in policy.quarantine_labels:
        try:
            await gh.delete(RUNNER_LABEL, {"org": org, "runner_id": runner_id, "name": label})
        except BadRequest as exc:
            if int(exc.status_code) != 404:
                raise
            try:
                await gh.getitem("/orgs/{org}/actions/runners/{runner_id}", {"org": org, "runner_id": runner_id})
            except BadRequest as gone:
                if int(gone.status_code) == 404:
                    log.warning("runner %s (id %s) no longer exists on GitHub; nothing to take out", runner,
                                runner_id)
                    await ledger.audit("runner_gone", runner, "the runner no longer exists on GitHub")
                    return
                raise
            log.info("label %s of %s was already gone", label, runner)


async def _evidence_lines(ledger: Ledger, runner: str, evidence: list[str]) -> list[str]:
    lines = ["| job | class | why | other runners on the same job |", "|---|---|---|---|"]
    for job_id in evidence:
        record = await ledger.record(runner, int(job_id))
        if not record:
            continue
        runs = await ledger.r.hgetall(f"{ledger.p}:key:{record.get('key')}")
        others = []
        import json

        for raw in runs.values():
            run = json.loads(raw)
            if run["runner"] != runner:
                others.append(f"{run['runner']}: {run['conclusion']}")
        lines.append(f"| [{job_id}]({record.get('url')}) | {record.get('cls')} | {record.get('why', '')} | "
                     f"{', '.join(others) or '—'} |")
    return lines


async def _file_issue(gh: Any, ledger: Ledger, org: str, runner: str, state: dict[str, str],
                      policy: HealthPolicy) -> int | None:
    repo = _split(policy.issues_repo)
    evidence = [j for j in (state.get("evidence") or "").split(",") if j]
    table = await _evidence_lines(ledger, runner, evidence)
    verb = "would have been taken out" if policy.shadow else "was taken out"
    summary = (f"**{runner}** {verb} of the pool by nimbys-bot: {state.get('reason', '')}.\n\n"
               + "\n".join(table) + "\n")
    number = await _open_issue(gh, policy, runner, state)
    if number:
        await gh.post("/repos/{owner}/{repo}/issues/{number}/comments", {**repo, "number": number},
                      data={"body": f"Quarantined again.\n\n{summary}"})
        return number
    login = await maintainer(gh, org, runner, state.get("runner_id"), policy)
    who = f"@{login}, this is your laptop." if login else \
        " ".join(f"@{a}" for a in policy.admins) + " (no maintainer known for this runner)."
    body = (f"{marker(runner)}\n{summary}\n{who}\n\n"
            f"**To restore** once it is fixed: comment `/nimbys restore {runner}` here (its maintainer, or "
            f"anyone with write access to this repository). It then runs on probation: a failure blamed on it "
            f"within its next {policy.probation_jobs} jobs takes it out again.\n")
    data: dict[str, Any] = {"title": f"Runner {runner} taken out of the pool" + (" (shadow)" if policy.shadow
                                                                                  else ""), "body": body}
    if login:
        data["assignees"] = [login]
    try:
        created = await gh.post("/repos/{owner}/{repo}/issues", repo, data=data)
    except BadRequest as exc:
        if "assignees" in data and int(exc.status_code) == 422:  # not assignable: mention only
            del data["assignees"]
            created = await gh.post("/repos/{owner}/{repo}/issues", repo, data=data)
        else:
            raise
    return created.get("number") if isinstance(created, dict) else None


async def _open_issue(gh: Any, policy: HealthPolicy, runner: str, state: dict[str, str]) -> int | None:
    """The runner's open issue: the one we remember, else found by its marker."""
    repo = _split(policy.issues_repo)
    if state.get("issue_number"):
        try:
            issue = await gh.getitem("/repos/{owner}/{repo}/issues/{number}",
                                     {**repo, "number": state["issue_number"]})
            if issue.get("state") == "open":
                return int(issue["number"])
        except HTTPException:
            pass
    async for issue in gh.getiter("/repos/{owner}/{repo}/issues{?state,per_page}",
                                  {**repo, "state": "open", "per_page": 100}):
        if marker(runner) in str(issue.get("body") or "") and "pull_request" not in issue:
            return int(issue["number"])
    return None


async def restore(gh: Any, ctx: BotContext, ledger: Ledger, org: str, runner: str, by: str) -> str:
    """Put the runner back with probation. Returns what was done, for the reply or the CLI."""
    policy = ledger.policy
    state = await ledger.state(runner)
    if state.get("quarantined") != "1":
        return f"{runner} is not quarantined"
    if not policy.shadow and state.get("runner_id"):
        await gh.post("/orgs/{org}/actions/runners/{runner_id}/labels", {"org": org, "runner_id": state["runner_id"]},
                      data={"labels": list(policy.quarantine_labels)})
    number = await _open_issue(gh, policy, runner, state)
    if number:
        repo = _split(policy.issues_repo)
        await gh.post("/repos/{owner}/{repo}/issues/{number}/comments", {**repo, "number": number},
                      data={"body": f"Restored by @{by}: back in the pool, on probation for its next "
                                    f"{policy.probation_jobs} jobs."})
        await gh.patch("/repos/{owner}/{repo}/issues/{number}", {**repo, "number": number},
                       data={"state": "closed", "state_reason": "completed"})
    await ledger.fresh_start(runner, quarantined=0, probation_left=policy.probation_jobs, restored_by=by,
                             warn_since="", last_hold="", pending_label=0, pending_issue=0, pending_rerun=0)
    await ledger.audit("restore", runner, f"restored by {by}; probation for {policy.probation_jobs} jobs")
    return f"{runner} restored; on probation for {policy.probation_jobs} jobs"


async def storm_issue(gh: Any, ledger: Ledger) -> None:
    """One pool-wide issue for a storm (once per storm window)."""
    reason = await ledger.r.getdel(ledger.storm_pending_key)
    if not reason:
        return
    repo = _split(ledger.policy.issues_repo)
    await gh.post("/repos/{owner}/{repo}/issues", repo, data={
        "title": "Many NIMBYS runners failing at once: nothing was quarantined",
        "body": f"<!-- nimbys-storm -->\n{reason.decode()}.\n\nThe likely cause is pool-wide (a driver update, a "
                "network outage, a broken commit), not the laptops, so the bot quarantined nobody. "
                + " ".join(f"@{a}" for a in ledger.policy.admins)})
