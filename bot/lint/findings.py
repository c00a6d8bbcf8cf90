"""What the linter reports: a Finding with a position, a rule id and a severity."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any


class Severity(enum.IntEnum):
    """Ordered, so ``--fail-on warning`` means warning or worse."""

    NOTICE = 1
    WARNING = 2
    ERROR = 3

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, order=True)
class Finding:
    """One problem at one place. Lines and columns are 1-based, as editors and GitHub show them."""

    path: str
    line: int
    column: int
    rule: str
    severity: Severity
    message: str
    guideline: str = ""
    end_line: int | None = None
    end_column: int | None = None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["severity"] = str(self.severity)
        return data
