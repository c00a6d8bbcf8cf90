"""Report lint findings on a pull request: gather the workflow files, lint, write check run and comment.

GitHub calls per PR event, in order (the tests count them):
list files (paginated) → the policy file at the base commit → each changed
workflow at the head commit (from the head repository for forks) → a
workflow's base version, only when its head runs on pull_request and it is not
new → check run: create, one update per batch of 50 annotations, the last one
completing it → the bot's comments (paginated) → create or edit the sticky
comment, unless its text is unchanged.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from dataclasses import dataclass
from typing import Any

from gidgethub import BadRequest, HTTPException

from bot.context import BotContext
from bot.github.identity import bot_login
from bot.lint.config import ConfigError, LintConfig, load_config
from bot.lint.engine import lint_files
from bot.lint.findings import Finding, Severity
from bot.lint.model import WorkflowModel
from bot.lint.source import Workflow, load_workflow
from bot.lint_report import report as render
from bot.lint_report.report import CHECK_NAME, MARKER, Problem, Report

log = logging.getLogger("bot.lint_report")

WORKFLOW_PATH = re.compile(r"^\.github/workflows/[^/]+\.ya?ml$")
CHANGED = frozenset({"added", "modified", "renamed", "copied", "changed"})
CONFIG_PATH = ".github/nimbys.yml"
CONTENTS = "/repos/{owner}/{repo}/contents/{+path}{?ref}"


@dataclass(frozen=True)
class PullRequestRef:
    """The PR fields the report needs, read defensively from a payload or the API."""

    repo: str  # base repository, owner/name
    number: int
    head_sha: str
    head_repo: str
    base_sha: str

    @classmethod
    def from_payload(cls, pr: Any, repository: Any) -> PullRequestRef | None:
        try:
            head, base = pr["head"], pr["base"]
            repo = (base.get("repo") or {}).get("full_name") or repository["full_name"]
            head_repo = (head.get("repo") or {}).get("full_name") or repo  # a deleted fork: read the base
            return cls(repo=repo, number=int(pr["number"]), head_sha=head["sha"], head_repo=head_repo,
                       base_sha=base["sha"])
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


def _split(full_name: str) -> dict[str, str]:
    owner, _, name = full_name.partition("/")
    return {"owner": owner, "repo": name}


async def fetch_file(gh: Any, repo: str, path: str, ref: str) -> bytes | None:
    """A file's bytes at a ref, or None when it does not exist there."""
    try:
        data = await gh.getitem(CONTENTS, {**_split(repo), "path": path, "ref": ref})
    except BadRequest as exc:
        if int(exc.status_code) == 404:
            return None
        raise
    if not isinstance(data, dict) or data.get("type", "file") != "file":
        raise ValueError("not a file")
    if data.get("encoding") != "base64":
        raise ValueError("too large to fetch through the contents API")
    try:
        return base64.b64decode(data.get("content") or "")
    except (binascii.Error, ValueError):
        raise ValueError("the API returned undecodable content") from None


