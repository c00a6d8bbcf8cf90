"""The web process: the webhook receiver and the read-only endpoints.

``POST /webhook`` does three things and nothing else: verify, dedup+append (one
Redis round trip), answer; it is a thin WSGI callable in front of Flask
(``bot.web.webhook``). Handler work belongs to the worker, so GitHub gets its
answer in milliseconds whatever the handlers cost. The other routes are Flask.
"""

from __future__ import annotations

import hashlib
import hmac

import redis
from flask import Flask, Response, jsonify

from bot.intake.queue import Keys
from bot.intake.store import IntakeStore
from bot.redis_conn import sync_client
from bot.settings import Settings
from bot.web.webhook import WebhookEndpoint


def create_app(settings: Settings, client: redis.Redis | None = None) -> Flask:
    """Build the Flask app. Refuses (SettingsError) when no webhook secret is configured."""
    secret = settings.require_webhook_secret()
    client = client or sync_client(settings)
    store = IntakeStore(client, Keys(settings.key_prefix), queued_ttl=settings.delivery_ttl_seconds)
    app = Flask("nimbys")
    # Signs the session cookie of the GitHub sign-in; derived from the webhook secret, so no new setting.
    app.secret_key = hmac.new(secret.encode(), b"nimbys-session", hashlib.sha256).hexdigest()
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")
    app.config["NIMBYS_SETTINGS"] = settings
    app.config["NIMBYS_STORE"] = store
    app.config["NIMBYS_REDIS"] = client
    app.wsgi_app = WebhookEndpoint(  # type: ignore[method-assign]
        app.wsgi_app, store=store, secret=secret, limit=settings.max_body_bytes
    )

    @app.get("/healthz")
    def healthz() -> Response:
        try:
            backlog = store.backlog()
        except redis.RedisError as exc:
            return jsonify(status="unavailable", redis=type(exc).__name__), 503
        return jsonify(
            status="ok",
            queue_depth=backlog.depth,
            awaiting_retry=backlog.awaiting_retry,
            oldest_age_seconds=backlog.oldest_age_seconds,
            dead_letters=backlog.dead_letters,
        )

    from bot.web import dashboard

    dashboard.register(app, settings, client)
    return app
