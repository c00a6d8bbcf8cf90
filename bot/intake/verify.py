"""Decide whether an HTTP request is a genuine GitHub delivery (no I/O).

The signature is checked (gidgethub's ``validate_event``) before anything in
the body is parsed.
Only ``X-Hub-Signature-256`` counts: gidgethub falls back to the SHA-1
``X-Hub-Signature`` when the SHA-256 one is absent, so that header is never
passed on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus

import orjson
from gidgethub import BadRequest, ValidationFailure, sansio

# GitHub sends JSON, or (a repository hook's option) the JSON form-encoded as ``payload=``.
ACCEPTED_TYPES = frozenset({"application/json", "application/x-www-form-urlencoded"})


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: an HTTP status and a one-line reason."""

    status: int
    reason: str


@dataclass(frozen=True)
class Delivery:
    """A verified delivery, ready to queue."""

    event: str
    delivery_id: str
    content_type: str
    action: str | None
    installation_id: int | None


def verify_delivery(
    headers: Mapping[str, str], body: bytes, *, secret: str, content_length: int | None, limit: int
) -> Delivery | Refusal:
    """Return a Delivery, or the Refusal to answer with. ``headers`` keys are lower-case."""
    if content_length is not None and content_length > limit:
        return Refusal(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {limit} bytes")
    if len(body) > limit:
        return Refusal(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {limit} bytes")
    signature = headers.get("x-hub-signature-256")
    if not signature:
        why = "missing X-Hub-Signature-256"
        if headers.get("x-hub-signature"):
            why += " (SHA-1 X-Hub-Signature is not accepted)"
        return Refusal(HTTPStatus.UNAUTHORIZED, why)
    if not signature.startswith("sha256="):
        return Refusal(HTTPStatus.UNAUTHORIZED, "X-Hub-Signature-256 is not a sha256= signature")
    event = headers.get("x-github-event", "").strip()
    delivery_id = headers.get("x-github-delivery", "").strip()
    # Only the SHA-256 header goes to gidgethub, so it cannot fall back to SHA-1.
    checked = {
        "x-hub-signature-256": signature,
        "content-type": headers.get("content-type", ""),
        "x-github-event": event,
        "x-github-delivery": delivery_id,
    }
    try:
        sansio.validate_event(body, signature=signature, secret=secret)
    except ValidationFailure:
        return Refusal(HTTPStatus.UNAUTHORIZED, "signature does not match the webhook secret")
    media_type = checked["content-type"].split(";")[0].strip().lower()
    if media_type not in ACCEPTED_TYPES:
        return Refusal(HTTPStatus.BAD_REQUEST, "content type is not application/json")
    try:
        if media_type == "application/json":
            # orjson: a third of the stdlib's cost on the hot path (bench/README.md); the
            # worker decodes the same bytes again with gidgethub.
            data = orjson.loads(body)
        else:
            unsigned = {k: v for k, v in checked.items() if k != "x-hub-signature-256"}
            data = sansio.Event.from_http(unsigned, body).data
    except (BadRequest, ValidationFailure, ValueError, UnicodeDecodeError, KeyError, IndexError):
        # gidgethub reports an undecodable body as BadRequest(415).
        return Refusal(HTTPStatus.BAD_REQUEST, "body is not valid JSON")
    if not event:
        return Refusal(HTTPStatus.BAD_REQUEST, "missing X-GitHub-Event")
    if not delivery_id or len(delivery_id) > 200:
        return Refusal(HTTPStatus.BAD_REQUEST, "missing X-GitHub-Delivery")
    if not isinstance(data, dict):
        return Refusal(HTTPStatus.BAD_REQUEST, "body is not a JSON object")
    action = data.get("action") if isinstance(data.get("action"), str) else None
    installation = data.get("installation")
    inst_id = installation.get("id") if isinstance(installation, dict) else None
    return Delivery(
        event=event,
        delivery_id=delivery_id,
        content_type=checked["content-type"],
        action=action,
        installation_id=inst_id if isinstance(inst_id, int) else None,
    )
