"""POST /webhook as a thin WSGI callable in front of Flask.

Measured (bench/intake.py): Flask's request context, routing and response
objects cost about as much as verifying and queueing the delivery. The hot path
is therefore a plain WSGI function that reads only the headers it needs from
the environ; every other path falls through to the Flask app.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

import redis

from bot.intake.queue import KEPT_HEADERS
from bot.intake.store import IntakeStore
from bot.intake.verify import Refusal, verify_delivery
from bot.logs import delivery_context

log = logging.getLogger("bot.web")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# The request headers the receiver reads, as WSGI environ keys.
_HEADERS = {
    "x-hub-signature-256": "HTTP_X_HUB_SIGNATURE_256",
    "x-hub-signature": "HTTP_X_HUB_SIGNATURE",
    "x-github-event": "HTTP_X_GITHUB_EVENT",
    "x-github-delivery": "HTTP_X_GITHUB_DELIVERY",
    "content-type": "CONTENT_TYPE",
    **{h: "HTTP_" + h.upper().replace("-", "_") for h in KEPT_HEADERS},
}


def _answer(start_response: Callable[..., Any], status: int, body: bytes, ctype: str) -> list[bytes]:
    phrase = HTTPStatus(status).phrase
    start_response(f"{status} {phrase}", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


class WebhookEndpoint:
    """Verify, dedup+append, answer. Falls through to ``fallback`` for other paths."""

    def __init__(self, fallback: WSGIApp, *, store: IntakeStore, secret: str, limit: int, path: str = "/webhook"):
        self.fallback = fallback
        self.store = store
        self.secret = secret
        self.limit = limit
        self.path = path

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != self.path:
            return self.fallback(environ, start_response)
        if environ.get("REQUEST_METHOD") != "POST":
            return _answer(start_response, 405, b"use POST\n", "text/plain")
        headers = {name: environ[key] for name, key in _HEADERS.items() if environ.get(key)}
        try:
            length: int | None = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            length = None
        if length is not None and length > self.limit:
            return self._refuse(start_response, environ, headers,
                                Refusal(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {self.limit} bytes"))
        stream = environ["wsgi.input"]
        body = stream.read(length) if length is not None else stream.read(self.limit + 1)
        verdict = verify_delivery(headers, body, secret=self.secret, content_length=length, limit=self.limit)
        if isinstance(verdict, Refusal):
            return self._refuse(start_response, environ, headers, verdict)
        with delivery_context(verdict.delivery_id, verdict.event, verdict.installation_id):
            try:
                outcome = self.store.enqueue(event=verdict.event, delivery=verdict.delivery_id,
                                             content_type=verdict.content_type, body=body, headers=headers)
            except redis.RedisError as exc:
                log.error("queue unavailable, delivery not accepted: %s", type(exc).__name__)
                return _answer(start_response, 503, b"queue unavailable, retry later\n", "text/plain")
            if outcome == "done":
                log.info("delivery already processed; not queued again")
                status, word = 200, "already processed"
            else:
                log.info("delivery queued" if outcome == "queued" else "delivery already queued",
                         extra={"action": verdict.action})
                status, word = 202, outcome
        answer = json.dumps({"delivery": verdict.delivery_id, "status": word}).encode()
        return _answer(start_response, status, answer, "application/json")

    def _refuse(self, start_response: Callable[..., Any], environ: dict[str, Any], headers: dict[str, str],
                refusal: Refusal) -> list[bytes]:
        with delivery_context(headers.get("x-github-delivery"), headers.get("x-github-event"), None):
            log.warning("refused delivery: %s", refusal.reason,
                        extra={"status": int(refusal.status), "remote": environ.get("REMOTE_ADDR")})
        self.store.count_refusal(refusal.reason.split(" (")[0])
        return _answer(start_response, int(refusal.status), refusal.reason.encode() + b"\n", "text/plain")
