"""Reading script lines the way the shell would, as far as the rules need.

Not a shell parser: enough to split statements, name the program a statement
runs, follow simple variable assignments and tell whether a path lies inside
the job's work dir. Variables follow the shell: in PowerShell ``$NAME`` is a
PowerShell variable (empty unless the script assigned it) and only
``$env:NAME`` reads the environment; in bash ``$NAME`` reads the environment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

POWERSHELL = frozenset({"pwsh", "powershell"})

_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_PS_ENV = re.compile(r"\$\{env:([^}]+)\}|\$env:([A-Za-z_][A-Za-z0-9_]*)", re.I)
_PS_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
_SH_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
_CMD_VAR = re.compile(r"%([A-Za-z_][A-Za-z0-9_]*)%")
_TARGET = re.compile(r"^\s*\$(?:global:|script:)?[A-Za-z_][A-Za-z0-9_]*\s*=(?!=)\s*")
_ASSIGN_PS = re.compile(r"^\$(?:global:|script:)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.+)$")
_ASSIGN_ENV_PS = re.compile(r"^\$env:([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.+)$", re.I)
_ASSIGN_SH = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")

_CWD_KEY = re.compile("get-item|get-location|resolve-path|pwd|psscriptroot")  # (on lower-case text)
_HAS_VARIABLE = re.compile(r"[$%`]|\(\s*(?:Get-|Resolve-)", re.I)
_PLAIN_VALUE = re.compile(r"^[A-Za-z]:[\\/]|^\.{1,2}[\\/]|^[\w.\\/-]+$")
_JOIN_PATH = re.compile(r"^Join-Path\s+(\S+)\s+(\S+)\s*$", re.I)
_CMD_SET = re.compile(r"^set\s+\"?([A-Za-z_][A-Za-z0-9_]*)=(.*?)\"?$", re.I)
_PREFIX = re.compile(r"^(?:\$[\w:]+\s*=\s*|if\s*\(.*?\)\s*|else\s*|elseif\s*\(.*?\)\s*|try\s*|\(\s*)", re.I)
_AMP = re.compile(r"^&\s*")
_WORDS = re.compile(r"\"[^\"]*\"|'[^']*'|\S+")

WORKDIR = "<workdir>"  # what a work-dir-relative value resolves to
_CWD_EXPRS = re.compile(
    r"\(\s*(?:Get-Item|Resolve-Path|Get-Location)\s*(?:-Path\s*)?['\"]?\.?[\\/]?['\"]?\s*\)(?:\.(?:FullName|Path))?"
    r"|\(\s*Get-Location\s*\)(?:\.Path)?|\$pwd(?:\.Path)?\b|\$PSScriptRoot|\$\(pwd\)|\$PWD\b|`pwd`",
    re.I,
)
_OUTSIDE = re.compile(
    r"appdata|program ?files|programdata|\$env:(?:appdata|localappdata|userprofile|programfiles|home)"
    r"|%(?:appdata|localappdata|userprofile|programfiles)%|\bc:[\\/]+users\b|(?:^|[\s'\"=(])~(?:[\\/]|$)"
    r"|\$home\b|\$\{?HOME\}?\b|\bc:[\\/]+windows\b|/usr/|/opt/|/etc/",
    re.I,
)
_INSIDE = re.compile(
    r"<workdir>|github\.workspace|\$env:GITHUB_WORKSPACE|\$GITHUB_WORKSPACE|runner\.temp|\$env:RUNNER_TEMP"
    r"|\$RUNNER_TEMP|[\\/]_work[\\/]|\b_work\b",
    re.I,
)


def is_powershell(shell: str) -> bool:
    return shell in POWERSHELL


@lru_cache(maxsize=8192)
def strip_comment(text: str, shell: str) -> str:
    """The line without a trailing comment (outside quotes)."""
    if shell == "cmd":
        return "" if re.match(r"^\s*(rem\b|::)", text, re.I) else text
    if "#" not in text:
        return text
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1] in " \t;"):
            return text[:i].rstrip()
    return text


_NEEDS_CAREFUL = re.compile(r"[\"'()]")
_SPLIT_SIMPLE = re.compile(r";|\{|\}|&&|\|\|")
# A quoted string (to its closing quote, or the end of the line), a run of ordinary characters,
# a two-character separator, or any other single character.
_TOKEN = re.compile(r"\"[^\"]*\"?|'[^']*'?|[^\"'(){};&|]+|&&|\|\||.", re.S)
_SEPARATORS = frozenset({";", "{", "}", "&&", "||"})


@lru_cache(maxsize=8192)
def statements(text: str) -> tuple[str, ...]:
    """Split a line on ``;``, ``&&``, ``||`` and block braces outside quotes and parentheses, keeping
    order (cached: a tuple). Token by token, not character by character (that cost 18 us a line)."""
    if not _SPLIT_SIMPLE.search(text):
        stripped = text.strip()
        return (stripped,) if stripped else ()
    if not _NEEDS_CAREFUL.search(text):
        return tuple(p.strip() for p in _SPLIT_SIMPLE.split(text) if p.strip())
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for piece in _TOKEN.findall(text):
        if piece == "(":
            depth += 1
        elif piece == ")":
            depth = max(0, depth - 1)
        elif depth == 0 and piece in _SEPARATORS:
            parts.append("".join(current))
            current = []
            continue
        current.append(piece)
    parts.append("".join(current))
    return tuple(p.strip() for p in parts if p.strip())


@dataclass
class Env:
    """Variables in force while reading one script: the environment and the shell's own.

    Assignments replace the dicts instead of changing them, so a snapshot taken
    at a statement (``snapshot``) keeps what was in force there.
    """

    shell: str
    env: dict[str, str] = field(default_factory=dict)
    local: dict[str, str] = field(default_factory=dict)

    def snapshot(self) -> Env:
        return Env(self.shell, self.env, self.local)

    def resolve(self, text: str) -> str:
        """Substitute what the shell would, marking work-dir values with <workdir>.

        The target of an assignment (``$x = ...``) is kept as written.
        """
        if not _HAS_VARIABLE.search(text):
            return text
        target = _TARGET.match(text)
        if target:
            return target.group(0) + self.resolve(text[target.end():])
        low = text.lower()
        if "${{" in text:
            text = _EXPR.sub(lambda m: self._expr(m.group(1)), text)
        if _CWD_KEY.search(low):
            text = _CWD_EXPRS.sub(WORKDIR, text)
        if "$" not in text and "%" not in text:
            return text
        if is_powershell(self.shell):
            if "env:" in low:
                text = _PS_ENV.sub(lambda m: self._env(m.group(1) or m.group(2), m.group(0)), text)
            if "$" in text:
                text = _PS_VAR.sub(lambda m: self._ps_var(m.group(0), m.group(1)), text)
        elif self.shell == "cmd":
            text = _CMD_VAR.sub(lambda m: self._env(m.group(1), m.group(0)), text)
        else:
            text = _SH_VAR.sub(lambda m: self._env(m.group(1), m.group(0)), text)
        return text

    def _expr(self, expr: str) -> str:
        expr = expr.strip()
        if expr in {"github.workspace", "runner.temp"}:
            return WORKDIR
        if expr.startswith("env."):
            return self.env.get(expr[4:], "")
        return "${{ " + expr + " }}"

    def _env(self, name: str, keep: str) -> str:
        """An environment variable's value; an unknown one stays as written (it may be the runner's)."""
        if name.upper() in {"GITHUB_WORKSPACE", "RUNNER_TEMP", "PWD"}:
            return WORKDIR
        return self.env.get(name, keep)

    def _ps_var(self, whole: str, name: str) -> str:
        lower = name.lower()
        if lower in {"true", "false", "null", "lastexitcode", "_", "args", "input", "matches"}:
            return whole
        if lower in {"home", "env"}:
            return whole
        if lower == "pwd" or lower == "psscriptroot":
            return WORKDIR
        value = self.local.get(lower, "")
        # A path with spaces stays one word where it is used (`& $exe args`).
        return f'"{value}"' if " " in value and not value.startswith(("'", '"')) else value

    def assign(self, statement: str) -> bool:
        """Record ``$x = ...`` / ``X=...`` / ``$env:X = ...``.

        True when the statement only assigns a value; False for anything else,
        including ``$out = some-program ...``, which runs a program too.
        """
        if "=" not in statement:
            return False
        if is_powershell(self.shell):
            if not statement.startswith("$"):
                return False
            m = _ASSIGN_ENV_PS.match(statement)
            if m:
                self.env = {**self.env, m.group(1): _unquote(self.resolve(m.group(2)))}
                return True
            m = _ASSIGN_PS.match(statement)
            if m and not m.group(2).startswith("="):
                value = m.group(2).strip()
                joined = _JOIN_PATH.match(value)
                if joined:
                    value = '"' + _unquote(joined.group(1)) + "\\" + _unquote(joined.group(2)) + '"'
                # Remember values, not commands: `$p = Start-Process ...` holds a process, not a path.
                is_value = value[:1] in "\"'($@" or _PLAIN_VALUE.match(value)
                self.local = {**self.local, m.group(1).lower(): _unquote(self.resolve(value)) if is_value else ""}
                return bool(is_value)  # `$out = lemonade-server pull` still runs a command
            return False
        m = _ASSIGN_SH.match(statement)
        if m and self.shell != "cmd":
            self.env = {**self.env, m.group(1): _unquote(self.resolve(m.group(2)))}
            return True
        if self.shell == "cmd":
            m = _CMD_SET.match(statement)
            if m:
                self.env = {**self.env, m.group(1): self.resolve(m.group(2))}
                return True
        return False


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


@lru_cache(maxsize=16384)
def mentions_any(text: str, keys: tuple[str, ...]) -> bool:
    """Whether the text names any of the (lower-case) keys: a rule's cheap first test, cached per text."""
    low = text.lower()
    return any(k in low for k in keys)


