"""POST /webhook and /healthz against a real Redis: what is accepted, refused and queued."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis

from bot.intake.queue import Keys
from bot.intake.verify import Delivery, Refusal, verify_delivery
from bot.replay import sign
from bot.settings import SettingsError
from bot.web.app import create_app
from tests.conftest import FIXTURES, ROOT, SECRET

KEYS = Keys("nimbys")
EXAMPLES = sorted((FIXTURES / "webhooks").glob("*.json"))


@pytest.fixture
def client(settings_for, r):  # type: ignore[no-untyped-def]
    return create_app(settings_for(), r).test_client()


def headers_for(body: bytes, event: str = "ping", delivery: str | None = None, secret: str = SECRET) -> dict:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(body, secret),
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_recorded_github_payload_is_accepted_and_queued_byte_for_byte(client, r, path: Path) -> None:
    body = path.read_bytes()
    event = path.name.split(".")[0]
    answer = client.post("/webhook", data=body, headers=headers_for(body, event, "d-" + path.stem))
    assert answer.status_code == 202, answer.text
    assert answer.json == {"delivery": "d-" + path.stem, "status": "queued"}
    [(_id, fields)] = r.xrange(KEYS.stream)
    assert fields[b"body"] == body
    assert fields[b"event"].decode() == event
    assert r.get(KEYS.status("d-" + path.stem)) == b"queued"


def test_signature_vectors_verify(settings_for, r) -> None:  # type: ignore[no-untyped-def]
    vectors = json.loads((FIXTURES / "signature-vectors.json").read_text())
    for n, vector in enumerate(vectors):
        body = base64.b64decode(vector["payload_utf8_base64"])
        secret = base64.b64decode(vector["secret_utf8_base64"]).decode("utf-8")
        assert body == vector["payload"].encode("utf-8")
        assert sign(body, secret) == vector["signature"], vector["note"]
        headers = {"x-hub-signature-256": vector["signature"], "content-type": "application/json",
                   "x-github-event": "ping", "x-github-delivery": f"v{n}"}
        verdict = verify_delivery(headers, body, secret=secret, content_length=len(body), limit=1 << 20)
        assert isinstance(verdict, Delivery), (vector["note"], verdict)
        app = create_app(settings_for(webhook_secret=secret), r).test_client()
        answer = app.post("/webhook", data=body, headers={
            "Content-Type": "application/json", "X-GitHub-Event": "ping",
            "X-GitHub-Delivery": f"vector-{n}", "X-Hub-Signature-256": vector["signature"]})
        assert answer.status_code == 202, vector["note"]
        tampered = body.replace(b"a", b"b", 1)
        verdict = verify_delivery(headers, tampered, secret=secret, content_length=None, limit=1 << 20)
        assert isinstance(verdict, Refusal) and verdict.status == 401


GOOD = b'{"zen":"Keep it logically awesome.","hook_id":1}'


def _bad_requests() -> list[tuple[str, dict, bytes, int, str]]:
    ok = headers_for(GOOD)
    sha1 = {k: v for k, v in ok.items() if k != "X-Hub-Signature-256"} | {"X-Hub-Signature": "sha1=" + "0" * 40}
    return [
        ("no signature", {k: v for k, v in ok.items() if k != "X-Hub-Signature-256"}, GOOD, 401,
         "missing X-Hub-Signature-256"),
        ("sha1 only", sha1, GOOD, 401, "SHA-1 X-Hub-Signature is not accepted"),
        ("wrong secret", headers_for(GOOD, secret="not-the-secret"), GOOD, 401, "does not match"),
        ("tampered body", ok, GOOD + b" ", 401, "does not match"),
        ("not sha256 prefix", ok | {"X-Hub-Signature-256": "md5=abc"}, GOOD, 401, "not a sha256="),
        ("garbage signature", ok | {"X-Hub-Signature-256": "sha256=zz"}, GOOD, 401, "does not match"),
        ("no event", {k: v for k, v in ok.items() if k != "X-GitHub-Event"}, GOOD, 400,
         "missing X-GitHub-Event"),
        ("no delivery", {k: v for k, v in ok.items() if k != "X-GitHub-Delivery"}, GOOD, 400,
         "missing X-GitHub-Delivery"),
        ("not json", headers_for(b"{not json"), b"{not json", 400, "not valid JSON"),
        ("json array", headers_for(b"[1,2]"), b"[1,2]", 400, "not a JSON object"),
        ("not utf-8", headers_for(b'{"a":"\xff"}'), b'{"a":"\xff"}', 400, "not valid JSON"),
        ("text/plain", headers_for(GOOD) | {"Content-Type": "text/plain"}, GOOD, 400, "content type"),
        ("empty body", headers_for(b""), b"", 400, "not"),
    ]


@pytest.mark.parametrize("name,headers,body,status,reason", _bad_requests(), ids=[b[0] for b in _bad_requests()])
def test_bad_inputs_get_their_status_and_queue_nothing(client, r, name, headers, body, status, reason) -> None:
    answer = client.post("/webhook", data=body, headers=headers)
    assert answer.status_code == status, (name, answer.text)
    assert reason in answer.text
    assert "\n" not in answer.text.strip()  # one line
    assert r.xlen(KEYS.stream) == 0
    assert not r.keys("nimbys:delivery:*")


def test_body_over_the_limit_is_413_before_it_is_read(settings_for, r) -> None:  # type: ignore[no-untyped-def]
    client = create_app(settings_for(max_body_bytes=1000), r).test_client()
    body = b'{"x":"' + b"a" * 2000 + b'"}'
    answer = client.post("/webhook", data=body, headers=headers_for(body))
    assert answer.status_code == 413
    assert r.xlen(KEYS.stream) == 0


def test_default_limit_is_25_mib(settings_for) -> None:  # type: ignore[no-untyped-def]
    assert settings_for().max_body_bytes == 25 * 1024 * 1024
    headers = {"x-hub-signature-256": "sha256=0"}
    verdict = verify_delivery(headers, b"", secret="s", content_length=25 * 1024 * 1024 + 1,
                              limit=25 * 1024 * 1024)
    assert isinstance(verdict, Refusal) and verdict.status == 413


def test_a_redelivery_still_queued_is_not_queued_twice(client, r) -> None:
    headers = headers_for(GOOD, delivery="same-id")
    first = client.post("/webhook", data=GOOD, headers=headers)
    second = client.post("/webhook", data=GOOD, headers=headers)
    assert (first.status_code, second.status_code) == (202, 202)
    assert second.json["status"] == "pending"
    assert r.xlen(KEYS.stream) == 1


def test_processed_delivery_is_answered_200_and_failed_one_is_queued_again(client, r) -> None:
    r.set(KEYS.status("done-id"), "done")
    answer = client.post("/webhook", data=GOOD, headers=headers_for(GOOD, delivery="done-id"))
    assert answer.status_code == 200 and answer.json["status"] == "already processed"
    assert r.xlen(KEYS.stream) == 0
    r.set(KEYS.status("failed-id"), "failed")
    answer = client.post("/webhook", data=GOOD, headers=headers_for(GOOD, delivery="failed-id"))
    assert answer.status_code == 202
    assert r.xlen(KEYS.stream) == 1


def test_redis_unreachable_is_503_so_github_can_redeliver(settings_for, tmp_path) -> None:  # type: ignore[no-untyped-def]
    dead = redis.Redis.from_url(f"unix://{tmp_path}/nothing.sock", socket_connect_timeout=0.2)
    client = create_app(settings_for(), dead).test_client()
    answer = client.post("/webhook", data=GOOD, headers=headers_for(GOOD))
    assert answer.status_code == 503
    assert "queue unavailable" in answer.text
    assert client.get("/healthz").status_code == 503
    # A bad signature is still 401 when Redis is down: refusals do not depend on it.
    assert client.post("/webhook", data=GOOD, headers=headers_for(GOOD, secret="x")).status_code == 401


def test_healthz_reports_depth_and_oldest_age(client, r) -> None:
    assert client.get("/healthz").json == {
        "status": "ok", "queue_depth": 0, "awaiting_retry": 0, "oldest_age_seconds": None, "dead_letters": 0}
    for _ in range(3):
        client.post("/webhook", data=GOOD, headers=headers_for(GOOD))
    health = client.get("/healthz").json
    assert health["queue_depth"] == 3
    assert 0 <= health["oldest_age_seconds"] < 5


def test_no_secret_no_start(settings_for, r) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SettingsError, match="WEBHOOK_SECRET"):
        create_app(settings_for(webhook_secret=None), r)
    env = {"PATH": "/usr/bin:/bin", "REDIS_URL": "redis://127.0.0.1:9", "HOME": str(ROOT)}
    for role in ("web", "serve"):
        extra = {"APP_ID": "1", "PRIVATE_KEY": "x"} if role == "serve" else {}
        done = subprocess.run([sys.executable, "-m", "bot", role], env=env | extra, cwd=ROOT,
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 2, done
        assert "WEBHOOK_SECRET is not set" in done.stderr
