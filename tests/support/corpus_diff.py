"""Compare the linter with the hand-checked expectations of the corpus (a development aid and a test helper)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from bot.lint.engine import lint_files
from bot.lint.findings import Severity

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "corpus"


def diff(rules: set[str] | None = None) -> dict[str, dict[str, list]]:
    """Per file: expected findings missing, and extra findings at warning/error level."""
    expected = json.loads((CORPUS / "expected.json").read_text())
    out: dict[str, dict[str, list]] = {}
    for name, exp in expected.items():
        got = lint_files({name: (CORPUS / name).read_bytes()})[name]
        want = {(f["rule"], f["line"]) for f in exp["findings"] if rules is None or f["rule"] in rules}
        have = {(f.rule, f.line) for f in got.findings if rules is None or f.rule in rules}
        missing = sorted(want - have)
        extra = sorted((f.rule, f.line, f.message) for f in got.findings
                       if (f.rule, f.line) not in want and f.severity >= Severity.WARNING
                       and (rules is None or f.rule in rules))
        jobs = sorted(got.nimbys_jobs) != sorted(exp["nimbys_jobs"])
        if missing or extra or jobs:
            out[name] = {"missing": missing, "extra": extra,
                         "jobs": [sorted(got.nimbys_jobs), sorted(exp["nimbys_jobs"])] if jobs else []}
    return out


if __name__ == "__main__":
    only = set(sys.argv[1:]) or None
    result = diff(only)
    miss = Counter(r for v in result.values() for r, _ in v["missing"])
    extra = Counter(r for v in result.values() for r, *_ in v["extra"])
    for name, d in sorted(result.items()):
        print(name)
        for key in ("missing", "extra", "jobs"):
            if d[key]:
                print(f"  {key}: {d[key]}")
    print("missing by rule:", dict(miss))
    print("extra by rule:", dict(extra))