async def report_pull_request(gh: Any, ctx: BotContext, pr: PullRequestRef) -> Report | None:
    """Lint the PR's changed NIMBYS workflows and report; None when it touches none."""
    files = [f async for f in gh.getiter("/repos/{owner}/{repo}/pulls/{number}/files{?per_page}",
                                         {**_split(pr.repo), "number": pr.number, "per_page": 100})]
    changed = [f for f in files if isinstance(f, dict) and WORKFLOW_PATH.match(str(f.get("filename", "")))
               and f.get("status") in CHANGED]
    if not changed:
        await _retire(gh, ctx, pr)
        return None
    config, problems = await _config(gh, pr)
    texts: dict[str, bytes] = {}
    for f in changed:
        path = f["filename"]
        try:
            data = await fetch_file(gh, pr.head_repo, path, pr.head_sha)
        except (ValueError, HTTPException) as exc:
            problems.append(Problem(path, f"could not be fetched ({_why(exc)})"))
            continue
        if data is None:
            problems.append(Problem(path, "not found at the head commit"))
            continue
        texts[path] = data
    results = lint_files(texts, config)
    linted = [p for p in texts if results[p].nimbys_jobs or _unparsable_pool_file(results[p].findings, texts[p],
                                                                                  config)]
    problems = [p for p in problems if p.path == CONFIG_PATH or _mentions_pool(texts.get(p.path, b""), config)
                or p.path not in texts]
    if not linted and not [p for p in problems if p.path != CONFIG_PATH]:
        await _retire(gh, ctx, pr)
        return None
    findings: list[Finding] = []
    status = {f["filename"]: f for f in changed}
    for path in linted:
        findings += await _escalate_trigger(gh, pr, results[path].findings, status[path], config)
    findings.sort(key=lambda f: (f.path, f.line, f.column, f.rule))
    outcome = Report(repo=pr.head_repo, head_sha=pr.head_sha, files=linted, findings=findings, problems=problems)
    await _check_run(gh, ctx, pr, outcome)
    # The PR's checks page, not the run: a run's URL changes each time, which would edit the comment for nothing.
    checks_url = f"https://github.com/{pr.repo}/pull/{pr.number}/checks"
    await _sticky_comment(gh, ctx, pr, render.comment(outcome, checks_url))
    log.info("lint report written", extra={"pr": f"{pr.repo}#{pr.number}", "conclusion": outcome.conclusion,
                                           "findings": len(findings)})
    return outcome


def _why(exc: Exception) -> str:
    if isinstance(exc, HTTPException):
        return f"GitHub answered {int(exc.status_code)}"
    return str(exc)


def _mentions_pool(data: bytes, config: LintConfig) -> bool:
    text = data.decode("utf-8", "replace").lower()
    return any(re.search(rf"(?<![\w-]){re.escape(label)}(?![\w-])", text) for label in config.pool)


def _unparsable_pool_file(findings: list[Finding], data: bytes, config: LintConfig) -> bool:
    """A file that does not parse is reported when it seems to target the pool (it names a pool label)."""
    return bool(findings) and findings[0].rule == "parse-error" and _mentions_pool(data, config)


async def _config(gh: Any, pr: PullRequestRef) -> tuple[LintConfig, list[Problem]]:
    """The policy from the *base* commit: a PR cannot switch the checks off for itself."""
    try:
        data = await fetch_file(gh, pr.repo, CONFIG_PATH, pr.base_sha)
        return load_config(data), []
    except ConfigError as exc:
        return LintConfig(), [Problem(CONFIG_PATH, f"invalid on the base branch, defaults used: {exc}")]
    except (ValueError, HTTPException) as exc:
        return LintConfig(), [Problem(CONFIG_PATH, f"could not be read, defaults used ({_why(exc)})")]


async def _escalate_trigger(gh: Any, pr: PullRequestRef, findings: list[Finding], changed: dict[str, Any],
                            config: LintConfig) -> list[Finding]:
    """`unreviewed-pr-trigger` is an error when this PR adds the workflow or adds the trigger to it."""
    trigger = [f for f in findings if f.rule == "unreviewed-pr-trigger"]
    if not trigger or config.severities.get("unreviewed-pr-trigger", Severity.NOTICE) is None:
        return findings
    added = changed.get("status") in {"added", "copied"}
    why = "this PR adds the workflow"
    if not added:
        base_path = changed.get("previous_filename") or changed["filename"]
        try:
            base = await fetch_file(gh, pr.repo, base_path, pr.base_sha)
        except (ValueError, HTTPException):
            base = b""
        loaded = load_workflow(base, base_path) if base is not None else None
        if loaded is None:
            added = True
        elif isinstance(loaded, Workflow):
            added = WorkflowModel(loaded, config.pool).trigger_node() is None
            why = "this PR adds the pull_request trigger"
    if not added:
        return findings
    out = []
    for f in findings:
        if f.rule == "unreviewed-pr-trigger":
            f = Finding(path=f.path, line=f.line, column=f.column, rule=f.rule, severity=Severity.ERROR,
                        message=f"{why}: it would run on the pool before a reviewer signed off",
                        guideline=f.guideline, end_line=f.end_line, end_column=f.end_column)
        out.append(f)
    return out


