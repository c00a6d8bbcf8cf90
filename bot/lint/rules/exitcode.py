"""unchecked-exit-code: a native program's failure that PowerShell would let pass.

GitHub runs PowerShell steps with ``$ErrorActionPreference = 'stop'`` (which
stops on cmdlet errors, not on a program's exit code) and appends
``exit $LASTEXITCODE``, so only the *last* native program's exit code fails
the step. Reading forward from each native program, the first of these
decides:

* a check of ``$LASTEXITCODE`` / ``$?``: fine;
* another native program: the first one's failure is lost, reported;
* ``$LASTEXITCODE = 0``: its code is replaced, reported;
* ``exit 0``/``exit 1`` as the very next statement: its code is replaced, reported;
* the end of the script: GitHub's epilogue reports it, fine.

Setting ``$PSNativeCommandUseErrorActionPreference = $true`` turns every later
native failure into an error, so nothing after it is reported. A ``Start-Job``
script block is a script of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from bot.lint.flow import Point, walk
from bot.lint.model import Job, ScriptLine, script_lines
from bot.lint.rules.base import Report
from bot.lint.shell import is_powershell, program, words

NATIVE_NAMES = frozenset({
    "python", "python3", "py", "pip", "pip3", "pytest", "conda", "gaia", "gaia-cli", "uv", "uvx", "npm", "npx",
    "node", "git", "cmake", "ctest", "msbuild", "cmd", "makensis", "ninja", "cl", "link", "nuget", "dotnet",
    "huggingface-cli", "hf", "winget", "choco", "msiexec", "curl.exe", "tar", "7z",
})  # fmt: skip
_CHECK = re.compile(
    r"^(?:}?\s*(?:else)?if|while|until|switch)\s*\(.*(?:\$LASTEXITCODE|\$\?)"
    r"|^exit\s+\$LASTEXITCODE|^\$\w+\s*=\s*\$LASTEXITCODE|^throw\b.*\$LASTEXITCODE"
    r"|^return\s+\$LASTEXITCODE",
    re.I,
)
_RESET = re.compile(r"^\$(?:global:)?LASTEXITCODE\s*=\s*\d+\s*$", re.I)
_EXIT = re.compile(r"^exit\s+\d+\s*$", re.I)
_STRICT = re.compile(r"^\$PSNativeCommandUseErrorActionPreference\s*=\s*\$true", re.I)
_START_JOB = re.compile(r"\bStart-Job\b", re.I)


@dataclass
class _Event:
    kind: str  # native, check, reset, exit, other
    point: Point
    label: str = ""


def native_label(point: Point) -> str | None:
    """The program a statement runs natively (PowerShell), or None for cmdlets, scripts, .NET calls."""
    return None if point.assignment else _native_label(point.resolved)


_ASSIGNED_TO = re.compile(r"^(?:\$[\w:]+\s*=\s*)")
_OPEN_PAREN = re.compile(r"^\(\s*")
_NOT_NATIVE = re.compile(r"^(?:Start-Process|saps|start|Write-|Get-|Set-|New-|Remove-|Test-|Invoke-|\[)", re.I)
_CALL = re.compile(r"^&\s*")
_EXTENSION = re.compile(r"\.([a-z0-9]+)$")


@lru_cache(maxsize=8192)
def _native_label(resolved: str) -> str | None:
    text = resolved.strip()
    body = _OPEN_PAREN.sub("", _ASSIGNED_TO.sub("", text))
    if _NOT_NATIVE.match(body):
        return None
    if body[:1] in "\"'":
        return None  # a string on its own is output, not a program call (that needs `&`)
    prog = program(body)
    if not prog:
        return None
    first = words(_CALL.sub("", body))
    raw = first[0].lower() if first else ""
    extension = _EXTENSION.search(raw.replace("\\", "/").rsplit("/", 1)[-1])
    if (extension and extension.group(1) != "exe" and prog not in NATIVE_NAMES) or prog == "chcp":
        return None
    if prog in {"powershell", "pwsh"}:
        return prog + " -File" if re.search(r"\s-File\b", body, re.I) else None
    if prog in NATIVE_NAMES or prog.startswith("lemonade"):
        return prog
    if raw.endswith(".exe") or (body.startswith("&") and raw.endswith(".exe")):
        return prog
    return None


def _events(points: list[Point]) -> list[_Event]:
    events = []
    for point in points:
        if point.inert:
            events.append(_Event("other", point))
            continue
        kind = _statement_kind(point.stmt)
        if kind:
            events.append(_Event(kind, point))
        else:
            label = native_label(point)
            events.append(_Event("native" if label else "other", point, label or ""))
    return events


@lru_cache(maxsize=8192)
def _statement_kind(statement: str) -> str | None:
    """check, reset, exit or strict, from the statement's own text; None: see whether it runs a program."""
    stmt = statement.strip()
    low = stmt.lower()
    reads_code = "lastexitcode" in low or "$?" in low
    if reads_code and _CHECK.search(stmt):
        return "check"
    if reads_code and _RESET.match(stmt):
        return "reset"
    if low.startswith("exit") and _EXIT.match(stmt):
        return "exit"
    if "psnative" in low and _STRICT.match(stmt):
        return "strict"
    return None


