"""What a rule function gets: the model, the configuration, and a way to report."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.lint.config import LintConfig
from bot.lint.findings import Finding, Severity
from bot.lint.model import WorkflowModel
from bot.lint.rules import RULES


@dataclass
class Report:
    """Collects findings for one workflow; severities default to the rule's."""

    model: WorkflowModel
    config: LintConfig
    findings: list[Finding] = field(default_factory=list)

    def add(self, rule: str, line: int, column: int, message: str, *, severity: Severity | None = None,
            end_line: int | None = None, end_column: int | None = None) -> None:
        meta = RULES[rule]
        self.findings.append(Finding(
            path=self.model.path, line=line, column=max(1, column), rule=rule,
            severity=severity or meta.severity, message=message, guideline=meta.guideline,
            end_line=end_line, end_column=end_column,
        ))
