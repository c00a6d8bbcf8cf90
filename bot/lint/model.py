"""The parts of a workflow the rules look at: jobs, steps, scripts, with their positions.

Which jobs are NIMBYS jobs is decided here, conservatively, as the rules doc
says: a job targets the pool when its ``runs-on`` *can* resolve to a pool
label, whether written as a label, a list, a group, an expression literal
(also inside a ``fromJSON`` array literal), a matrix value or an input's
default/options.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bot.lint.source import Workflow, mapping_entry, mapping_get

_EXPR = re.compile(r"\$\{\{(.*?)\}\}", re.S)
_LITERAL = re.compile(r"'((?:[^']|'')*)'")
_JSON_STRING = re.compile(r'"([^"\\]*)"')
_MATRIX_REF = re.compile(r"\bmatrix\.([A-Za-z0-9_-]+)")
_INPUT_REF = re.compile(r"\b(?:github\.event\.)?inputs\.([A-Za-z0-9_-]+)")


def scalar(node: Node | None) -> str | None:
    return node.value if isinstance(node, ScalarNode) else None


def line_of(node: Node) -> int:
    return node.start_mark.line + 1


def col_of(node: Node) -> int:
    return node.start_mark.column + 1


def key_node(mapping: Node, key: str) -> ScalarNode | None:
    """The key node itself (for findings reported on ``key:``)."""
    entry = mapping_entry(mapping, key)
    return entry[0] if entry else None


def items(mapping: Node | None) -> list[tuple[ScalarNode, Node]]:
    if not isinstance(mapping, MappingNode):
        return []
    return [(k, v) for k, v in mapping.value if isinstance(k, ScalarNode)]


def all_scalars(node: Node | None, budget: int = 20000) -> list[str]:
    """Every scalar's text under a node (keys included), for keyword search."""
    out: list[str] = []
    stack = [node] if node is not None else []
    while stack and budget > 0:
        budget -= 1
        current = stack.pop()
        if isinstance(current, ScalarNode):
            out.append(current.value)
        elif isinstance(current, MappingNode):
            for k, v in current.value:
                stack += [k, v]
        elif isinstance(current, SequenceNode):
            stack += current.value
    return out


@dataclass(slots=True)
class ScriptLine:
    """One logical script line: its text (continuations joined) and the file line it starts on."""

    text: str
    line: int
    column: int


@dataclass
class Step:
    node: MappingNode
    index: int

    def get(self, key: str) -> Node | None:
        return mapping_get(self.node, key)

    @property
    def run(self) -> ScalarNode | None:
        node = self.get("run")
        return node if isinstance(node, ScalarNode) else None

    @cached_property
    def env(self) -> dict[str, str]:
        return {k.value: (scalar(v) or "") for k, v in items(self.get("env"))}

    @property
    def line(self) -> int:
        return line_of(self.node)


