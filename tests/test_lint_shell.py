"""The script-line helpers the rules stand on: statement splitting and comment stripping."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.lint.shell import statements, strip_comment


def reference_statements(text: str) -> tuple[str, ...]:
    """The splitter as first written, character by character: the specification the fast one must meet."""
    parts: list[str] = []
    current: list[str] = []
    quote = ""
    depth = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            current.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            current.append(ch)
        elif ch == "(":
            depth += 1
            current.append(ch)
        elif ch == ")":
            depth = max(0, depth - 1)
            current.append(ch)
        elif depth == 0 and (ch in ";{}" or text.startswith(("&&", "||"), i)):
            parts.append("".join(current))
            current = []
            if text.startswith(("&&", "||"), i):
                i += 1
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return tuple(p.strip() for p in parts if p.strip())


def test_statements_split_outside_quotes_and_parentheses() -> None:
    assert statements('cd x; pip install "a;b" && (echo 1; echo 2) || exit 1') == (
        "cd x", 'pip install "a;b"', "(echo 1; echo 2)", "exit 1")
    assert statements("if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }") == (
        "if ($LASTEXITCODE -ne 0)", "exit $LASTEXITCODE")
    assert statements("echo 'unterminated; still quoted") == ("echo 'unterminated; still quoted",)


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet="ab ;{}&|()\"'$#\t", max_size=40))
def test_statements_match_the_reference_splitter(text: str) -> None:
    assert statements.__wrapped__(text) == reference_statements(text)


def test_comments_are_stripped_outside_quotes_only() -> None:
    assert strip_comment("pip install x  # why", "pwsh") == "pip install x"
    assert strip_comment('echo "a # b"', "bash") == 'echo "a # b"'
    assert strip_comment("curl https://x/#frag", "bash") == "curl https://x/#frag"
    assert strip_comment(":: note", "cmd") == ""
