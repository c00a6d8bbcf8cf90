"""Deployment settings, read once from the environment.

Names follow Probot where Probot has one (``APP_ID``, ``PRIVATE_KEY``,
``PRIVATE_KEY_PATH``, ``WEBHOOK_SECRET``, ``REDIS_URL``, ``PORT``,
``LOG_LEVEL``) so that people who ran a Probot app know them; the API base URL
is ``GITHUB_API_URL`` as in Actions; everything that is the bot's own is
``NIMBYS_``-prefixed. The policy (thresholds, pool labels, ...) is not here: it
lives in the YAML file named by ``NIMBYS_CONFIG``.

``deploy/nimbys.env.example`` lists every setting; keep the two in step.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})


class SettingsError(ValueError):
    """A setting is missing or malformed; the message says which and how to fix it."""


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise SettingsError(f"{name}={raw!r}: expected one of true/false/1/0/yes/no")


def _number(env: Mapping[str, str], name: str, default: float, kind: type = int) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a {kind.__name__}") from None
    if value < 0:
        raise SettingsError(f"{name}={raw!r}: must not be negative")
    return value


def default_state_dir(env: Mapping[str, str]) -> Path:
    """Where `nimbys serve` keeps its private Redis and generated secret."""
    if env.get("NIMBYS_STATE_DIR"):
        return Path(env["NIMBYS_STATE_DIR"]).expanduser()
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "nimbys"


@dataclass(frozen=True)
class Settings:
    """Every deployment setting. Secrets are excluded from ``repr`` so they never reach logs."""

    app_id: str | None = None
    private_key: str | None = field(default=None, repr=False)
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_secret_source: str = "unset"  # noqa: S105 (where it comes from)
    redis_url: str | None = None
    port: int = 3000
    log_level: str = "INFO"
    log_format: str = "auto"
    github_api_url: str = "https://api.github.com"
    dry_run_requested: bool = False
    policy_path: str | None = None
    state_dir: Path = Path(".nimbys-state")
    key_prefix: str = "nimbys"
    max_body_bytes: int = 25 * 1024 * 1024
    max_attempts: int = 5
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 300.0
    claim_idle_ms: int = 60_000
    delivery_ttl_seconds: int = 7 * 24 * 3600
    dead_letter_max: int = 10_000
    dry_run_actions_max: int = 1_000
    github_retries: int = 3
    github_max_wait_seconds: float = 900.0
    redis_timeout_seconds: float = 1.0
    web_workers: int = 3
    web_threads: int = 4
    worker_name: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    extra_routers: tuple[str, ...] = ()
    app_slug: str | None = None
    dashboard_token: str | None = field(default=None, repr=False)
    oauth_client_id: str | None = None
    oauth_client_secret: str | None = field(default=None, repr=False)
    github_url: str = "https://github.com"
    org: str = "aigdat"
    watch_seconds: int = 180
    redeliver_hours: float = 72.0
    metrics_public: bool = False
    user_agent: str = "nimbys-bot"

    @property
    def has_app_credentials(self) -> bool:
        return bool(self.app_id and self.private_key)

    @property
    def dry_run(self) -> bool:
        """Dry-run when asked, and always when the bot cannot authenticate as an App."""
        return self.dry_run_requested or not self.has_app_credentials

    @property
    def mode(self) -> str:
        return "dry-run" if self.dry_run else "live"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        private_key = env.get("PRIVATE_KEY") or None
        key_path = env.get("PRIVATE_KEY_PATH")
        if not private_key and key_path:
            try:
                private_key = Path(key_path).expanduser().read_text()
            except OSError as exc:
                raise SettingsError(
                    f"PRIVATE_KEY_PATH={key_path}: cannot read it ({exc.strerror})"
                ) from None
        if private_key and "\\n" in private_key and "\n" not in private_key:
            # Probot accepts keys pasted into one env line with literal \n.
            private_key = private_key.replace("\\n", "\n")
        secret = env.get("WEBHOOK_SECRET") or None
        extra = tuple(p.strip() for p in env.get("NIMBYS_EXTRA_ROUTERS", "").split(",") if p.strip())
        log_format = env.get("NIMBYS_LOG_FORMAT", "auto").lower()
        if log_format not in {"auto", "json", "text"}:
            raise SettingsError(f"NIMBYS_LOG_FORMAT={log_format!r}: expected auto, json or text")
        return cls(
            app_id=env.get("APP_ID") or None,
            private_key=private_key,
            webhook_secret=secret,
            webhook_secret_source="WEBHOOK_SECRET" if secret else "unset",
            redis_url=env.get("REDIS_URL") or None,
            port=int(_number(env, "PORT", 3000)),
            log_level=env.get("LOG_LEVEL", "INFO").upper(),
            log_format=log_format,
            github_api_url=(env.get("GITHUB_API_URL") or "https://api.github.com").rstrip("/"),
            dry_run_requested=_flag(env, "NIMBYS_DRY_RUN", False),
            policy_path=env.get("NIMBYS_CONFIG") or None,
            state_dir=default_state_dir(env),
            key_prefix=env.get("NIMBYS_KEY_PREFIX", "nimbys"),
            max_body_bytes=int(_number(env, "NIMBYS_MAX_BODY_BYTES", 25 * 1024 * 1024)),
            max_attempts=max(1, int(_number(env, "NIMBYS_MAX_ATTEMPTS", 5))),
            retry_base_seconds=_number(env, "NIMBYS_RETRY_BASE_SECONDS", 2.0, float),
            retry_max_seconds=_number(env, "NIMBYS_RETRY_MAX_SECONDS", 300.0, float),
            claim_idle_ms=max(100, int(_number(env, "NIMBYS_CLAIM_IDLE_MS", 60_000))),
            delivery_ttl_seconds=int(_number(env, "NIMBYS_DELIVERY_TTL_SECONDS", 7 * 24 * 3600)),
            dead_letter_max=int(_number(env, "NIMBYS_DEAD_LETTER_MAX", 10_000)),
            dry_run_actions_max=int(_number(env, "NIMBYS_DRY_RUN_ACTIONS_MAX", 1_000)),
            github_retries=int(_number(env, "NIMBYS_GITHUB_RETRIES", 3)),
            github_max_wait_seconds=_number(env, "NIMBYS_GITHUB_MAX_WAIT_SECONDS", 900.0, float),
            redis_timeout_seconds=_number(env, "NIMBYS_REDIS_TIMEOUT_SECONDS", 1.0, float),
            web_workers=max(1, int(_number(env, "NIMBYS_WEB_WORKERS", 3))),
            web_threads=max(1, int(_number(env, "NIMBYS_WEB_THREADS", 4))),
            worker_name=env.get("NIMBYS_WORKER_NAME") or f"{socket.gethostname()}-{os.getpid()}",
            extra_routers=extra,
            app_slug=env.get("NIMBYS_APP_SLUG") or None,
            dashboard_token=env.get("NIMBYS_DASHBOARD_TOKEN") or None,
            oauth_client_id=env.get("GITHUB_CLIENT_ID") or None,
            oauth_client_secret=env.get("GITHUB_CLIENT_SECRET") or None,
            github_url=(env.get("GITHUB_URL") or "https://github.com").rstrip("/"),
            org=env.get("NIMBYS_ORG") or "aigdat",
            watch_seconds=int(_number(env, "NIMBYS_WATCH_SECONDS", 180)),  # 0: no watcher in this worker
            redeliver_hours=_number(env, "NIMBYS_REDELIVER_HOURS", 72.0, float),
            metrics_public=_flag(env, "NIMBYS_METRICS_PUBLIC", False),
        )

    def require_webhook_secret(self) -> str:
        """The receiver must never run unverified: no secret, no start."""
        if not self.webhook_secret:
            raise SettingsError(
                "WEBHOOK_SECRET is not set: the receiver refuses to start without it, because "
                "every delivery must be verified with X-Hub-Signature-256. Set it to the "
                "secret of your GitHub App's webhook (or run `nimbys serve` in dry-run, "
                "which generates one)."
            )
        return self.webhook_secret
