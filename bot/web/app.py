"""The web process: the webhook receiver and the read-only endpoints.

The request path does three things and nothing else: verify, dedup+append
(one Redis round trip), answer. Handler work belongs to the worker, so GitHub
gets its answer in milliseconds whatever the handlers cost.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

import redis
from flask import Flask, Response, jsonify, request

from bot.intake.queue import Keys
from bot.intake.store import IntakeStore
from bot.intake.verify import Refusal, verify_delivery
from bot.logs import delivery_context
from bot.redis_conn import sync_client
from bot.settings import Settings

log = logging.getLogger("bot.web")


def create_app(settings: Settings, client: redis.Redis | None = None) -> Flask:
    """Build the Flask app. Refuses (SettingsError) when no webhook secret is configured."""
    secret = settings.require_webhook_secret()
    client = client or sync_client(settings)
    store = IntakeStore(client, Keys(settings.key_prefix), queued_ttl=settings.delivery_ttl_seconds)
    app = Flask("nimbys")
    app.config["NIMBYS_SETTINGS"] = settings
    app.config["NIMBYS_STORE"] = store
    app.config["NIMBYS_REDIS"] = client
    limit = settings.max_body_bytes

    def refuse(refusal: Refusal, delivery: str | None, event: str | None) -> Response:
        reason = refusal.reason
        with delivery_context(delivery, event, None):
            log.warning("refused delivery: %s", reason,
                        extra={"status": refusal.status, "remote": request.remote_addr})
        store.count_refusal(reason.split(" (")[0])
        return Response(reason + "\n", status=refusal.status, mimetype="text/plain")

    @app.post("/webhook")
    def webhook() -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        delivery_hdr = headers.get("x-github-delivery")
        event_hdr = headers.get("x-github-event")
        length = request.content_length
        if length is not None and length > limit:
            return refuse(Refusal(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {limit} bytes"),
                          delivery_hdr, event_hdr)
        body = request.stream.read(limit + 1)
        verdict = verify_delivery(headers, body, secret=secret, content_length=length, limit=limit)
        if isinstance(verdict, Refusal):
            return refuse(verdict, delivery_hdr, event_hdr)
        with delivery_context(verdict.delivery_id, verdict.event, verdict.installation_id):
            try:
                outcome = store.enqueue(
                    event=verdict.event,
                    delivery=verdict.delivery_id,
                    content_type=verdict.content_type,
                    body=body,
                    headers=headers,
                )
            except redis.RedisError as exc:
                log.error("queue unavailable, delivery not accepted: %s", type(exc).__name__)
                return Response("queue unavailable, retry later\n", status=503, mimetype="text/plain")
            if outcome == "done":
                log.info("delivery already processed; not queued again")
                return jsonify(delivery=verdict.delivery_id, status="already processed")
            log.info("delivery queued" if outcome == "queued" else "delivery already queued",
                     extra={"action": verdict.action})
            return jsonify(delivery=verdict.delivery_id, status=outcome), HTTPStatus.ACCEPTED

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

    return app