async def _check_run(gh: Any, ctx: BotContext, pr: PullRequestRef, outcome: Report) -> None:
    """Create the check run in progress, send annotations 50 at a time, complete it.

    Each event gets a new run (GitHub shows the latest of a name per commit): updating an old
    one would append its annotations a second time, as GitHub adds annotations on every update.
    """
    repo = _split(pr.repo)
    created = await gh.post("/repos/{owner}/{repo}/check-runs", repo, data={
        "name": CHECK_NAME, "head_sha": pr.head_sha, "status": "in_progress",
        "external_id": f"{pr.repo}#{pr.number}",
        "output": {"title": "Linting NIMBYS workflows…", "summary": "Linting the changed NIMBYS workflows."},
    })
    run_id = created.get("id") if isinstance(created, dict) else None
    if run_id is None:  # dry-run: nothing was created
        return
    title, summary = render.title(outcome), render.summary(outcome)
    chunks = render.batches(render.annotations(outcome)) or [[]]
    for index, chunk in enumerate(chunks):
        body: dict[str, Any] = {"output": {"title": title, "summary": summary, "annotations": chunk}}
        if index == len(chunks) - 1:
            body.update(status="completed", conclusion=outcome.conclusion)
        await gh.patch("/repos/{owner}/{repo}/check-runs/{id}", {**repo, "id": run_id}, data=body)


async def _bot_comments(gh: Any, ctx: BotContext, pr: PullRequestRef) -> list[dict[str, Any]]:
    login = await bot_login(gh, ctx)
    out = []
    async for c in gh.getiter("/repos/{owner}/{repo}/issues/{number}/comments{?per_page}",
                              {**_split(pr.repo), "number": pr.number, "per_page": 100}):
        user = c.get("user") or {} if isinstance(c, dict) else {}
        mine = user.get("login") == login if login else user.get("type") == "Bot"
        if mine and MARKER in str(c.get("body") or ""):
            out.append(c)
    return out


async def _sticky_comment(gh: Any, ctx: BotContext, pr: PullRequestRef, body: str) -> None:
    """Edit the bot's marked comment in place (only when its text changes), or create it."""
    existing = await _bot_comments(gh, ctx, pr)
    if existing:
        current = existing[0]
        if current.get("body") != body:
            await gh.patch("/repos/{owner}/{repo}/issues/comments/{id}", {**_split(pr.repo), "id": current["id"]},
                           data={"body": body})
        return
    await gh.post("/repos/{owner}/{repo}/issues/{number}/comments", {**_split(pr.repo), "number": pr.number},
                  data={"body": body})
    await ctx.redis.set(_commented_key(ctx, pr), "1", ex=90 * 24 * 3600)


def _commented_key(ctx: BotContext, pr: PullRequestRef) -> str:
    return f"{ctx.prefix}:lint-comment:{pr.repo}#{pr.number}"


async def _retire(gh: Any, ctx: BotContext, pr: PullRequestRef) -> None:
    """A PR that no longer touches NIMBYS workflows: update our comment if we ever wrote one, else nothing."""
    if not await ctx.redis.exists(_commented_key(ctx, pr)):
        return
    body = f"{MARKER}\n### 🌩️ NIMBYS workflow lint\n\nThis PR no longer changes NIMBYS workflows " \
           f"(as of `{pr.head_sha[:7]}`).\n"
    await _sticky_comment(gh, ctx, pr, body)
