"""``nimbys lint``: lint workflow files locally, in pre-commit or in an Actions step.

Exit status: 0 when no finding is at or above ``--fail-on`` (default error),
1 when some are, 2 for a usage error or unreadable input.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from bot.lint.config import ConfigError, LintConfig, load_config
from bot.lint.engine import lint_files
from bot.lint.findings import Severity
from bot.lint.output import as_github, as_json, as_sarif, as_text

MAX_FILES = 5000


class UsageError(Exception):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="workflow files, directories, a repository root, or - for stdin")
    parser.add_argument("--format", choices=["text", "json", "sarif", "github"], default="text")
    parser.add_argument("--config", metavar="FILE", help="configuration (default: .github/nimbys.yml if found)")
    parser.add_argument("--pool-label", action="append", metavar="LABEL", help="pool label (repeatable)")
    parser.add_argument("--fail-on", choices=["error", "warning", "notice"], default="error")


def collect(paths: list[str]) -> dict[str, bytes]:
    """The files to lint, by the path to show. Directories give their *.yml/*.yaml; a repo root its workflows."""
    files: dict[str, bytes] = {}
    for raw in paths:
        if raw == "-":
            files["-"] = sys.stdin.buffer.read()
            continue
        path = Path(raw)
        if path.is_dir():
            workflows = path / ".github" / "workflows"
            base = workflows if workflows.is_dir() else path
            found = sorted(p for p in base.rglob("*") if p.suffix in {".yml", ".yaml"} and p.is_file())
            for p in found:
                files[str(p)] = _read(p)
        elif path.is_file():
            files[str(path)] = _read(path)
        else:
            raise UsageError(f"{raw}: no such file or directory")
        if len(files) > MAX_FILES:
            raise UsageError(f"more than {MAX_FILES} files to lint")
    return files


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror})") from None


def find_config(paths: list[str]) -> Path | None:
    """The nearest .github/nimbys.yml above the first path (or the working directory)."""
    start = Path(paths[0]) if paths and paths[0] != "-" else Path.cwd()
    start = start.resolve()
    for folder in [start, *start.parents] if start.is_dir() else list(start.parents):
        candidate = folder / ".github" / "nimbys.yml"
        if candidate.is_file():
            return candidate
    return None


def run(args: argparse.Namespace) -> int:
    try:
        config_path = Path(args.config) if args.config else find_config(args.paths)
        config = LintConfig()
        if config_path is not None:
            try:
                config = load_config(config_path.read_bytes())
            except OSError as exc:
                raise UsageError(f"{config_path}: cannot read it ({exc.strerror})") from None
            except ConfigError as exc:
                raise UsageError(f"{config_path}: {exc}") from None
        if args.pool_label:
            config = replace(config, pool_labels=tuple(args.pool_label))
        files = collect(args.paths)
    except UsageError as exc:
        print(f"nimbys lint: {exc}", file=sys.stderr)
        return 2
    results = lint_files(files, config)
    findings = sorted((f for r in results.values() for f in r.findings),
                      key=lambda f: (f.path, f.line, f.column, f.rule))
    if args.format == "text":
        sys.stdout.write(as_text(findings, len(files)))
    elif args.format == "json":
        sys.stdout.write(as_json(findings))
    elif args.format == "sarif":
        sys.stdout.write(as_sarif(findings))
    else:
        sys.stdout.write(as_github(findings))
    threshold = Severity[args.fail_on.upper()]
    return 1 if any(f.severity >= threshold for f in findings) else 0
