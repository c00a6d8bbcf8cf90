"""The real workflows: every hand-checked file gets exactly its findings; no file makes the linter fail."""

from __future__ import annotations

import json

import pytest

from bot.lint.engine import lint_files
from bot.lint.findings import Severity
from tests.conftest import FIXTURES

CORPUS = FIXTURES / "corpus"
EXPECTED = json.loads((CORPUS / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hand_checked_file_gets_its_findings_and_nothing_else_above_notice(name: str) -> None:
    expected = EXPECTED[name]
    result = lint_files({name: (CORPUS / name).read_bytes()})[name]
    got = {(f.rule, f.line): f for f in result.findings}
    for want in expected["findings"]:
        key = (want["rule"], want["line"])
        assert key in got, f"missing {key}: {want['why']}"
        assert str(got[key].severity) == want["severity"], key
    wanted = {(w["rule"], w["line"]) for w in expected["findings"]}
    extra = [f for f in result.findings if (f.rule, f.line) not in wanted and f.severity >= Severity.WARNING]
    assert not extra, extra
    assert sorted(result.nimbys_jobs) == sorted(expected["nimbys_jobs"])


def test_every_corpus_file_lints_and_findings_are_sorted_with_positions() -> None:
    files = {p.name: p.read_bytes() for p in CORPUS.iterdir() if p.suffix in {".yml", ".yaml"}}
    results = lint_files(files)
    manifest = [line.split("\t") for line in (CORPUS / "MANIFEST.tsv").read_text().splitlines()[1:]]
    for name, _repo, _path, _commit, _date, targets in manifest:
        result = results[name]
        findings = result.findings
        assert findings == sorted(findings, key=lambda f: (f.path, f.line, f.column, f.rule))
        assert all(f.line >= 1 and f.column >= 1 for f in findings)
        if targets == "no":
            assert not result.nimbys_jobs, name
            assert not findings or findings[0].rule == "parse-error", name
        elif not (findings and findings[0].rule == "parse-error"):
            assert result.nimbys_jobs, f"{name} targets the pool but no NIMBYS job was found"
