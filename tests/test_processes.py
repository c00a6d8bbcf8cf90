"""Real processes: gunicorn receiver and workers, killed, stopped and starved of Redis."""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import redis

from bot.embedded_redis import EmbeddedRedis
from bot.intake.queue import GROUP, Keys
from bot.replay import sign
from tests.conftest import SECRET, Processes, free_port, wait_for
from tests.test_worker import enqueue

KEYS = Keys("nimbys")
pytestmark = pytest.mark.slow


def post(url: str, event: str, payload: dict, delivery: str | None = None) -> tuple[int, str]:
    body = json.dumps(payload).encode()
    delivery = delivery or str(uuid.uuid4())
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "X-GitHub-Event": event, "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": sign(body, SECRET)})
    try:
        with urllib.request.urlopen(req, timeout=5) as answer:
            return answer.status, delivery
    except urllib.error.HTTPError as exc:
        return exc.code, delivery
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, delivery


def start_web(processes: Processes, redis_url: str, **env: str) -> str:
    port = free_port()
    processes.start("web", "web", processes.env(REDIS_URL=redis_url, PORT=str(port), **env))
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                return True
        except (urllib.error.URLError, ConnectionError):
            return False

    wait_for(up, timeout=20)
    return url


def test_kill_9_mid_event_another_worker_finishes_it_once(processes: Processes, redis_url: str, r) -> None:  # type: ignore[no-untyped-def]
    env = processes.env(REDIS_URL=redis_url)
    first = processes.start("worker", "worker-a", env)
    wait_for(lambda: b"worker started" in Path(processes.tmp / "worker-a.log").read_bytes())
    delivery = enqueue(r, "test_slow", {"seconds": 2})
    wait_for(lambda: r.get(f"test:started:{delivery}") == b"1")
    first.send_signal(signal.SIGKILL)
    first.wait(5)
    assert r.get(f"test:finished:{delivery}") is None
    processes.start("worker", "worker-b", env)
    wait_for(lambda: r.get(f"test:finished:{delivery}") == b"1", timeout=20)
    wait_for(lambda: r.get(KEYS.status(delivery)) == b"done")
    time.sleep(1.5)  # long enough for a second claim, were there one
    assert r.get(f"test:started:{delivery}") == b"2"
    assert r.get(f"test:finished:{delivery}") == b"1"
    assert r.xlen(KEYS.stream) == 0
    assert r.xpending(KEYS.stream, GROUP)["pending"] == 0
    assert "claimed an entry abandoned by a dead worker" in processes.log("worker-b")


def test_sigterm_finishes_the_event_in_hand_then_exits(processes: Processes, redis_url: str, r) -> None:  # type: ignore[no-untyped-def]
    worker = processes.start("worker", "worker", processes.env(REDIS_URL=redis_url))
    delivery = enqueue(r, "test_slow", {"seconds": 1.5})
    waiting = enqueue(r, "ping", {})
    wait_for(lambda: r.get(f"test:started:{delivery}") == b"1")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(15) == 0
    assert r.get(f"test:finished:{delivery}") == b"1"
    assert r.get(KEYS.status(delivery)) == b"done"
    assert r.get(KEYS.status(waiting)) == b"queued"  # not read after the stop request
    assert r.xpending(KEYS.stream, GROUP)["pending"] == 0


def healthz_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_redis_restart_answers_503_while_down_and_loses_nothing_accepted(
    processes: Processes, tmp_path: Path
) -> None:
    server = EmbeddedRedis(tmp_path / "redis").start()
    client = redis.Redis.from_url(server.url)
    url = start_web(processes, server.url)
    worker = processes.start("worker", "worker", processes.env(REDIS_URL=server.url))
    accepted: list[str] = []
    statuses: list[int] = []
    stop = threading.Event()

    def sender() -> None:
        while not stop.is_set():
            status, delivery = post(url + "/webhook", "ping", {"zen": "x"})
            statuses.append(status)
            if status == 202:
                accepted.append(delivery)
            time.sleep(0.01)

    thread = threading.Thread(target=sender)
    thread.start()
    try:
        wait_for(lambda: len(accepted) >= 20)
        server.stop()  # graceful: the append-only file is flushed, as on a restart
        wait_for(lambda: statuses[-1] == 503 and statuses.count(503) >= 5)
        assert healthz_status(url) == 503
        accepted_before = len(accepted)
        server.start()
        wait_for(lambda: len(accepted) >= accepted_before + 20, timeout=20)
        assert healthz_status(url) == 200
    finally:
        stop.set()
        thread.join()
    try:
        wait_for(lambda: client.llen("test:handled") >= len(accepted), timeout=30)
        handled = {d.decode() for d in client.lrange("test:handled", 0, -1)}
        assert set(accepted) <= handled, "a delivery answered 202 was lost"
        assert set(statuses) <= {202, 503}
        assert worker.poll() is None, "the worker must ride out a Redis outage"
    finally:
        processes.stop_all()
        server.stop()


def test_live_end_to_end_with_app_auth_and_no_secret_in_logs(
    processes: Processes, redis_url: str, r, fake_github, app_key  # type: ignore[no-untyped-def]
) -> None:
    """Receiver -> stream -> worker -> GitHub (JWT, installation token) with nothing secret logged."""
    fake_github.state.add_runner("aigdat", "jefowers-stx-1", ["self-hosted", "Windows", "stx", "jefowers"])
    fake_github.state.issues["aigdat/nimbys"] = {1: {"id": 1, "title": "t", "state": "open"}}
    env = {"GITHUB_API_URL": fake_github.url, "APP_ID": "4242", "PRIVATE_KEY": app_key[0],
           "LOG_LEVEL": "DEBUG"}
    url = start_web(processes, redis_url, **env)
    processes.start("worker", "worker-1", processes.env(REDIS_URL=redis_url, **env))
    processes.start("worker", "worker-2", processes.env(REDIS_URL=redis_url, **env))
    sent = [post(url + "/webhook", "test_github", {"installation": {"id": 1}})[1] for _ in range(6)]
    wait_for(lambda: r.llen("test:github-done") == 6, timeout=30)
    # Redelivery of a processed delivery: 200, not queued again.
    status, _ = post(url + "/webhook", "test_github", {"installation": {"id": 1}}, delivery=sent[0])
    assert status == 200
    assert len(fake_github.calls_to("POST", r"/access_tokens$")) == 1  # one token, shared by both workers
    assert len(fake_github.calls_to("POST", r"/issues/1/comments$")) == 6
    token = next(iter(fake_github.state.tokens))
    logs = processes.log("web") + processes.log("worker-1") + processes.log("worker-2")
    for secret in (SECRET, token, *[line for line in app_key[0].splitlines() if len(line) > 20]):
        assert secret not in logs
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    about = [line for line in lines if line.get("event") == "test_github"]
    assert about and all(line.get("delivery") for line in about)
    assert all(line.get("installation") == 1 for line in about if line["logger"] == "bot.worker")
