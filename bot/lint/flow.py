"""Walk a job's scripts statement by statement, with the environment in force at each one.

In force at a statement: the workflow's, job's and step's ``env:``, what earlier
steps wrote to ``$GITHUB_ENV`` (from PowerShell only ``$env:GITHUB_ENV`` works:
``>> $GITHUB_ENV`` there appends to an empty variable's path and sets nothing),
and the script's own assignments above it. A write to ``$GITHUB_ENV`` takes
effect for later steps, never for the step that writes it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from bot.lint.model import Job, ScriptLine, Step, items, scalar, script_lines
from bot.lint.shell import Env, is_powershell, statements, strip_comment, unwrap_start_process
from bot.lint.source import mapping_get

_PAIR = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)")
_GITHUB_ENV_PS = re.compile(r"\$env:GITHUB_ENV\b", re.I)
_GITHUB_ENV_SH = re.compile(r"\$\{?GITHUB_ENV\}?")
_GITHUB_ENV_CMD = re.compile(r"%GITHUB_ENV%", re.I)


@dataclass(slots=True)
class Point:
    """One statement of one script, with what is known at that point."""

    step: Step
    shell: str
    line: ScriptLine
    stmt: str
    resolved: str
    started: str | None  # the command a Start-Process statement starts
    env: Env
    assignment: bool
    inert: bool = False  # plain output (Write-Host "..."): runs nothing, writes nothing


# Output-only statements, when nothing in them can run or write anything else.
_OUTPUT = re.compile(r"^(?:Write-Host|Write-Output|Write-Verbose|Write-Information|echo)\b", re.I)
_ACTIVE = re.compile(r"[|>(`]|\$\(|github_env", re.I)


def is_inert(stmt: str) -> bool:
    head = stmt[:6].lower()
    if not (head.startswith("write-") or head.startswith("echo")):
        return False
    return bool(_OUTPUT.match(stmt)) and not _ACTIVE.search(stmt)


@lru_cache(maxsize=8192)
def line_statements(text: str, shell: str) -> tuple[tuple[str, bool], ...]:
    """A script line's statements, comment dropped, each with whether it is inert (pure: cached)."""
    code = strip_comment(text, shell)
    return tuple((stmt, is_inert(stmt)) for stmt in statements(code)) if code else ()


def github_env_write(resolved: str, raw: str, shell: str) -> tuple[str, str] | None:
    """``NAME=value`` appended to the file ``$GITHUB_ENV`` names, if this statement does that."""
    if "github_env" not in raw.lower():
        return None
    if is_powershell(shell):
        writes = _GITHUB_ENV_PS.search(raw)
    elif shell == "cmd":
        writes = _GITHUB_ENV_CMD.search(raw)
    else:
        writes = _GITHUB_ENV_SH.search(raw)
    if not writes or not re.search(r">>|Out-File|Add-Content|Set-Content|tee\b", raw, re.I):
        return None
    head = re.split(r">>|\|\s*(?:Out-File|Add-Content|tee)", resolved, maxsplit=1)[0]
    head = re.sub(r"^\s*(?:echo|Write-Output|Add-Content\s+\S+(?:\s+-Value)?)\s+", "", head, flags=re.I).strip()
    head = head.strip().strip("\"'")
    m = _PAIR.match(head)
    return (m.group(1), m.group(2).strip().strip("\"'")) if m else None


def walk(job: Job, contexts: dict[int, Env] | None = None) -> list[Point]:
    """Every statement of every script of the job, in order (computed once per job).

    ``contexts``, when given, is filled with the environment each step starts
    with (``uses:`` steps included), keyed by the step's index.
    """
    cached = job.__dict__.get("_walk")
    if cached is None:
        starts: dict[int, Env] = {}
        cached = (list(_walk(job, starts)), starts)
        job.__dict__["_walk"] = cached
    if contexts is not None:
        contexts.update(cached[1])
    return cached[0]


def _walk(job: Job, contexts: dict[int, Env]) -> Iterator[Point]:
    github_env: dict[str, str] = {}
    workflow_env = {k.value: scalar(v) or "" for k, v in items(mapping_get(job.workflow.root, "env"))}
    job_context: dict[str, dict[str, str]] = {}  # workflow + job env, resolved once per shell
    for step in job.steps:
        node = step.run
        shell = job.shell_of(step)
        if shell not in job_context:
            base = Env(shell)
            for layer in (workflow_env, job.env):
                base.env = {**base.env, **{k: base.resolve(v) for k, v in layer.items()}}
            job_context[shell] = base.env
        # ${{ env.X }} in a step's env reads the env context: workflow, job, earlier GITHUB_ENV writes.
        context = Env(shell, {**job_context[shell], **github_env})
        step_values = {k: context.resolve(v) for k, v in step.env.items()}
        env = Env(shell, {**context.env, **step_values})
        contexts[step.index] = Env(shell, dict(env.env))
        if node is None:
            continue
        lines = script_lines(job.workflow.workflow, node, shell)
        read = read_script(tuple(line.text for line in lines), shell, tuple(env.env.items()))
        for index, stmt, resolved, started, snapshot, assigned, inert in read.statements:
            yield Point(step, shell, lines[index], stmt, resolved, started, snapshot, assigned, inert)
        github_env.update(read.github_env)


@dataclass(frozen=True, slots=True)
class ReadScript:
    """One script read statement by statement: (line index, statement, resolved, started, env, assigned, inert)."""

    statements: tuple[tuple[int, str, str, str | None, Env, bool, bool], ...]
    github_env: tuple[tuple[str, str], ...]  # NAME=value lines it appends to $GITHUB_ENV, for later steps


@lru_cache(maxsize=1024)
def read_script(texts: tuple[str, ...], shell: str, env: tuple[tuple[str, str], ...]) -> ReadScript:
    """Pure in the script's lines, its shell and the environment it starts with, so cached.

    A long-lived worker lints the same workflows again on every push to a pull request;
    most steps come back unchanged. (The Env snapshots shared this way are never changed:
    assignments replace an Env's dicts, they do not change them.)
    """
    state = Env(shell, dict(env))
    snapshot = state.snapshot()
    out = []
    pending: dict[str, str] = {}
    for index, text in enumerate(texts):
        for stmt, inert in line_statements(text, shell):
            if inert:
                out.append((index, stmt, stmt, None, snapshot, False, True))
                continue
            assigned = state.assign(stmt)
            resolved = state.resolve(stmt)
            written = github_env_write(resolved, stmt, shell)
            if written:
                pending[written[0]] = written[1]
            if snapshot.env is not state.env or snapshot.local is not state.local:
                snapshot = state.snapshot()  # copy-on-write: a new one only after an assignment
            out.append((index, stmt, resolved, unwrap_start_process(resolved), snapshot, assigned, False))
    return ReadScript(tuple(out), tuple(pending.items()))
