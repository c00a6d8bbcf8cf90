"""`nimbys serve` on a fresh machine, `nimbys replay`, and logs that keep secrets out."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from bot.logs import REDACTED, JsonFormatter, TextFormatter, delivery_context, redact, register_secret
from tests.conftest import FIXTURES, ROOT, free_port, wait_for

pytestmark = pytest.mark.slow


def test_serve_runs_everything_on_an_embedded_redis_in_dry_run(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NIMBYS_", "REDIS_", "APP_", "PRIVATE_KEY", "WEBHOOK_"))}
    env.update(NIMBYS_STATE_DIR=str(tmp_path / "state"), PYTHONPATH=str(ROOT), NIMBYS_LOG_FORMAT="json")
    out = (tmp_path / "serve.log").open("wb")
    serve = subprocess.Popen([sys.executable, "-m", "bot", "serve", "--port", str(port)], env=env,
                             stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
                    return answer.status == 200
            except OSError:
                return False

        wait_for(healthy, timeout=30)
        banner = (tmp_path / "serve.log").read_text()
        secret_file = tmp_path / "state" / "webhook-secret"
        assert f"http://127.0.0.1:{port}/webhook" in banner
        assert "dry-run" in banner
        assert f"generated, kept in {secret_file}" in banner
        assert oct(secret_file.stat().st_mode & 0o777) == "0o600"
        examples = [str(FIXTURES / "webhooks" / n) for n in ("workflow_job.completed.1.json", "ping.none.1.json")]
        replay = subprocess.run([sys.executable, "-m", "bot", "replay", *examples,
                                 "--url", f"http://127.0.0.1:{port}/webhook"],
                                env=env, capture_output=True, text=True, timeout=30, cwd=ROOT)
        assert replay.returncode == 0, replay.stderr
        assert [line.split()[0] for line in replay.stdout.splitlines()] == ["202", "202"]
        wait_for(lambda: (tmp_path / "serve.log").read_text().count('"event handled"') == 2, timeout=15)
        assert secret_file.read_text().strip() not in (tmp_path / "serve.log").read_text()
    finally:
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(30) == 0
    # The private redis-server went with it.
    assert not (tmp_path / "state" / "redis" / "redis.sock").exists() or subprocess.run(
        ["redis-cli", "-s", str(tmp_path / "state" / "redis" / "redis.sock"), "ping"],
        capture_output=True).returncode != 0


def test_credentials_never_reach_a_log_line() -> None:
    register_secret("my-webhook-secret-value")
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx8mNf2aKPsQn5pZ\nabc\n-----END RSA PRIVATE KEY-----"
    samples = [
        "secret is my-webhook-secret-value",
        f"key {key}",
        "token ghs_16C7e42F292c6912E7710c838347Ae178B4a",
        "Authorization: token ghs_1234567890abcdefghijABCDEFGHIJ",
        "jwt eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiI0MjQyIn0.c2lnbmF0dXJlc2lnbmF0dXJl",
        "stateless ghs_4242_eyJhbGciOiJSUzI1NiJ9xxxxxxxxxxxxxxxx",
    ]
    for text in samples:
        cleaned = redact(text)
        assert REDACTED in cleaned, text
        for needle in ("my-webhook-secret-value", "MIIEowIBAAKCAQEA", "ghs_16C7", "ghs_1234", "eyJpc3M", "ghs_4242"):
            assert needle not in cleaned


def test_json_and_text_lines_carry_the_delivery_and_are_redacted() -> None:
    register_secret("another-secret-12345")
    for formatter in (JsonFormatter(), TextFormatter()):
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        logger = logging.getLogger(f"t.{type(formatter).__name__}")
        logger.addHandler(handler)
        logger.propagate = False
        with delivery_context("d-1", "workflow_job", 42):
            logger.warning("leak %s", "another-secret-12345", extra={"detail": "another-secret-12345"})
        line = stream.getvalue().strip()
        assert "another-secret-12345" not in line
        if isinstance(formatter, JsonFormatter):
            data = json.loads(line)
            assert (data["delivery"], data["event"], data["installation"]) == ("d-1", "workflow_job", 42)
        else:
            assert "delivery=d-1 event=workflow_job installation=42" in line


def test_replay_reads_json_lines_and_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    from bot.replay import ReplayError, load

    lines = tmp_path / "deliveries.jsonl"
    lines.write_text('{"event": "ping", "delivery": "d-1", "payload": {"zen": "Grüße"}}\n\n'
                     '{"event": "issues", "payload": {"action": "opened"}}\n')
    first, second = list(load([lines]))
    assert (first.event, first.delivery, json.loads(first.body)) == ("ping", "d-1", {"zen": "Grüße"})
    assert second.event == "issues" and second.delivery  # a fresh id when none is recorded
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"payload": {}}\n')
    with pytest.raises(ReplayError, match=r"bad\.jsonl:1"):
        list(load([bad]))
    with pytest.raises(ReplayError, match=r"EVENT\.ACTION\.N\.json"):
        list(load([tmp_path / "notes.txt"]))
