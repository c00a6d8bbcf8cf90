"""Lint workflow files: text in, findings out. The one entry point the bot and the CLI share.

Files are linted together so that ``job-fanout`` counts the NIMBYS jobs one
pull_request event would start across all of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from bot.lint.config import LintConfig
from bot.lint.findings import Finding
from bot.lint.model import Job, WorkflowModel, line_of
from bot.lint.rules import caches, exitcode, scripts, workflow
from bot.lint.rules.base import Report
from bot.lint.source import Workflow, load_workflow

_SUPPRESS = re.compile(r"#\s*nimbys:\s*ignore\[([^\]]*)\]", re.I)
_MATRIX_REF = re.compile(r"\bmatrix\.([A-Za-z0-9_-]+)")


@dataclass
class FileResult:
    path: str
    findings: list[Finding]
    nimbys_jobs: list[str]


def lint_text(text: str | bytes, path: str = "workflow.yml", config: LintConfig | None = None) -> list[Finding]:
    """Lint one file alone."""
    return lint_files({path: text}, config)[path].findings


def lint_files(files: Mapping[str, str | bytes], config: LintConfig | None = None) -> dict[str, FileResult]:
    config = config or LintConfig()
    results: dict[str, FileResult] = {}
    reports: dict[str, Report] = {}
    for path, data in files.items():
        loaded = load_workflow(data, path)
        if isinstance(loaded, Finding):
            results[path] = FileResult(path, _configure([loaded], config, None), [])
            continue
        model = WorkflowModel(loaded, config.pool)
        report = Report(model, config)
        _lint_one(report)
        reports[path] = report
        results[path] = FileResult(path, [], [j.id for j in model.jobs if j.nimbys])
    _fanout(reports, config)
    for path, report in reports.items():
        results[path].findings = _configure(report.findings, config, report.model.workflow)
    return results


def _lint_one(report: Report) -> None:
    model = report.model
    jobs = [job for job in model.jobs if job.nimbys]
    if not jobs:
        return
    workflow.missing_emoji(report)
    workflow.unreviewed_pr_trigger(report)
    for job in jobs:
        workflow.timeouts(report, job)
        workflow.generic_job(report, job)
        scripts.check_job(report, job)
        exitcode.check_job(report, job)
        caches.check_job(report, job)


def pool_runs(job: Job, pool: frozenset[str]) -> int:
    """How many runs of this job one event starts on the pool (matrix combinations that land there)."""
    runs_on = job.runs_on
    refs = set()
    if runs_on is not None:
        from bot.lint.model import all_scalars

        for text in all_scalars(runs_on):
            refs.update(_MATRIX_REF.findall(text))
    combos = job.combinations
    if not refs:
        return len(combos)
    count = 0
    for combo in combos:
        values = {str(combo.get(ref, "")).lower() for ref in refs}
        words = {w.strip("[]'\" ") for v in values for w in v.split()}
        if (values | words) & pool or any(ref not in combo for ref in refs):
            count += 1
    return count


def _fanout(reports: Mapping[str, Report], config: LintConfig) -> None:
    total = 0
    contributing: list[Report] = []
    for report in reports.values():
        if report.model.trigger_node() is None:
            continue
        runs = sum(pool_runs(job, config.pool) for job in report.model.jobs if job.nimbys)
        if runs:
            total += runs
            contributing.append(report)
    if total <= config.fanout_limit:
        return
    for report in contributing:
        node = report.model.trigger_node()
        assert node is not None
        report.add("job-fanout", line_of(node), node.start_mark.column + 1,
                   f"one pull_request event starts {total} NIMBYS jobs (limit {config.fanout_limit})")


def _configure(findings: list[Finding], config: LintConfig, wf: Workflow | None) -> list[Finding]:
    """Apply severity overrides, ``off``, inline suppressions; drop duplicates; sort."""
    lines = wf.lines if wf is not None else []
    out: set[Finding] = set()
    for finding in findings:
        if finding.rule in config.severities:
            level = config.severities[finding.rule]
            if level is None:
                continue
            finding = replace(finding, severity=level)
        if _suppressed(finding, lines):
            continue
        out.add(finding)
    unique: dict[tuple[str, int, str], Finding] = {}
    for finding in sorted(out, key=lambda f: (f.path, f.line, f.column, f.rule)):
        unique.setdefault((finding.path, finding.line, finding.rule), finding)
    return list(unique.values())


def _suppressed(finding: Finding, lines: list[str]) -> bool:
    for index in (finding.line - 1, finding.line - 2):
        if 0 <= index < len(lines):
            match = _SUPPRESS.search(lines[index])
            if match:
                rules = {r.strip() for r in match.group(1).split(",")}
                if finding.rule in rules or "*" in rules:
                    return True
    return False