@dataclass
class Job:
    id: str
    key: ScalarNode
    node: MappingNode
    workflow: WorkflowModel
    candidates: set[str] = field(default_factory=set)

    def get(self, key: str) -> Node | None:
        return mapping_get(self.node, key)

    @property
    def runs_on(self) -> Node | None:
        return self.get("runs-on")

    @property
    def runs_on_key(self) -> ScalarNode | None:
        return key_node(self.node, "runs-on")

    @property
    def calls_workflow(self) -> bool:
        return self.get("uses") is not None

    @cached_property
    def nimbys(self) -> bool:
        return not self.calls_workflow and bool(self.candidates & self.workflow.pool)

    @property
    def linux(self) -> bool:
        return "linux" in self.candidates

    @cached_property
    def steps(self) -> list[Step]:
        node = self.get("steps")
        if not isinstance(node, SequenceNode):
            return []
        return [Step(s, i) for i, s in enumerate(node.value) if isinstance(s, MappingNode)]

    @cached_property
    def steps_by_index(self) -> dict[int, Step]:
        return {step.index: step for step in self.steps}

    @cached_property
    def env(self) -> dict[str, str]:
        return {k.value: (scalar(v) or "") for k, v in items(self.get("env"))}

    def shell_of(self, step: Step) -> str:
        """The shell a step's ``run:`` runs under, lower-case first word (pwsh, powershell, bash, cmd, ...)."""
        value = scalar(step.get("shell"))
        return value.strip().split()[0].lower() if value and value.strip() else self.default_shell

    @cached_property
    def default_shell(self) -> str:
        for source in (_default_shell(self.node), _default_shell(self.workflow.root)):
            value = scalar(source)
            if value and value.strip():
                return value.strip().split()[0].lower()
        return "bash" if self.linux else "pwsh"

    def matrix_values(self, key: str) -> list[Node]:
        matrix = mapping_get(self.get("strategy") or MappingNode("", []), "matrix")
        values: list[Node] = []
        direct = mapping_get(matrix, key) if matrix is not None else None
        if isinstance(direct, SequenceNode):
            values += direct.value
        elif direct is not None:
            values.append(direct)
        for entry in _seq(mapping_get(matrix, "include") if matrix is not None else None):
            value = mapping_get(entry, key)
            if value is not None:
                values.append(value)
        return values

    @cached_property
    def combinations(self) -> list[dict[str, str]]:
        """Matrix combinations with include/exclude applied (values as text; expressions count once)."""
        matrix = mapping_get(self.get("strategy") or MappingNode("", []), "matrix")
        if matrix is None:
            return [{}]
        if isinstance(matrix, ScalarNode):
            return [{}]  # a matrix given by an expression counts 1
        axes = [(k.value, _seq(v)) for k, v in items(matrix) if k.value not in {"include", "exclude"}]
        axes = [(name, vals) for name, vals in axes if vals]
        combos: list[dict[str, str]] = []
        if axes:
            for values in itertools.product(*(vals for _n, vals in axes)):
                combos.append({name: _text(v) for (name, _), v in zip(axes, values, strict=True)})
        for entry in _seq(mapping_get(matrix, "exclude")):
            drop = {k.value: _text(v) for k, v in items(entry)}
            combos = [c for c in combos if any(c.get(k) != v for k, v in drop.items())]
        base_keys = {name for name, _ in axes}
        for entry in _seq(mapping_get(matrix, "include")):
            extra = {k.value: _text(v) for k, v in items(entry)}
            matched = False
            for combo in combos:
                if all(combo.get(k) == v for k, v in extra.items() if k in base_keys):
                    combo.update({k: v for k, v in extra.items() if k not in base_keys})
                    matched = True
            if not matched or not combos:
                combos.append(extra)
        return combos or [{}]


def _default_shell(node: Node) -> Node | None:
    defaults = mapping_get(node, "defaults")
    run = mapping_get(defaults, "run") if defaults is not None else None
    return mapping_get(run, "shell") if run is not None else None


def _seq(node: Node | None) -> list[Node]:
    return list(node.value) if isinstance(node, SequenceNode) else []


def _text(node: Node) -> str:
    if isinstance(node, ScalarNode):
        return node.value
    return " ".join(all_scalars(node))


class WorkflowModel:
    """A parsed workflow and its jobs, with the pool labels it is linted against."""

    def __init__(self, workflow: Workflow, pool: frozenset[str]) -> None:
        self.workflow = workflow
        self.root: MappingNode = workflow.root
        self.pool = pool
        self.jobs: list[Job] = []
        for key, value in items(mapping_get(self.root, "jobs")):
            if isinstance(value, MappingNode):
                job = Job(key.value, key, value, self)
                job.candidates = self._candidates(job)
                self.jobs.append(job)

    @property
    def path(self) -> str:
        return self.workflow.path

    @cached_property
    def on(self) -> Node | None:
        return mapping_get(self.root, "on")

    @property
    def on_key(self) -> ScalarNode | None:
        return key_node(self.root, "on")

    def trigger_node(self, names: tuple[str, ...] = ("pull_request", "pull_request_target")) -> Node | None:
        """Where the workflow says it runs on a PR: the trigger's key, or the ``on:`` line."""
        on = self.on
        if isinstance(on, ScalarNode):
            return self.on_key if on.value in names else None
        if isinstance(on, SequenceNode):
            return self.on_key if any(scalar(v) in names for v in on.value) else None
        for k, _v in items(on):
            if k.value in names:
                return k
        return None

    def inputs(self, name: str) -> list[Node]:
        """An input's default and options, from workflow_dispatch and workflow_call."""
        found: list[Node] = []
        on = self.on
        for trigger in ("workflow_dispatch", "workflow_call"):
            spec = mapping_get(on, trigger) if isinstance(on, MappingNode) else None
            inputs = mapping_get(spec, "inputs") if spec is not None else None
            entry = mapping_get(inputs, name) if inputs is not None else None
            if entry is None:
                continue
            for part in ("default", "options"):
                value = mapping_get(entry, part)
                if isinstance(value, SequenceNode):
                    found += value.value
                elif value is not None:
                    found.append(value)
        return found

    def _candidates(self, job: Job) -> set[str]:
        """Every label the job's runs-on could resolve to, lower-cased."""
        out: set[str] = set()
        seen: set[int] = set()

        def visit(node: Node | None, depth: int = 0) -> None:
            if node is None or depth > 6 or id(node) in seen:
                return
            seen.add(id(node))
            if isinstance(node, SequenceNode):
                for item in node.value:
                    visit(item, depth + 1)
            elif isinstance(node, MappingNode):
                for k, v in items(node):
                    if k.value in {"group", "labels"}:
                        visit(v, depth + 1)
            elif isinstance(node, ScalarNode):
                text = node.value
                expressions = _EXPR.findall(text)
                if not expressions:
                    out.add(text.strip().lower())
                    return
                for expr in expressions:
                    for literal in _LITERAL.findall(expr):
                        literal = literal.replace("''", "'")
                        out.add(literal.strip().lower())
                        for inner in _JSON_STRING.findall(literal):
                            out.add(inner.strip().lower())
                    for ref in _MATRIX_REF.findall(expr):
                        for value in job.matrix_values(ref):
                            visit(value, depth + 1)
                    for ref in _INPUT_REF.findall(expr):
                        for value in self.inputs(ref):
                            visit(value, depth + 1)
                rest = _EXPR.sub(" ", text).strip()
                if rest:
                    out.add(rest.lower())

        visit(job.runs_on)
        return out


