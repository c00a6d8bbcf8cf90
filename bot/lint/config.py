"""Lint configuration: the defaults of the rules doc, overridable by ``.github/nimbys.yml``.

The repository's file is untrusted input too (it comes from the linted
repository): it is loaded with the same bounds as a workflow, unknown keys and
bad values are reported as config errors rather than ignored silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from bot.lint.findings import Severity

DEFAULT_POOL_LABELS = ("stx", "stx-test")
DEFAULT_KEYWORDS = (
    "npu", "hybrid", "oga", "ryzen", "ryzenai", "vitis", "flm", "dml", "directml", "igpu", "gpu", "vulkan",
    "rocm", "quark", "xdna",
)  # fmt: skip


class ConfigError(ValueError):
    """The configuration file is malformed; the message says where."""


@dataclass(frozen=True)
class LintConfig:
    pool_labels: tuple[str, ...] = DEFAULT_POOL_LABELS
    keywords: tuple[str, ...] = DEFAULT_KEYWORDS
    severities: dict[str, Severity | None] = field(default_factory=dict)  # None: off
    fanout_limit: int = 4
    timeout_notice_above: int = 15
    timeout_warning_above: int = 60

    @property
    def pool(self) -> frozenset[str]:
        return frozenset(label.lower() for label in self.pool_labels)

    def with_overrides(self, data: dict[str, Any]) -> LintConfig:
        """Apply a parsed ``.github/nimbys.yml`` mapping."""
        known = {"pool-labels", "rules", "keywords", "fanout-limit", "timeouts"}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown keys: {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
        changes: dict[str, Any] = {}
        if "pool-labels" in data:
            changes["pool_labels"] = tuple(_strings(data["pool-labels"], "pool-labels"))
        if "keywords" in data:
            changes["keywords"] = tuple(k.lower() for k in _strings(data["keywords"], "keywords"))
        if "fanout-limit" in data:
            changes["fanout_limit"] = _int(data["fanout-limit"], "fanout-limit")
        if "timeouts" in data:
            t = data["timeouts"]
            if not isinstance(t, dict):
                raise ConfigError("timeouts: expected a mapping with notice-above / warning-above")
            if "notice-above" in t:
                changes["timeout_notice_above"] = _int(t["notice-above"], "timeouts.notice-above")
            if "warning-above" in t:
                changes["timeout_warning_above"] = _int(t["warning-above"], "timeouts.warning-above")
        if "rules" in data:
            from bot.lint.rules import RULES

            rules = data["rules"]
            if not isinstance(rules, dict):
                raise ConfigError("rules: expected a mapping of rule id to error/warning/notice/off")
            severities = dict(self.severities)
            for rule, level in rules.items():
                if rule not in RULES:
                    raise ConfigError(f"rules: unknown rule {rule!r}")
                word = str(level).lower() if level is not False else "off"
                if word == "off":
                    severities[rule] = None
                elif word in {"error", "warning", "notice"}:
                    severities[rule] = Severity[word.upper()]
                else:
                    raise ConfigError(f"rules.{rule}: expected error, warning, notice or off, not {level!r}")
            changes["severities"] = severities
        return replace(self, **changes)


def _strings(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(f"{where}: expected a list of strings")


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where}: expected a whole number")
    return value


def load_config(text: str | bytes | None, base: LintConfig | None = None) -> LintConfig:
    """Parse ``.github/nimbys.yml`` (None or empty: the defaults)."""
    base = base or LintConfig()
    if not text:
        return base
    if len(text) > 64 * 1024:
        raise ConfigError("configuration file over 64 KiB")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {' '.join(str(exc).split())}") from None
    if data is None:
        return base
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping at the top level")
    return base.with_overrides(data)
