"""What the PR report says, decided without I/O: check-run output, annotation batches, sticky comment.

Follows reviewdog and the sticky-comment action: annotations in batches of at
most 50 per request, a conclusion of failure (any error), neutral (only
warnings or notices) or success; one comment found by a hidden marker and
edited in place, kept under GitHub's size limits with a note pointing to the
check run.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from bot.lint.findings import Finding, Severity
from bot.lint.rules import RULES

CHECK_NAME = "NIMBYS lint"
MARKER = "<!-- nimbys-lint-report -->"
COMMENT_LIMIT = 65_536
SUMMARY_LIMIT = 65_535
ANNOTATIONS_PER_REQUEST = 50
LEVEL = {Severity.ERROR: "failure", Severity.WARNING: "warning", Severity.NOTICE: "notice"}
ICON = {Severity.ERROR: "🔴", Severity.WARNING: "🟠", Severity.NOTICE: "🔵"}


@dataclass
class Problem:
    """A workflow file that could not be linted (fetch failed, too large, a config error)."""

    path: str
    message: str


@dataclass
class Report:
    """Everything the PR report shows, for one head commit."""

    repo: str  # where the files were read (the head repository for forks)
    head_sha: str
    files: list[str]  # NIMBYS workflow files linted
    findings: list[Finding]
    problems: list[Problem] = field(default_factory=list)

    @property
    def conclusion(self) -> str:
        if self.problems or any(f.severity is Severity.ERROR for f in self.findings):
            return "failure"
        return "neutral" if self.findings else "success"

    @property
    def counts(self) -> Counter[Severity]:
        return Counter(f.severity for f in self.findings)

    def line_url(self, finding: Finding) -> str:
        return f"https://github.com/{self.repo}/blob/{self.head_sha}/{finding.path}#L{finding.line}"


def title(report: Report) -> str:
    c = report.counts
    if not report.findings and not report.problems:
        return "No findings in NIMBYS workflows"
    parts = [f"{c[s]} {s}{'s' if c[s] != 1 else ''}" for s in (Severity.ERROR, Severity.WARNING, Severity.NOTICE)
             if c[s]]
    if report.problems:
        parts.append(f"{len(report.problems)} file{'s' if len(report.problems) != 1 else ''} not linted")
    return ", ".join(parts)


def summary(report: Report) -> str:
    """The check run's summary: a short table by file."""
    by_file: dict[str, Counter[Severity]] = defaultdict(Counter)
    for f in report.findings:
        by_file[f.path][f.severity] += 1
    lines = ["| workflow | errors | warnings | notices |", "|---|---:|---:|---:|"]
    for path in report.files:
        c = by_file.get(path, Counter())
        lines.append(f"| `{path}` | {c[Severity.ERROR]} | {c[Severity.WARNING]} | {c[Severity.NOTICE]} |")
    for problem in report.problems:
        lines.append(f"| `{problem.path}` | not linted: {problem.message} | | |")
    text = "\n".join(lines) + "\n\nRules: NIMBYS guide, *Capabilities and Limitations*. " \
                              "Suppress one finding with `# nimbys: ignore[rule-id] reason`."
    return truncate(text, SUMMARY_LIMIT, "\n\n…(truncated)")


def annotations(report: Report) -> list[dict[str, Any]]:
    out = []
    for f in report.findings:
        note: dict[str, Any] = {
            "path": f.path,
            "start_line": f.line,
            "end_line": f.end_line if f.end_line and f.end_line >= f.line else f.line,
            "annotation_level": LEVEL[f.severity],
            "message": f.message,
            "title": f"{f.rule}: {RULES[f.rule].guideline}"[:255],
        }
        if note["end_line"] == f.line:
            note["start_column"] = f.column
            if f.end_column and f.end_column >= f.column:
                note["end_column"] = f.end_column
        out.append(note)
    return out


def batches(items: list[dict[str, Any]], size: int = ANNOTATIONS_PER_REQUEST) -> list[list[dict[str, Any]]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def comment(report: Report, check_url: str | None) -> str:
    """The sticky comment: findings by file with links, what each rule asks, how to suppress."""
    head = [MARKER, "### 🌩️ NIMBYS workflow lint", ""]
    if not report.findings and not report.problems:
        head.append(f"✅ No findings in the NIMBYS workflows of `{report.head_sha[:7]}`. Thanks for keeping the "
                    "pool healthy!")
        return "\n".join(head) + "\n"
    c = report.counts
    head.append(f"**{title(report)}** in the NIMBYS workflows of `{report.head_sha[:7]}`"
                + (f" ([check run]({check_url}))" if check_url else "") + ".")
    body: list[str] = []
    for problem in report.problems:
        body.append(f"- ⚠️ `{problem.path}`: not linted: {problem.message}")
    by_file: dict[str, list[Finding]] = defaultdict(list)
    for f in report.findings:
        by_file[f.path].append(f)
    for path in sorted(by_file):
        body += ["", f"#### `{path}`", ""]
        for f in by_file[path]:
            body.append(f"- {ICON[f.severity]} [L{f.line}]({report.line_url(f)}) **{f.severity}** "
                        f"`{f.rule}`: {_md(f.message)}")
    rules = sorted({f.rule for f in report.findings})
    tail = ["", "<details><summary>What these rules ask</summary>", ""]
    for rule in rules:
        tail.append(f"- `{rule}` — *{RULES[rule].guideline}*. {RULES[rule].help}")
    tail += ["", "</details>", "",
             "To suppress one finding, add `# nimbys: ignore[rule-id] reason` on its line or the line above; "
             "a repository can tune rules in `.github/nimbys.yml` on its default branch."]
    if c[Severity.ERROR]:
        tail.append("")
        tail.append("Errors must be fixed (or suppressed with a reason) before this PR runs on the pool.")
    text = "\n".join(head + body + tail) + "\n"
    if len(text) <= COMMENT_LIMIT:
        return text
    note = "\n\n…and more: this comment is truncated under GitHub's size limit. " + \
           (f"See the [check run]({check_url}) for every finding." if check_url else "See the check run.")
    keep = "\n".join(head + body)
    return truncate(keep, COMMENT_LIMIT - len(note) - 1, "") + note + "\n"


def truncate(text: str, limit: int, suffix: str) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - len(suffix)]
    cut = cut[: cut.rfind("\n")] if "\n" in cut else cut
    return cut + suffix


def _md(text: str) -> str:
    return text.replace("<", "&lt;").replace(">", "&gt;")
