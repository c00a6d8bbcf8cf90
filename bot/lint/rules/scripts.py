"""Rules on script lines: persistent installs, named conda envs, pip outside an env, `lemonade -d`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from bot.lint.flow import walk
from bot.lint.model import Job
from bot.lint.rules.base import Report
from bot.lint.shell import inside_workdir, mentions_any, outside_path, program, words

_PIP_INSTALL = re.compile(r"(?:^|[\s&/\\])(?:pip3?|python3?(?:\.exe)?\s+-m\s+pip|py\s+-m\s+pip|uv\s+pip)\s+install\b",
                          re.I)
_ALWAYS_LIST = [
    (re.compile(r"\bchoco(?:\.exe)?\s+install\b", re.I), "choco install"),
    (re.compile(r"\bwinget(?:\.exe)?\s+install\b", re.I), "winget install"),
    (re.compile(r"\bmsiexec(?:\.exe)?\b.*\s/(?:i|package)\b", re.I), "msiexec /i"),
    (re.compile(r"\bconda(?:\.exe)?[\"']?\s+init\b", re.I), "conda init"),
    (re.compile(r"^\s*setx(?:\.exe)?\b", re.I), "setx"),
    (re.compile(r"\bSetEnvironmentVariable\s*\(.*(?:'|\"|::)(?:User|Machine)\b", re.I),
     "SetEnvironmentVariable for User/Machine"),
    (re.compile(r"\bRegister-ScheduledTask\b", re.I), "Register-ScheduledTask"),
    (re.compile(r"\bsudo\s+apt(?:-get)?\s+install\b", re.I), "sudo apt install"),
    (re.compile(r"\b(?:irm|iwr|Invoke-RestMethod|Invoke-WebRequest)\b.*\|\s*(?:iex|Invoke-Expression)\b", re.I),
     "install script piped to iex"),
    (re.compile(r"\bpnputil(?:\.exe)?\b.*\s/add-driver\b|\bInstall-WindowsUpdate\b|\bwusa(?:\.exe)?\b", re.I),
     "driver or Windows Update install"),
    (re.compile(r"(?:^|[\s&/\\])(?:pip3?|python3?(?:\.exe)?\s+-m\s+pip|py\s+-m\s+pip|uv\s+pip)\s+install\b.*\s--user\b",
                re.I), "pip install --user"),
    (re.compile(r"\bnpm(?:\.cmd)?\s+(?:install|i|add)\b.*\s(?:-g|--global)\b", re.I), "npm install -g"),
]
# A substring each pattern needs (lower case): a regex runs only where its word appears, since
# most script lines contain none of them (measured: one big alternation cost 36 us a line).
_ALWAYS_KEYS = ("choco", "winget", "msiexec", "init", "setx", "setenvironmentvariable", "scheduledtask", "apt",
                "i", "pnputil windowsupdate wusa", "--user", "npm")
_ALWAYS_KEYS = tuple("iex invoke-expression" if k == "i" else k for k in _ALWAYS_KEYS)
_ALWAYS_FLAT = [(key, index) for index, keys in enumerate(_ALWAYS_KEYS) for key in keys.split()]
# Commands that write wherever their arguments point; copy/move write to their destination;
# others write where one of their options says.
_ALWAYS_WRITE = frozenset({"mkdir", "md", "new-item", "ni", "expand-archive", "out-file", "set-content",
                           "add-content", "tar", "unzip", "7z"})
_COPY_MOVE = frozenset({"copy-item", "cp", "copy", "xcopy", "robocopy", "move-item", "mv", "move", "cpi", "mi"})
_TARGET_OPTION = re.compile(
    r"(?:^|\s)(?:-OutFile|-o|--output|-O|--prefix|--target|-t|-p|--root|-DestinationPath|-Destination"
    r"|--directory|-d)(?:\s+|=)(\"[^\"]*\"|'[^']*'|\S+)",
    re.I,
)
_VENV_TARGET = re.compile(r"\b(?:-m\s+venv|uv\s+venv|virtualenv)\s+(?:--\S+\s+)*(\"[^\"]*\"|'[^']*'|\S+)", re.I)
_GIT_CLONE = re.compile(r"\bgit\s+clone\b", re.I)
_REDIRECT = re.compile(r"(?<![0-9&])>>?\s*(\"[^\"]*\"|'[^']*'|[^\s|]+)")
_SILENT = re.compile(r"(?:^|[\s'\"])/S(?:[\s'\",]|$)|/quiet\b|/qn\b|--silent\b", re.I)
_SILENT_TARGET = re.compile(r"/D=(\S+)|--prefix[= ](\S+)|TARGETDIR=(\S+)|INSTALLDIR=(\S+)", re.I)
_CONDA_CREATE = re.compile(r"\bconda(?:\.exe)?[\"']?\s+create\b", re.I)
_CONDA_ENV_CREATE = re.compile(r"\bconda(?:\.exe)?[\"']?\s+env\s+create\b", re.I)
_NAME_FLAG = re.compile(r"\s(?:-n|--name)(?:\s+|=)(\S+)")
_PREFIX_FLAG = re.compile(r"\s(?:-p|--prefix)(?:\s+|=)(\"[^\"]*\"|'[^']*'|\S+)")
_ACTIVATE = re.compile(r"\b(?:conda|mamba|micromamba)(?:\.exe)?\s+activate\s+(\"[^\"]*\"|'[^']*'|\S+)", re.I)
_VENV_ACTIVATE = re.compile(r"(?:^|\s|&|\.)\s*(\S*[\\/](?:Scripts|bin)[\\/](?:activate|Activate\.ps1|activate\.bat)\b)",
                            re.I)
_CONDA_RUN = re.compile(r"\bconda(?:\.exe)?\s+run\s+(?:.*?\s)?(?:-p|--prefix)(?:\s+|=)(\S+)", re.I)
_ENV_PYTHON = re.compile(r"^&?\s*[\"']?(\S+?)[\\/](?:Scripts[\\/]|bin[\\/])?(?:python3?|pip3?)(?:\.exe)?[\"']?\s",
                         re.I)
_UV_PYTHON = re.compile(r"\buv\s+pip\s+install\b.*\s(?:--python|-p)(?:\s+|=)(\S+)", re.I)
_LEMONADE_FLAG = re.compile(r"(?:^|[\s&\\/\"'])lemonade[\w.-]*(?:\.exe)?\b.*\s(?:-d|--cache-dir)(?:\s+|=)(\S+)",
                            re.I)


def check_job(report: Report, job: Job) -> None:
    activated: dict[int, bool] = {}  # per step: a work-dir env is active at this point
    for point in walk(job):
        if point.inert:
            continue
        stmt, resolved, line = point.stmt, point.resolved, point.line
        for text in (resolved, point.started) if point.started else (resolved,):
            reason = persistent_reason(text)
            if reason:
                report.add("persistent-install", line.line, line.column,
                           f"{reason}: persists on the laptop across jobs")
                break
        if point.assignment or not mentions_any(resolved, _OTHER_KEYS):
            continue
        facts = _env_facts(stmt, resolved)
        if facts.named_env:
            report.add("named-conda-env", line.line, line.column, facts.named_env)
        key = id(point.step)
        if facts.activates is not None:
            activated[key] = facts.activates
        if facts.pip_install and not activated.get(key) and not facts.runs_in_workdir_env:
            report.add("pip-outside-env", line.line, line.column,
                       "pip install with no work-dir environment activated earlier in this script")
        if facts.lemonade_flag:
            report.add("lemonade-cache-flag", line.line, line.column,
                       f"`-d {facts.lemonade_flag}` applies to this call only; set LEMONADE_CACHE_DIR instead")


@dataclass(frozen=True, slots=True)
class EnvFacts:
    """What one statement says for the environment rules; pure in its text, so cached."""

    named_env: str | None  # the named-conda-env message
    activates: bool | None  # True: a work-dir env; False: a named or outside one (replaces it); None: neither
    pip_install: bool
    runs_in_workdir_env: bool
    lemonade_flag: str | None  # the value of lemonade's -d/--cache-dir


@lru_cache(maxsize=8192)
def _env_facts(stmt: str, resolved: str) -> EnvFacts:
    pip = bool(_PIP_INSTALL.search(stmt))
    flag = _LEMONADE_FLAG.search(stmt)
    if _activates_workdir_env(resolved):
        activates: bool | None = True
    else:
        activates = False if _ACTIVATE.search(resolved) else None
    return EnvFacts(_named_env(stmt), activates, pip, pip and _runs_in_workdir_env(resolved),
                    flag.group(1) if flag else None)


def _activates_workdir_env(resolved: str) -> bool:
    m = _ACTIVATE.search(resolved)
    if m:
        target = m.group(1).strip("'\"")
        return bool(target) and bool(re.search(r"[\\/]|^\.|<workdir>", target)) and inside_workdir(target)
    m = _VENV_ACTIVATE.search(resolved)
    return bool(m) and inside_workdir(m.group(1))


def _runs_in_workdir_env(resolved: str) -> bool:
    for pattern in (_CONDA_RUN, _UV_PYTHON):
        m = pattern.search(resolved)
        if m and inside_workdir(m.group(1)):
            return True
    m = _ENV_PYTHON.match(resolved.strip())
    return bool(m) and inside_workdir(m.group(1))


def _named_env(stmt: str) -> str | None:
    if _CONDA_CREATE.search(stmt) and _NAME_FLAG.search(stmt) and not _PREFIX_FLAG.search(stmt):
        name = _NAME_FLAG.search(stmt).group(1)  # type: ignore[union-attr]
        return f"`conda create -n {name}` persists in the conda install; use `conda create -p .\\{name}`"
    if _CONDA_ENV_CREATE.search(stmt) and not _PREFIX_FLAG.search(stmt):
        return "`conda env create` without -p/--prefix creates a named env outside the work dir"
    return None


_OTHER_KEYS = ("pip", "activate", "lemonade", "conda", "python", "py", "uv")  # most statements name none


@lru_cache(maxsize=8192)
def persistent_reason(resolved: str) -> str | None:
    """What a (resolved) statement installs or writes outside the work dir, or None. Pure, so cached."""

    low = resolved.lower()
    seen = -1
    for key, index in _ALWAYS_FLAT:
        if index != seen and key in low:
            seen = index
            pattern, what = _ALWAYS_LIST[index]
            if pattern.search(resolved):
                return what
    silent = ("/s" in low or "/q" in low or "--silent" in low) and _SILENT.search(resolved)
    if not silent and not outside_path(resolved):
        return None  # everything below needs a silent installer or a path outside the work dir
    ws = words(resolved)
    prog = program(resolved)
    if silent and (prog.endswith(".exe") or ".exe" in resolved.lower()
                                     or prog in {"start-process", "saps"}):
        target = _SILENT_TARGET.search(resolved)
        if target is None:
            return "silent installer run (installs to its default location)"
        path = next(g for g in target.groups() if g)
        if not inside_workdir(path):
            return f"silent installer into {path.strip(chr(34) + chr(39))}"
        return None
    if not ws or prog in {"remove-item", "rm", "del", "rmdir", "rd", "test-path", "start-process", "saps"}:
        return None
    for target in _REDIRECT.findall(resolved):
        if not inside_workdir(target) and outside_path(target):
            return f"writes to {target.strip(chr(34) + chr(39))}"
    args = ws[1:]
    if prog in _ALWAYS_WRITE:
        for arg in args:
            if not arg.startswith("-") and outside_path(arg):
                return f"writes outside the work dir ({arg})"
        return None
    if prog in _COPY_MOVE:
        dest = next((a for i, a in enumerate(args) if i and args[i - 1].lower() in {"-destination", "-d"}), None)
        positional = [a for a in args if not a.startswith("-")]
        dest = dest or (positional[-1] if len(positional) >= 2 else None)
        if dest and outside_path(dest):
            return f"copies or moves into {dest}"
        return None
    for pattern in (_TARGET_OPTION, _VENV_TARGET):
        for target in pattern.findall(resolved):
            if outside_path(target) and not inside_workdir(target):
                return f"installs or writes into {target.strip(chr(34) + chr(39))}"
    if _GIT_CLONE.search(resolved) and len(args) >= 3 and outside_path(args[-1]):
        return f"clones into {args[-1]}"
    return None
