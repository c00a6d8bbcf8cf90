"""WSGI entry point for gunicorn (``gunicorn bot.web.wsgi:app``), configured from the environment."""

from __future__ import annotations

import sys

from bot.logs import register_secret, setup_logging
from bot.settings import Settings, SettingsError
from bot.web.app import create_app

try:
    _settings = Settings.from_env()
    if not _settings.redis_url:
        raise SettingsError("REDIS_URL is not set: the web process needs the shared Redis")
    register_secret(_settings.webhook_secret)
    register_secret(_settings.private_key)
    register_secret(_settings.dashboard_token)
    setup_logging(_settings.log_level, _settings.log_format)
    app = create_app(_settings)
except SettingsError as exc:
    print(f"nimbys web: {exc}", file=sys.stderr)
    raise SystemExit(2) from None