def check_job(report: Report, job: Job) -> None:
    scripts: dict[int, list[Point]] = {}
    for point in walk(job):
        if is_powershell(point.shell):
            scripts.setdefault(point.step.index, []).append(point)
    for index, points in scripts.items():
        step = job.steps_by_index[index]
        assert step.run is not None
        in_job = _start_job_lines(script_lines(job.workflow.workflow, step.run, points[0].shell)) \
            if "start-job" in step.run.value.lower() else {}
        main = [p for p in points if p.line.line not in in_job]
        blocks: dict[int, list[Point]] = {}
        for point in points:
            if point.line.line in in_job and not _START_JOB.search(point.stmt):
                blocks.setdefault(in_job[point.line.line], []).append(point)
        for script in (main, *blocks.values()):
            _check_script(report, _events(script))


def _start_job_lines(lines: tuple[ScriptLine, ...]) -> dict[int, int]:
    """File lines inside a Start-Job script block, mapped to the line that opens it."""
    inside: dict[int, int] = {}
    opener, depth = 0, 0
    joined = "\n".join(line.text for line in lines)  # one search, not one a line
    starts = {joined.count("\n", 0, m.start()) for m in _START_JOB.finditer(joined)}
    for index, line in enumerate(lines):
        if not opener and index in starts and "{" in line.text:
            opener, depth = line.line, 0
        if opener:
            inside[line.line] = opener
            depth += line.text.count("{") - line.text.count("}")
            if depth <= 0:
                opener = 0
    return inside


def _check_script(report: Report, events: list[_Event]) -> None:
    strict = False
    for i, event in enumerate(events):
        if event.kind == "strict":
            strict = True
        if event.kind != "native" or strict:
            continue
        why = _verdict(events, i)
        if why:
            line = event.point.line
            report.add("unchecked-exit-code", line.line, line.column,
                       f"`{event.label}`: exit code not checked; {why}")


def _verdict(events: list[_Event], i: int) -> str | None:
    for j in range(i + 1, len(events)):
        nxt = events[j]
        if nxt.kind == "check":
            return None
        if nxt.kind == "native":
            return (f"`{nxt.label}` on line {nxt.point.line.line} runs next, so a failure here goes unnoticed "
                    "(add `if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }`)")
        if nxt.kind == "reset":
            return f"`$LASTEXITCODE` is reset on line {nxt.point.line.line}, hiding a failure"
        if nxt.kind == "exit":
            if j == i + 1:
                return f"`{nxt.point.stmt}` right after it replaces its exit code"
            continue  # an exit further on, in a branch: the flow a reader sees goes on past it
        if nxt.kind == "strict":
            return None
    return None
