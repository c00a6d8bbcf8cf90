"""What each `/nimbys` command does, after its permission check. Each returns (reply text, success)."""

from __future__ import annotations

import difflib
import logging
import time
from dataclasses import dataclass
from typing import Any

from gidgethub import HTTPException

from bot.commands.parse import USAGE, Command, help_text
from bot.commands.permissions import Access
from bot.context import BotContext
from bot.lint_report.pull_request import PullRequestRef, report_pull_request
from bot.runner_health.actions import carry_out, maintainer, restore
from bot.runner_health.decide import score
from bot.runner_health.ledger import Ledger
from bot.runner_health.roster import sync_roster

log = logging.getLogger("bot.commands")


@dataclass
class Invocation:
    """Where and by whom a command comment was written."""

    gh: Any
    ctx: BotContext
    org: str
    repo: str
    number: int
    is_pr: bool
    login: str
    access: Access
    ledger: Ledger

    @property
    def owner_repo(self) -> dict[str, str]:
        owner, _, name = self.repo.partition("/")
        return {"owner": owner, "repo": name}


async def run(cmd: Command, inv: Invocation) -> tuple[str, bool]:
    handler = HANDLERS.get(cmd.name)
    if handler is None:
        return f"unknown command `{cmd.name}`. Commands:\n\n{help_text()}", False
    problem = cmd.usage_error()
    if problem:
        return f"{problem}. Usage: `{USAGE[cmd.name]}`", False
    return await handler(cmd, inv)


async def _help(cmd: Command, inv: Invocation) -> tuple[str, bool]:
    return help_text(), True


def _refused(why: str) -> tuple[str, bool]:
    return f"not allowed: {why}.", False


async def _runner(inv: Invocation, name: str) -> tuple[str | None, str]:
    """The runner named (exactly, ignoring case), or None and a reply naming the closest ones."""
    await sync_roster(inv.gh, inv.ledger, inv.org)
    names = await inv.ledger.runners()
    for known in names:
        if known.lower() == name.lower():
            return known, ""
    close = difflib.get_close_matches(name.lower(), [n.lower() for n in names], n=3, cutoff=0.5)
    real = [n for n in names if n.lower() in close]
    hint = f" Did you mean {', '.join(f'`{n}`' for n in real)}?" if real else ""
    return None, f"no runner `{name}` in the pool.{hint}"


async def _status(cmd: Command, inv: Invocation) -> tuple[str, bool]:
    if not await inv.access.org_member(inv.org, inv.login):
        return _refused(f"`status` is for members of {inv.org}")
    await sync_roster(inv.gh, inv.ledger, inv.org)
    pool = await inv.ledger.pool(with_records=set(await inv.ledger.runners()))
    policy = inv.ledger.policy
    rows = ["| runner | state | score | last failures | maintainer |", "|---|---|---:|---|---|"]
    for name, st in sorted(pool.items()):
        raw = await inv.ledger.state(name)
        if st.quarantined:
            state = f"quarantined by {raw.get('quarantined_by') or 'nimbys-bot'}"
        elif st.removed_by_person:
            state = "taken out by hand"
        elif not st.carries_label:
            state = "not in the pool (stx-test)"
        elif st.exempt:
            state = "exempt"
        elif st.probation_left:
            state = f"probation ({st.probation_left} jobs left)"
        elif st.warn_since:
            state = "warn"
        else:
            state = "active"
        if raw.get("status") == "offline":
            state += ", offline"
        failures = [r for r in st.records[-policy.window:] if r.failed]
        last = ", ".join(sorted({r.cls or "?" for r in failures})) if failures else "—"
        who = policy.maintainers.get(name) or (name.split("-stx-")[0] if "-stx-" in name else "—")
        rows.append(f"| `{name}` | {state} | {score(st.records, policy):g} | {len(failures)} ({last}) | {who} |")
    return "\n".join(rows) if len(rows) > 2 else "no runners known yet", True


async def _allowed_pr(inv: Invocation, what: str) -> tuple[PullRequestRef | None, tuple[str, bool] | None]:
    """The PR a PR command acts on (read once), or the reply refusing it.

    Allowed: write access to the repository, or the PR's author when an org member.
    """
    if not inv.is_pr:
        return None, (f"`{what}` works on a pull request.", False)
    writer = await inv.access.can_write(inv.repo, inv.login)
    try:
        pr = await inv.gh.getitem("/repos/{owner}/{repo}/pulls/{number}", {**inv.owner_repo, "number": inv.number})
    except HTTPException:
        pr = None
    author = str(((pr or {}).get("user") or {}).get("login", ""))
    if not writer and not (author.lower() == inv.login.lower() and await inv.access.org_member(inv.org, inv.login)):
        return None, _refused(f"`{what}` needs write access to {inv.repo}, or to be this PR's author and a member "
                              f"of {inv.org}")
    ref = PullRequestRef.from_payload(pr, {"full_name": inv.repo}) if pr else None
    return (ref, None) if ref else (None, ("could not read this pull request.", False))


