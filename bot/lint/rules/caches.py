"""hf-cache-outside-workdir and lemonade-cache-outside-workdir: is the cache in the work dir when used?

Read per use, with the environment in force at that statement (``bot.lint.flow``):
a cache variable set later in the same step, or only through PowerShell's
``>> $GITHUB_ENV`` (which writes nowhere), does not count. Reported once per
job, on the job's key line.
"""

from __future__ import annotations

import re

from bot.lint.flow import Point, walk
from bot.lint.model import Job, col_of, line_of
from bot.lint.rules.base import Report
from bot.lint.shell import Env, inside_workdir, mentions_any, program, words

HF_TOKENS = ("HF_TOKEN", "HUGGINGFACE_ACCESS_TOKEN", "HUGGING_FACE_HUB_TOKEN")
_HF_FETCH = re.compile(
    r"\b(?:huggingface-cli|hf)(?:\.exe)?\s+download\b|from_pretrained|hf_hub_download|snapshot_download", re.I
)
_HELP_ONLY = re.compile(r"^\S+\s+(?:--version|-v|--help|-h|version|help)\s*$", re.I)
_CMD_C = re.compile(r"^cmd(?:\.exe)?\s+/[ck]\s+(.*)$", re.I)
# Every use these rules look for names one of these (a cheap first test on each statement).
_CACHE_KEYS = ("lemonade", "gaia", "download", "pretrained", "snapshot", "hf_hub")


_CACHE_FLAG = re.compile(r"\s(?:-d|--cache-dir)(?:\s+|=)(\"[^\"]*\"|'[^']*'|\S+)")


def _commands(point: Point) -> list[str]:
    """The command texts a statement runs: itself, what Start-Process starts, what `cmd /c` runs."""
    texts = [point.resolved]
    if point.started:
        texts.append(point.started)
    for text in list(texts):
        inner = _CMD_C.match(re.sub(r"^&\s*", "", text.strip()))
        if inner:
            texts.append(inner.group(1).strip().strip("\"'"))
    return texts


def lemonade_call(text: str) -> bool:
    """A `lemonade…` program (not a repository script such as start-lemonade.ps1), not just --version/--help."""
    prog = program(text)
    if not prog.startswith("lemonade") or prog.endswith((".ps1", ".py", ".bat", ".cmd", ".sh")):
        return False
    ws = words(re.sub(r"^(?:\$[\w:]+\s*=\s*)?&?\s*", "", text.strip()))
    return not _HELP_ONLY.match(" ".join(ws[:2])) if len(ws) >= 2 else True


def gaia_call(text: str) -> bool:
    prog = program(text)
    if prog not in {"gaia", "gaia-cli"}:
        return False
    return not _HELP_ONLY.match(" ".join(words(text)[:2]))


def _in_force(env: Env, name: str) -> bool:
    value = env.env.get(name)
    return bool(value) and inside_workdir(env.resolve(value))


def check_job(report: Report, job: Job) -> None:
    hf_missing: str | None = None
    lemonade_missing: str | None = None
    contexts: dict[int, Env] = {}
    for point in walk(job, contexts):
        if point.inert:
            continue
        if point.assignment or not mentions_any(point.resolved, _CACHE_KEYS):
            continue
        texts = _commands(point)
        lemonade = any(lemonade_call(t) for t in texts)
        fetches = lemonade or any(gaia_call(t) or _HF_FETCH.search(t) for t in texts)
        if fetches and not _in_force(point.env, "HF_HOME"):
            hf_missing = hf_missing or f"`{point.stmt[:60]}` fetches models with no HF_HOME in the work dir"
        if lemonade and not _in_force(point.env, "LEMONADE_CACHE_DIR"):
            flag = next((m for t in texts if (m := _CACHE_FLAG.search(t))), None)
            if not (flag and inside_workdir(flag.group(1))):
                lemonade_missing = lemonade_missing or (
                    f"`{point.stmt[:60]}` runs with no LEMONADE_CACHE_DIR in the work dir")
    for step in job.steps:  # a step with a token may fetch models (an action, a script we cannot read)
        start = contexts.get(step.index)
        if any(token in step.env for token in HF_TOKENS) and start and not _in_force(start, "HF_HOME"):
            hf_missing = hf_missing or f"step {step.index + 1} has a Hugging Face token in its env and no HF_HOME"
    if hf_missing:
        report.add("hf-cache-outside-workdir", line_of(job.key), col_of(job.key), hf_missing)
    if lemonade_missing:
        report.add("lemonade-cache-outside-workdir", line_of(job.key), col_of(job.key), lemonade_missing)
