"""Findings as text, JSON, SARIF 2.1.0 (GitHub code scanning) or Actions annotation lines."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable

from bot import __version__
from bot.lint.findings import Finding, Severity
from bot.lint.rules import RULES

SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.NOTICE: "note"}
GITHUB_COMMAND = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.NOTICE: "notice"}
INFO_URI = "https://github.com/aigdat/nimbys-bot#workflow-lint"


def summary(findings: list[Finding], files: int) -> str:
    counts = Counter(f.severity for f in findings)
    parts = [f"{counts[s]} {s}{'' if counts[s] == 1 else 's'}" for s in (Severity.ERROR, Severity.WARNING,
                                                                          Severity.NOTICE)]
    return f"{', '.join(parts)} in {files} file{'' if files == 1 else 's'}"


def as_text(findings: list[Finding], files: int) -> str:
    lines = [f"{f.path}:{f.line}:{f.column}: {f.severity} [{f.rule}] {f.message}" for f in findings]
    lines.append(summary(findings, files))
    return "\n".join(lines) + "\n"


def as_json(findings: list[Finding]) -> str:
    keys = ("path", "line", "column", "end_line", "end_column", "rule", "severity", "message", "guideline")
    return json.dumps([{k: f.as_json()[k] for k in keys} for f in findings], ensure_ascii=False, indent=2) + "\n"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def as_github(findings: list[Finding]) -> str:
    """Workflow commands that Actions turns into annotations on the files' lines."""
    out = []
    for f in findings:
        props = [f"file={_escape_property(f.path)}", f"line={f.line}", f"col={f.column}"]
        if f.end_line:
            props.append(f"endLine={f.end_line}")
        if f.end_column:
            props.append(f"endColumn={f.end_column}")
        props.append(f"title={_escape_property('NIMBYS ' + f.rule)}")
        out.append(f"::{GITHUB_COMMAND[f.severity]} {','.join(props)}::{_escape_data(f.message)}")
    return "\n".join(out) + ("\n" if out else "")


def as_sarif(findings: Iterable[Finding]) -> str:
    rule_ids = list(RULES)
    rules = [{
        "id": rule.id,
        "name": "".join(part.capitalize() for part in rule.id.split("-")),
        "shortDescription": {"text": rule.guideline if rule.guideline != "—" else "Workflow could not be parsed"},
        "fullDescription": {"text": rule.help},
        "help": {"text": rule.help, "markdown": f"**{rule.guideline}**\n\n{rule.help}"},
        "helpUri": f"{INFO_URI}-{rule.id}",
        "defaultConfiguration": {"level": SARIF_LEVEL[rule.severity]},
        "properties": {"tags": ["nimbys", "github-actions"]},
    } for rule in RULES.values()]
    results = []
    for f in findings:
        region: dict[str, int] = {"startLine": f.line, "startColumn": f.column}
        if f.end_line:
            region["endLine"] = f.end_line
        if f.end_column:
            region["endColumn"] = f.end_column
        results.append({
            "ruleId": f.rule,
            "ruleIndex": rule_ids.index(f.rule),
            "level": SARIF_LEVEL[f.severity],
            "message": {"text": f.message},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": f.path.lstrip("./") or f.path, "uriBaseId": "%SRCROOT%"},
                "region": region,
            }}],
            "partialFingerprints": {"nimbysRuleLine/v1": f"{f.rule}:{f.path}:{f.line}"},
        })
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "nimbys-lint", "version": __version__, "informationUri": INFO_URI,
                                "rules": rules}},
            "results": results,
        }],
    }
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"