async def _requeue(cmd: Command, inv: Invocation) -> tuple[str, bool]:
    ref, refusal = await _allowed_pr(inv, "requeue")
    if ref is None:
        return refusal or ("", False)
    pool_labels = {x.lower() for x in inv.ledger.policy.tracked_labels}
    runs = [r async for r in inv.gh.getiter("/repos/{owner}/{repo}/actions/runs{?head_sha,per_page}",
                                            {**inv.owner_repo, "head_sha": ref.head_sha, "per_page": 100},
                                            iterable_key="workflow_runs")]
    wanted = {int(a) for a in cmd.args}
    lines, done = [], 0
    for run in runs:
        if wanted and run["id"] not in wanted:
            continue
        if run.get("conclusion") not in {"failure", "timed_out"} and not wanted:
            continue
        attempt = run.get("run_attempt") or 1
        jobs = [j async for j in inv.gh.getiter(
            "/repos/{owner}/{repo}/actions/runs/{run_id}/attempts/{attempt}/jobs{?per_page}",
            {**inv.owner_repo, "run_id": run["id"], "attempt": attempt, "per_page": 100}, iterable_key="jobs")]
        failed = [j for j in jobs if j.get("conclusion") in {"failure", "timed_out"}
                  and {x.lower() for x in j.get("labels") or []} & pool_labels]
        if not failed:
            continue
        await inv.gh.post("/repos/{owner}/{repo}/actions/runs/{run_id}/rerun-failed-jobs",
                          {**inv.owner_repo, "run_id": run["id"]}, data={})
        done += 1
        notes = []
        for runner in sorted({j.get("runner_name") or "?" for j in failed}):
            st = await inv.ledger.state(runner)
            out = st.get("quarantined") == "1" or st.get("removed_by_person") == "1"
            notes.append(f"`{runner}`" + (" (now out of the pool)" if out else ""))
        lines.append(f"- [{run.get('name', run['id'])} #{run['id']}]({run.get('html_url', '')}): "
                     f"{len(failed)} failed job(s) re-queued; they had run on {', '.join(notes)}")
    if not done:
        return "no failed NIMBYS jobs to re-queue on this PR's head.", False
    return "re-queued:\n" + "\n".join(lines), True


async def _quarantine(cmd: Command, inv: Invocation) -> tuple[str, bool]:
    if not await inv.access.org_member(inv.org, inv.login):
        return _refused(f"`quarantine` is for members of {inv.org}")
    runner, problem = await _runner(inv, cmd.args[0])
    if runner is None:
        return problem, False
    state = await inv.ledger.state(runner)
    if state.get("quarantined") == "1":
        return f"`{runner}` is already out of the pool (by {state.get('quarantined_by')}).", True
    reason = " ".join(cmd.args[1:]) or "no reason given"
    await inv.ledger.set_state(runner, quarantined=1, quarantined_by=inv.login, reason=f"{inv.login}: {reason}",
                               quarantined_at=time.time(), evidence="", pending_label=1, pending_issue=1,
                               pending_rerun=0, probation_left=0)
    await inv.ledger.r.sadd(inv.ledger.pending_key, runner)
    await inv.ledger.audit("quarantine", runner, f"by {inv.login}: {reason}", by=inv.login)
    await carry_out(inv.gh, inv.ctx, inv.ledger, inv.org, runner)
    return f"`{runner}` taken out of the pool: {reason}. Only `/nimbys restore {runner}` puts it back.", True


async def _restore(cmd: Command, inv: Invocation) -> tuple[str, bool]:
    runner, problem = await _runner(inv, cmd.args[0])
    if runner is None:
        return problem, False
    policy = inv.ledger.policy
    state = await inv.ledger.state(runner)
    keeper = await maintainer(inv.gh, inv.org, runner, state.get("runner_id"), policy)
    allowed = bool(keeper) and keeper.lower() == inv.login.lower()
    if not allowed and await inv.access.org_member(inv.org, inv.login):
        allowed = await inv.access.can_write(policy.issues_repo, inv.login)
    if not allowed:
        return _refused(f"`restore` is for the runner's maintainer, or members of {inv.org} with write access "
                        f"to {policy.issues_repo}")
    done = await restore(inv.gh, inv.ctx, inv.ledger, inv.org, runner, inv.login)
    return done + ".", "restored" in done


async def _exempt(cmd: Command, inv: Invocation) -> tuple[str, bool]:
    policy = inv.ledger.policy
    admin = inv.login.lower() in {a.lower() for a in policy.admins} or await inv.access.org_admin(inv.org, inv.login)
    if not admin:
        return _refused(f"`exempt` is for admins of {inv.org} or the pool's admins")
    runner, problem = await _runner(inv, cmd.args[0])
    if runner is None:
        return problem, False
    on = cmd.args[1].lower() == "on"
    await inv.ledger.set_state(runner, exempt=1 if on else 0)
    await inv.ledger.audit("exempt" if on else "unexempt", runner, f"by {inv.login}")
    return (f"`{runner}` is exempt from automatic quarantine." if on
            else f"`{runner}` is no longer exempt."), True


async def _lint(cmd: Command, inv: Invocation) -> tuple[str, bool]:
    ref, refusal = await _allowed_pr(inv, "lint")
    if ref is None:
        return refusal or ("", False)
    report = await report_pull_request(inv.gh, inv.ctx, ref)
    if report is None:
        return "this PR changes no NIMBYS workflow.", True
    return f"linted again: {report.conclusion} ({len(report.findings)} findings).", True


HANDLERS = {"help": _help, "status": _status, "requeue": _requeue, "quarantine": _quarantine,
            "restore": _restore, "exempt": _exempt, "lint": _lint}
