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


@pytest.mark.parametrize("text", [
    "a: &x [1]\nb: *x\n", "- &x {a: 1}\n- *x\n", "[&x a, *x]\n", "{a: &x 1, b: *x}\n", "&x a: *x\n",
    "a:\n\t- &x 1\n", "k: !!str &x v\nl: *x\n",
])
def test_every_way_to_write_an_anchor_gets_the_node_count(text: str) -> None:
    """The count runs only when the text has an anchor; any file whose YAML holds an alias must have one."""
    from bot.lint.source import _may_exceed_bounds
    assert _may_exceed_bounds(text)


def test_globs_and_shell_ampersands_alone_skip_the_node_count() -> None:
    from bot.lint.source import _may_exceed_bounds
    assert not _may_exceed_bounds("on: {push: {paths: ['**/*.py']}}\nrun: ls *.log && & python x.py 2>&1\n")


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


_ALIAS_FORMS = (
    "k:{ws}&{n} v\nl:{ws}*{n}\n", "-{ws}&{n} v\n-{ws}*{n}\n", "[{ws}&{n} v,{ws}*{n}]\n",
    "{{k:{ws}&{n} v,{ws}l:{ws}*{n}}}\n", "k:\n  -{ws}&{n}\n    z: 1\n  -{ws}*{n}\n", "&{n} k: v\nl: *{n}\n",
    "k: !!str{ws}&{n} v\nl: [*{n}]\n", "k:{ws}&{n}\n  - 1\nl:{ws}{{m: *{n}}}\n",
)


@settings(max_examples=300, deadline=None)
@given(st.builds(lambda form, ws, n, where: WORKFLOW[:where] + form.format(ws=ws, n=n) + WORKFLOW[where:]
                 if where else form.format(ws=ws, n=n),
                 st.sampled_from(_ALIAS_FORMS), st.sampled_from([" ", "  ", "\t", " \t"]),
                 st.sampled_from(["a", "b1", "x-y", "\u00e9"]), st.sampled_from([0, len(WORKFLOW)])))
def test_text_whose_yaml_shares_a_node_always_gets_the_node_count(text: str) -> None:
    import yaml

    from bot.lint.source import _LOADER, _may_exceed_bounds
    try:
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError:
        return
    seen: set[int] = set()
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if id(node) in seen:
            assert _may_exceed_bounds(text), text
            return
        seen.add(id(node))
        if isinstance(node.value, list):
            stack.extend(x for item in node.value for x in (item if isinstance(item, tuple) else (item,)))
