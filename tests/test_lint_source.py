"""Loading workflow files as untrusted input: real corpus, hostile bytes, arbitrary text."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.lint.findings import Finding, Severity
from bot.lint.source import Workflow, load_workflow
from tests.conftest import FIXTURES

CORPUS = FIXTURES / "corpus"
EXPECTED = json.loads((CORPUS / "expected.json").read_text())
FILES = sorted(p for p in CORPUS.iterdir() if p.suffix in {".yml", ".yaml"})


def test_every_corpus_file_loads_or_is_a_parse_error_where_expected() -> None:
    assert len(FILES) == 436
    expected_errors = {name: [f["line"] for f in e["findings"] if f["rule"] == "parse-error"]
                       for name, e in EXPECTED.items()}
    for path in FILES:
        result = load_workflow(path.read_bytes(), path.name)
        wanted = expected_errors.get(path.name, [])
        if isinstance(result, Finding):
            assert result.rule == "parse-error" and result.severity is Severity.ERROR
            assert [result.line] == wanted, (path.name, result)
        else:
            assert isinstance(result, Workflow)
            assert not wanted, path.name


@pytest.mark.parametrize("data,line,words", [
    (b"name: x\njobs:\n  a:\n    runs-on: stx\n    steps: [\n", 6, "invalid YAML"),
    (b"name: caf\xe9\njobs: {}\n", 1, "not UTF-8"),
    (b"name: x\n\njobs:\n  a:\n<<<<<<< HEAD\n    runs-on: stx\n=======\n", 5, "merge-conflict"),
    (b"- just\n- a list\n", 1, "not a mapping"),
    (b"name: x\non: push\n", 1, "no `jobs` mapping"),
    (b"name: x\njobs: [a]\n", 2, "no `jobs` mapping"),
    (b"", 1, "not a mapping"),
    (b"jobs:\n  a: " + b"[" * 5000 + b"]" * 5000 + b"\n", 2, "invalid YAML"),
])
def test_broken_input_is_a_parse_error_at_the_right_line(data: bytes, line: int, words: str) -> None:
    result = load_workflow(data, "w.yml")
    assert isinstance(result, Finding), result
    assert result.line == line and words in result.message


def test_alias_bombs_and_deep_block_nesting_are_bounded() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 10):
        prev, cur = f"a{i - 1}" if i > 1 else "a", f"a{i}"
        bomb += f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]\n"
    bomb += "jobs:\n  j:\n    runs-on: stx\n"
    result = load_workflow(bomb, "bomb.yml")
    assert isinstance(result, Finding) and "too large" in result.message
    deep = "jobs:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 300)) + "  " * 300 + "v: 1\n"
    result = load_workflow(deep, "deep.yml")
    assert isinstance(result, Finding) and "too large" in result.message


def test_size_limit() -> None:
    result = load_workflow(b"jobs: {}\n" + b"#" * 2_000_000, "big.yml")
    assert isinstance(result, Finding) and "over the" in result.message


WORKFLOW = "name: Test 🌩️\non:\n  pull_request:\njobs:\n  test:\n    runs-on: stx\n    steps:\n      - run: |\n" \
           "          conda create -p .\\env\n          pip install -e .\n"


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.text(max_size=400),
    st.builds(lambda cut, junk: WORKFLOW[:cut] + junk + WORKFLOW[cut:],
              st.integers(0, len(WORKFLOW)), st.text(alphabet="[]{}:&*!|>-#'\"\n\t %@`", max_size=20)),
    st.binary(max_size=200),
))
def test_arbitrary_or_mutated_text_never_raises(data: str | bytes) -> None:
    result = load_workflow(data, "fuzz.yml")
    assert isinstance(result, Workflow | Finding)
