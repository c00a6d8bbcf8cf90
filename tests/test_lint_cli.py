"""`nimbys lint` as people run it: paths, stdin, formats, configuration, exit status; and robustness."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.lint.engine import lint_text
from bot.lint.findings import Finding
from tests.conftest import FIXTURES, ROOT

CORPUS = FIXTURES / "corpus"
BAD = "amd_gaia__build_cpp__a05a301.yml"


def nimbys(*args: str, stdin: bytes | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", "lint", *args], input=stdin.decode() if stdin else None,
                          capture_output=True, text=True, cwd=cwd, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})


def test_text_format_and_exit_status() -> None:
    done = nimbys(str(CORPUS / BAD))
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0] == f"{CORPUS / BAD}:9:1: error [missing-emoji] workflow name 'C++ Build & Test' lacks 🌩️"
    assert lines[-1] == "1 error, 4 warnings, 2 notices in 1 file"
    assert nimbys(str(CORPUS / BAD), "--fail-on", "error").returncode == 1


def test_fail_on_threshold(tmp_path: Path) -> None:
    warn_only = tmp_path / "w.yml"
    warn_only.write_text("name: NPU 🌩️\non: push\njobs:\n  t:\n    runs-on: stx\n    steps:\n      - run: echo npu\n")
    assert nimbys(str(warn_only)).returncode == 0  # only a warning (missing-timeout)
    assert nimbys(str(warn_only), "--fail-on", "warning").returncode == 1


def test_json_format_is_sorted_with_every_field() -> None:
    data = json.loads(nimbys(str(CORPUS / BAD), "--format", "json").stdout)
    assert list(data[0]) == ["path", "line", "column", "end_line", "end_column", "rule", "severity", "message",
                             "guideline"]
    assert data == sorted(data, key=lambda f: (f["path"], f["line"], f["column"]))
    assert {f["severity"] for f in data} == {"error", "warning", "notice"}


def test_sarif_is_2_1_0_with_rules_and_help() -> None:
    doc = json.loads(nimbys(str(CORPUS / BAD), "--format", "sarif").stdout)
    assert doc["version"] == "2.1.0"
    run = doc["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert len(rules) == 14 and all(r["help"]["text"] and r["shortDescription"]["text"] for r in rules)
    result = run["results"][0]
    assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
    region = result["locations"][0]["physicalLocation"]["region"]
    assert region["startLine"] >= 1 and result["level"] in {"error", "warning", "note"}


def test_github_annotation_lines() -> None:
    out = nimbys(str(CORPUS / BAD), "--format", "github").stdout.splitlines()
    assert out[0].startswith(f"::error file={CORPUS / BAD},line=9,col=1,")
    assert "title=NIMBYS missing-emoji::" in out[0]
    assert any(line.startswith("::notice ") for line in out)


def test_directories_repository_roots_and_stdin(tmp_path: Path) -> None:
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "a.yml").write_bytes((CORPUS / BAD).read_bytes())
    (tmp_path / "notes.yml").write_text("not: a workflow\n")  # outside .github/workflows: not linted
    done = nimbys(str(tmp_path))
    assert done.returncode == 1 and "in 1 file" in done.stdout
    piped = nimbys("-", stdin=(CORPUS / BAD).read_bytes())
    assert piped.stdout.splitlines()[0].startswith("-:9:1: error [missing-emoji]")


def test_repository_config_and_pool_labels(tmp_path: Path) -> None:
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "a.yml").write_bytes((CORPUS / BAD).read_bytes())
    (tmp_path / ".github" / "nimbys.yml").write_text("rules:\n  missing-emoji: off\n")
    assert "missing-emoji" not in nimbys(str(tmp_path)).stdout
    assert nimbys(str(tmp_path), "--pool-label", "other").stdout.startswith("0 errors")


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    missing = nimbys(str(tmp_path / "nope.yml"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    bad_config = tmp_path / "c.yml"
    bad_config.write_text("rules: {nope: off}\n")
    done = nimbys(str(CORPUS / BAD), "--config", str(bad_config))
    assert done.returncode == 2 and "unknown rule" in done.stderr
    assert nimbys("--format", "xml", str(CORPUS / BAD)).returncode == 2


SEED = (CORPUS / BAD).read_text()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.text(max_size=300),
    st.builds(lambda cut, junk: SEED[:cut] + junk + SEED[cut:], st.integers(0, len(SEED)),
              st.text(alphabet="[]{}:&*!|>-#'\"`$;\n\t %@()\\", max_size=30)),
    st.builds(lambda a, b: SEED[:a] + SEED[b:], st.integers(0, len(SEED)), st.integers(0, len(SEED))),
))
def test_arbitrary_and_mutated_workflows_give_findings_never_an_exception(text: str) -> None:
    findings = lint_text(text, "fuzz.yml")
    assert all(isinstance(f, Finding) and f.line >= 1 and f.column >= 1 for f in findings)
