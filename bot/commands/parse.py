"""Read `/nimbys …` commands out of a comment (no I/O, no shell: words are data).

A command is a line starting with ``/nimbys``; text inside fenced code blocks
and quoted lines (``>``) is ignored, so quoting someone's command does not run
it; at most ``MAX_COMMANDS`` per comment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_COMMANDS = 5
PREFIX = "/nimbys"

USAGE = {
    "help": "/nimbys help",
    "status": "/nimbys status",
    "requeue": "/nimbys requeue [RUN_ID…]",
    "quarantine": "/nimbys quarantine RUNNER [reason…]",
    "restore": "/nimbys restore RUNNER",
    "exempt": "/nimbys exempt RUNNER on|off",
    "lint": "/nimbys lint",
}
WHAT = {
    "help": "this list",
    "status": "the pool: each runner's state, score, last failures and maintainer",
    "requeue": "re-run the failed NIMBYS jobs of this PR's head (or only the runs named)",
    "quarantine": "take a runner out of the pool (a person's quarantine is never lifted automatically)",
    "restore": "put a runner back, on probation",
    "exempt": "exempt a runner from automatic quarantine, or end that",
    "lint": "lint this PR's NIMBYS workflows again now",
}


@dataclass(frozen=True)
class Command:
    name: str
    args: tuple[str, ...]
    line: str

    def usage_error(self) -> str | None:
        """Why the arguments are wrong, or None."""
        n = len(self.args)
        if self.name in {"help", "status", "lint"} and n:
            return f"`{self.name}` takes no arguments"
        if self.name == "requeue" and not all(re.fullmatch(r"\d{1,20}", a) for a in self.args):
            return "run ids are numbers"
        if self.name in {"quarantine", "restore", "exempt"} and not n:
            return "name the runner"
        if self.name == "restore" and n != 1:
            return "`restore` takes one runner"
        if self.name == "exempt" and (n != 2 or self.args[1].lower() not in {"on", "off"}):
            return "say `on` or `off` after the runner"
        return None


def parse_commands(body: str) -> tuple[list[Command], int]:
    """The commands of a comment (at most MAX_COMMANDS) and how many were over the limit."""
    found: list[Command] = []
    in_fence = False
    for raw in body.splitlines():
        line = raw.strip()
        if line.startswith(("```", "~~~")):
            in_fence = not in_fence
            continue
        if in_fence or line.startswith(">"):
            continue
        if line == PREFIX or line.startswith(PREFIX + " "):
            words = line.split()[1:]
            name = words[0].lower() if words else "help"
            found.append(Command(name, tuple(words[1:]), line[:200]))
    return found[:MAX_COMMANDS], max(0, len(found) - MAX_COMMANDS)


def help_text() -> str:
    rows = ["| command | what it does |", "|---|---|"]
    rows += [f"| `{USAGE[name]}` | {WHAT[name]} |" for name in USAGE]
    return "\n".join(rows)
