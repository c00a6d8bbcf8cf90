"""Load a workflow file as untrusted input: bounded, with line numbers, never raising.

A pull request's YAML is written by anyone. Loading must end quickly with a
``parse-error`` finding, never a hang, a crash or unbounded memory, whatever
the bytes: not UTF-8, huge, deeply nested, alias bombs, merge-conflict markers.

PyYAML's composer on libyaml (``CSafeLoader``) gives a node graph in which every
node keeps its start and end mark, which every rule needs to report where a
problem is. Measured on the corpus: 0.5 ms a file, where ruamel.yaml's
round-trip loader took 12 ms. Its marks are also the ones the hand-checked
expectations were verified with. Composing does not expand aliases (an alias
is the same node object again), so an alias bomb costs nothing to load; our
own walk counts every visit, aliases included, and stops at a bound. libyaml
refuses flow nesting past its own limit; block nesting is bounded by the walk.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from functools import cached_property

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bot.lint.findings import Finding, Severity

MAX_BYTES = 1024 * 1024  # the largest real workflow in the corpus is ~90 KB
MAX_NODES = 200_000  # visits, counting every alias again
MAX_DEPTH = 100  # nesting; real workflows stay under 15

_TAGS = {ScalarNode: "tag:yaml.org,2002:str", SequenceNode: "tag:yaml.org,2002:seq",
         MappingNode: "tag:yaml.org,2002:map"}


class _Loader(getattr(yaml, "CBaseLoader", yaml.BaseLoader)):  # type: ignore[misc]
    """libyaml's parser with no tag resolution at all: every scalar stays a string (so `on:` is the
    key "on", not YAML 1.1's true). The rules read scalar text only; resolving tags cost 6 % of linting."""

    def resolve(self, kind: type, value: object, implicit: object) -> str:
        return _TAGS[kind]


_LOADER = _Loader
_MARKERS = ("<<<<<<<", "=======", ">>>>>>>")  # at a line's start; scripts often echo a row of '='
_CONFLICT = re.compile(r"^(<{7}|={7}|>{7})(?:\s|$)", re.M)


@dataclass
class Workflow:
    """A parsed workflow: the raw text (for script lines) and the node graph (for positions)."""

    path: str
    text: str
    root: MappingNode

    @cached_property
    def lines(self) -> list[str]:
        return self.text.splitlines()


def _parse_error(path: str, line: int, column: int, message: str) -> Finding:
    return Finding(path=path, line=max(1, line), column=max(1, column), rule="parse-error",
                   severity=Severity.ERROR, message=message, guideline="—")


def load_workflow(data: bytes | str, path: str, *, max_bytes: int = MAX_BYTES) -> Workflow | Finding:
    """Parse a workflow file, or say why it cannot be linted (a parse-error Finding)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        return _parse_error(path, 1, 1, f"file is {len(raw)} bytes, over the {max_bytes}-byte limit")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return _parse_error(path, line, 1, f"not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})")
    if text.startswith("\ufeff"):
        text = text[1:]
    conflict = _CONFLICT.search(text) if any(text.startswith(m) or "\n" + m in text for m in _MARKERS) else None
    if conflict:
        line = text.count("\n", 0, conflict.start()) + 1
        return _parse_error(path, line, 1, f"unresolved merge-conflict marker {conflict.group(1)!r}")
    old_limit = sys.getrecursionlimit()
    try:
        sys.setrecursionlimit(max(old_limit, 4000))
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = " ".join((exc.problem or exc.context or "invalid YAML").split())
        return _parse_error(path, line, column, f"invalid YAML: {what}")
    except RecursionError:
        return _parse_error(path, 1, 1, "invalid YAML: nested too deeply")
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        return _parse_error(path, 1, 1, f"invalid YAML: {type(exc).__name__}")
    finally:
        sys.setrecursionlimit(old_limit)
    if not isinstance(root, MappingNode):
        return _parse_error(path, 1, 1, "not a workflow: the file is not a mapping")
    too_big = _check_size(root) if _may_exceed_bounds(text) else None
    if too_big:
        return _parse_error(path, 1, 1, too_big)
    jobs = mapping_get(root, "jobs")
    if not isinstance(jobs, MappingNode):
        line = jobs.start_mark.line + 1 if jobs is not None else 1
        return _parse_error(path, line, 1, "not a workflow: no `jobs` mapping")
    return Workflow(path=path, text=text, root=root)


def mapping_entry(node: Node | None, key: str) -> tuple[ScalarNode, Node] | None:
    """The (key node, value node) pair of ``key`` in a mapping node (last one wins, as in YAML loaders)."""
    found = None
    if isinstance(node, MappingNode):
        for k, v in node.value:
            if isinstance(k, ScalarNode) and k.value == key:
                found = (k, v)
    return found


def mapping_get(node: Node | None, key: str) -> Node | None:
    """The value node under ``key`` in a mapping node."""
    entry = mapping_entry(node, key)
    return entry[1] if entry else None


_DEEP_INDENT = re.compile(rf"^[ \t]{{{MAX_DEPTH + 1},}}\S", re.M)


def _has_anchor(text: str) -> bool:
    """Something like an anchor (``&name`` where a node can start). An alias needs an anchor defined
    before it (an undefined one is a parse error), so without one no node is visited twice. (Testing
    for `*` would not do: nine workflows in ten hold a glob; a regex cost 0.2 ms a file.)"""
    at = text.find("&")
    while at != -1:
        after = text[at + 1:at + 2]
        if (at == 0 or text[at - 1] in " \t\r\n[{,") and after and after not in " \t\r\n]},&":
            return True
        at = text.find("&", at + 1)
    return False


def _may_exceed_bounds(text: str) -> bool:
    """Whether counting nodes is needed: without anchors, few brackets and shallow indentation it is not."""
    brackets = text.count("[") + text.count("{") - 2 * text.count("${{")  # expressions are not nesting
    deep = " " * (MAX_DEPTH + 1) in text or ("\t" in text and bool(_DEEP_INDENT.search(text)))
    return len(text) > 2 * MAX_NODES or brackets > MAX_DEPTH or deep or _has_anchor(text)


def _check_size(root: Node) -> str | None:
    """Count node visits (aliases each time) and depth without recursion; a reason when over the bounds."""
    budget = MAX_NODES
    stack: list[tuple[Node, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        budget -= 1
        if budget < 0:
            return f"too large to lint: over {MAX_NODES} YAML nodes (aliases counted each time)"
        if depth > MAX_DEPTH:
            return f"too large to lint: nested deeper than {MAX_DEPTH} levels"
        if isinstance(node, MappingNode):
            for key, value in node.value:
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))
        elif isinstance(node, SequenceNode):
            stack.extend((item, depth + 1) for item in node.value)
    return None