@lru_cache(maxsize=8192)
def inside_workdir(path: str) -> bool:
    """Is a (resolved) path inside the job's work dir?"""
    path = _unquote(path.strip())
    if not path:
        return False
    if _INSIDE.search(path):
        return True
    if _OUTSIDE.search(path):
        return False
    if re.match(r"^(?:[A-Za-z]:[\\/]|[\\/]|\\\\|\$|%|~)", path):
        return False
    return True  # relative: .\x, ./x, x


_OUTSIDE_KEYS = ("appdata", "program", "users", "~", "home", "windows", "/usr/", "/opt/", "/etc/", "profile")


@lru_cache(maxsize=8192)
def outside_path(text: str) -> str | None:
    """The first path-looking part of a resolved text that lies outside the work dir, if any."""
    low = text.lower()
    if not any(k in low for k in _OUTSIDE_KEYS):
        return None
    m = _OUTSIDE.search(text)
    return m.group(0).strip() if m else None


@lru_cache(maxsize=8192)
def words(statement: str) -> tuple[str, ...]:
    """Whitespace-separated words, quotes kept together and removed (cached: a tuple)."""
    return tuple(_unquote(m.group(0)) for m in _WORDS.finditer(statement))


@lru_cache(maxsize=8192)
def program(statement: str) -> str:
    """The program a statement starts, lower-case, without path or .exe (``& 'x.exe'`` included)."""
    text = statement.strip()
    text = _PREFIX.sub("", text)
    text = _AMP.sub("", text)
    ws = words(text)
    if not ws:
        return ""
    first = ws[0].replace("\\", "/").rsplit("/", 1)[-1].lower()
    return first[:-4] if first.endswith(".exe") else first


