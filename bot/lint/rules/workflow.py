"""Rules on the workflow and job settings: emoji, PR trigger, timeouts, generic jobs."""

from __future__ import annotations

from yaml.nodes import ScalarNode

from bot.lint.findings import Severity
from bot.lint.model import Job, all_scalars, col_of, key_node, line_of, scalar
from bot.lint.rules.base import Report
from bot.lint.source import mapping_get

EMOJI = "\U0001f329"  # 🌩 (with or without U+FE0F)
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")


def has_keyword(text: str, keywords: tuple[str, ...]) -> bool:
    """A keyword as a whole token: not touching another letter or digit (`GPU_CTX` has gpu, `inputs` no npu).

    Substring search first (a job's text is kilobytes; a case-insensitive regex with a
    look-behind tried at every position cost a quarter of a millisecond a job).
    """
    low = text.lower()
    for keyword in keywords:
        at = low.find(keyword)
        while at != -1:
            end = at + len(keyword)
            if (at == 0 or low[at - 1] not in _TOKEN_CHARS) and (end == len(low) or low[end] not in _TOKEN_CHARS):
                return True
            at = low.find(keyword, at + 1)
    return False


def missing_emoji(report: Report) -> None:
    root = report.model.root
    name = mapping_get(root, "name")
    key = key_node(root, "name")
    if key is None or name is None:
        report.add("missing-emoji", 1, 1, "the workflow has no top-level `name:`; give it one with 🌩️")
        return
    text = scalar(name) or ""
    if EMOJI not in text:
        report.add("missing-emoji", line_of(key), col_of(key), f"workflow name {text!r} lacks 🌩️",
                   end_line=name.end_mark.line + 1, end_column=name.end_mark.column + 1)


def unreviewed_pr_trigger(report: Report) -> None:
    node = report.model.trigger_node()
    if node is not None:
        report.add("unreviewed-pr-trigger", line_of(node), col_of(node),
                   "runs on pull_request: make sure a reviewer signed off on this NIMBYS workflow")


def timeouts(report: Report, job: Job) -> None:
    node = job.get("timeout-minutes")
    if node is None:
        report.add("missing-timeout", line_of(job.key), col_of(job.key),
                   f"job `{job.id}` has no job-level timeout-minutes (GitHub's default is 360)")
        return
    try:
        minutes = float(scalar(node) or "")
    except ValueError:
        return  # an expression that cannot be evaluated is not reported
    cfg = report.config
    key = key_node(job.node, "timeout-minutes") or node
    if minutes > cfg.timeout_warning_above:
        report.add("long-timeout", line_of(key), col_of(key),
                   f"timeout-minutes {minutes:g} is over {cfg.timeout_warning_above}; target 15",
                   severity=Severity.WARNING)
    elif minutes > cfg.timeout_notice_above:
        report.add("long-timeout", line_of(key), col_of(key),
                   f"timeout-minutes {minutes:g} is over {cfg.timeout_notice_above}; target 15")


def generic_job(report: Report, job: Job) -> None:
    """No accelerator keyword in the job's parsed text (YAML comments do not count, script comments do)."""
    if has_keyword("\n".join(all_scalars(job.node)), report.config.keywords):
        return
    where = job.runs_on_key or job.key
    report.add("generic-job-on-pool", line_of(where), col_of(where),
               f"no accelerator keyword in job `{job.id}`: does it need a Ryzen AI laptop?")


def _trigger_line(report: Report) -> ScalarNode | None:
    node = report.model.trigger_node(("pull_request",))
    return node if isinstance(node, ScalarNode) else None