# ---- scripts ---------------------------------------------------------------------------------


_CONTINUATION = {"pwsh": "`", "powershell": "`", "bash": "\\", "sh": "\\", "cmd": "^"}


def script_lines(workflow: Workflow, node: ScalarNode, shell: str) -> tuple[ScriptLine, ...]:
    """Cached per run node and shell (several rules read the same script)."""
    cache = workflow.__dict__.setdefault("_script_lines", {})
    key = (id(node), shell)
    if key not in cache:
        cache[key] = _script_lines(workflow, node, shell)
    return cache[key]


def _script_lines(workflow: Workflow, node: ScalarNode, shell: str) -> tuple[ScriptLine, ...]:
    """The script of a ``run:`` value as logical lines, each with the file line it starts on.

    Block scalars (``|``, ``>``) are read from the file's own lines, so a finding
    points at the exact line inside the script.
    """
    if node.style in ("|", ">"):
        start = node.start_mark.line + 1  # 0-based index of the first content line
        end = node.end_mark.line if node.end_mark.column == 0 else node.end_mark.line + 1
        return _logical_lines(tuple(workflow.lines[start:end]), start + 1, None, shell)
    return _logical_lines(tuple(node.value.splitlines()), line_of(node), col_of(node), shell)


@lru_cache(maxsize=2048)
def _logical_lines(raw_lines: tuple[str, ...], first_line: int, first_column: int | None,
                   shell: str) -> tuple[ScriptLine, ...]:
    """The script's lines where the file has them (cached: a worker lints the same workflow again on every
    push to a pull request; the ScriptLine objects are shared that way and never changed)."""
    return tuple(ScriptLine(text, first_line + offset, column if column is not None else first_column or 1)
                 for text, offset, column in _joined_lines(raw_lines, first_column is None, shell))


@lru_cache(maxsize=2048)
def _joined_lines(raw_lines: tuple[str, ...], block: bool, shell: str) -> tuple[tuple[str, int, int | None], ...]:
    """(text, line offset, column) of each logical line, continuations joined (PowerShell's trailing
    backtick, bash's backslash, cmd's caret). Where it starts in the file does not matter, so an edit
    above a script does not read it again. Column None: the first line of a flow or quoted scalar,
    which starts where the node does; a block's lines start after their indentation.
    """
    continuation = _CONTINUATION.get(shell, "\\")
    cut = len(continuation)
    out: list[tuple[str, int, int | None]] = []
    pending: list = []  # [text, offset, column] of a line being continued
    for offset, raw in enumerate(raw_lines):
        text = raw.strip()
        if not text:
            continue
        if pending:
            pending[0] += " " + text
        else:
            column = raw.index(text[0]) + 1 if block else (None if offset == 0 else 1)
            pending = [text, offset, column]
        if pending[0].endswith(continuation) and pending[0][0] != "#":
            pending[0] = pending[0][:-cut].rstrip()
            continue
        if pending[0]:
            out.append((pending[0], pending[1], pending[2]))
        pending = []
    if pending and pending[0]:
        out.append((pending[0], pending[1], pending[2]))
    return tuple(out)