_ARG = r"(?:\"(?:[^\"`]|`.)*\"|'[^']*'|[^\s\"',]+)"
_ARGUMENT_LIST = re.compile(rf"-(?:ArgumentList|Args)\s+({_ARG}(?:\s*,\s*{_ARG})*)", re.I)
_START_PROCESS = re.compile(r"^(?:\$[\w:]+\s*=\s*)?(?:Start-Process|saps|start)\s+(.*)$", re.I)


@lru_cache(maxsize=8192)
def unwrap_start_process(statement: str) -> str | None:
    """``Start-Process -FilePath X -ArgumentList "a b"`` as the command it starts, ``X a b``."""
    m = _START_PROCESS.match(statement.strip())
    if not m:
        return None
    rest = m.group(1)
    arguments: list[str] = []
    arg_match = _ARGUMENT_LIST.search(rest)
    if arg_match:
        rest = rest[: arg_match.start()] + rest[arg_match.end():]
        for piece in re.split(r"\s*,\s*", arg_match.group(1).strip()):
            arguments.append(_unquote(piece.replace('`"', '"')))
    ws = words(rest)
    target, i = "", 0
    while i < len(ws):
        low = ws[i].lower()
        if low in {"-filepath", "-file"} and i + 1 < len(ws):
            target = ws[i + 1]
            i += 2
            continue
        if low.startswith("-"):
            i += 2 if low in {"-redirectstandardoutput", "-redirectstandarderror", "-workingdirectory",
                              "-verb", "-windowstyle"} else 1
            continue
        target = target or ws[i]
        i += 1
    return f"{target} {' '.join(arguments)}".strip() if target else None
