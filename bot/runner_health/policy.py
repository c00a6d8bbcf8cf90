"""The runner-health policy: every number of docs' runner-health design, as configuration.

Loaded from the YAML file named by ``NIMBYS_CONFIG`` (key ``health:``); every
key is optional and defaults to the design's value. Unknown keys are errors, so
a typo does not silently leave a default in force.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import yaml

DEFAULT_INFRA_PATTERNS = (
    r"The self-hosted runner: .* lost communication with the server",
    r"The runner has received a shutdown signal",
    r"No space left on device|There is not enough space on the disk",
    r"NPU (?:driver|device) (?:not found|error|timeout)",
)


class PolicyError(ValueError):
    """The policy file is malformed; the message names the key."""


@dataclass(frozen=True)
class HealthPolicy:
    tracked_labels: tuple[str, ...] = ("stx", "stx-test")  # jobs asking for these are tracked
    quarantine_labels: tuple[str, ...] = ("stx",)  # the label removed; stx-test is never quarantined from
    mode: str = "live"  # live | shadow (does everything but change labels)
    window: int = 10  # S = sum of weights over the runner's last `window` tracked jobs
    weight_infra: float = 1.0
    weight_discordant: float = 1.0
    weight_unresolved: float = 0.25
    warn_score: float = 2.0
    # The sequential test (CUSUM over each job's log-likelihood ratio: failing at p0 + margin
    # against the pool's own failure rate p0). h = 9 keeps false alarms under 1 per 10,000 pool
    # jobs at 5-8 % flaky failures (bench/README.md: figures from the simulator).
    detector_h: float = 9.0
    detector_margin: float = 0.3
    detector_p0_floor: float = 0.02
    detector_p0_prior: float = 0.08  # the pool's failure rate before it has history ...
    detector_prior_jobs: float = 50.0  # ... weighted as this many jobs
    # The design's starting-point rules, off by default (0): at 5-8 % flaky failures the simulator
    # shows each exceeding the false-alarm target on its own.
    quarantine_consecutive: int = 0  # weight-1 failures in a row
    quarantine_score: float = 0.0  # S over the window ...
    quarantine_margin: float = 0.2  # ... and S/window >= p0 + margin
    infra_repeat_hours: float = 24.0  # the same INFRA signature infra_repeat_count times within this
    # 2 in the design. With a pre-job health check on the laptops (deploy/README.md), a failed
    # check is not flaky: 1 takes a laptop out at its first failed check (0 turns the rule off).
    infra_repeat_count: int = 2
    discordant_hours: float = 24.0  # a pass elsewhere within this after the failure
    baseline_days: float = 14.0  # p0: blame rate of the rest of the pool over this
    floor_min: int = 2  # never fewer than max(floor_min, ceil(floor_fraction * N)) carrying the label
    floor_fraction: float = 0.66
    storm_fraction: float = 0.5  # half the pool at warn level ...
    storm_hours: float = 2.0  # ... within this: quarantine nothing, one pool-wide issue
    rate_limit_hours: float = 6.0  # at most one automatic quarantine per this
    probation_jobs: int = 5  # after a restore, a weight-1 failure within this many jobs quarantines again
    history: int = 50  # records kept per runner (bounded state)
    key_ttl_days: float = 14.0  # job-key evidence kept this long
    reminder_offline_days: float = 10.0
    exempt: tuple[str, ...] = ()
    maintainers: dict[str, str] = field(default_factory=dict)  # runner name -> GitHub login
    admins: tuple[str, ...] = ()
    issues_repo: str = "aigdat/nimbys"
    infra_patterns: tuple[str, ...] = DEFAULT_INFRA_PATTERNS

    def weight(self, cls: str) -> float:
        return {"INFRA": self.weight_infra, "DISCORDANT": self.weight_discordant,
                "UNRESOLVED": self.weight_unresolved}.get(cls, 0.0)

    @property
    def shadow(self) -> bool:
        return self.mode == "shadow"


_LISTS = {"tracked_labels", "quarantine_labels", "exempt", "admins", "infra_patterns"}


def load_policy(text: str | bytes | None) -> HealthPolicy:
    """The ``health:`` section of the policy file (or the whole file when it has no such key)."""
    if not text:
        return HealthPolicy()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"not valid YAML: {' '.join(str(exc).split())}") from None
    if data is None:
        return HealthPolicy()
    if not isinstance(data, dict):
        raise PolicyError("expected a mapping")
    section = data.get("health", data)
    if not isinstance(section, dict):
        raise PolicyError("health: expected a mapping")
    known = {f.name: f for f in fields(HealthPolicy)}
    changes: dict[str, Any] = {}
    for raw_key, value in section.items():
        key = str(raw_key).replace("-", "_")
        if key not in known:
            raise PolicyError(f"health.{raw_key}: unknown setting")
        default = getattr(HealthPolicy(), key)
        if key in _LISTS:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise PolicyError(f"health.{raw_key}: expected a list of strings")
            changes[key] = tuple(value)
        elif key == "maintainers":
            if not isinstance(value, dict):
                raise PolicyError("health.maintainers: expected a mapping of runner name to login")
            changes[key] = {str(k): str(v) for k, v in value.items()}
        elif key == "mode":
            if value not in {"live", "shadow"}:
                raise PolicyError("health.mode: expected live or shadow")
            changes[key] = value
        elif isinstance(default, str):
            changes[key] = str(value)
        else:
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise PolicyError(f"health.{raw_key}: expected a non-negative number")
            changes[key] = type(default)(value)
    return replace(HealthPolicy(), **changes)
