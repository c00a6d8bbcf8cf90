"""Real parts for every test: a private redis-server, a strict fake GitHub, real processes."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.embedded_redis import EmbeddedRedis
from bot.settings import Settings
from tests.support.fakegithub import FakeGitHub

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SECRET = "test-webhook-secret-0123456789"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    redis.Redis.from_url(redis_server.url).flushall()
    return redis_server.url


@pytest.fixture
def r(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


@pytest.fixture(scope="session")
def app_key() -> tuple[str, str]:
    """A throwaway App private key (PEM) and its public half."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return private, public


@pytest.fixture
def fake_github(app_key: tuple[str, str]) -> Iterator[FakeGitHub]:
    fake = FakeGitHub(public_key=app_key[1], app_id="4242")
    fake.start()
    yield fake
    fake.stop()
    assert not fake.violations, "requests the real GitHub API would reject:\n" + "\n".join(fake.violations)


@pytest.fixture
def settings_for(redis_url: str, app_key: tuple[str, str]) -> Callable[..., Settings]:
    """Settings for a test: real Redis, fast retry/claim timings, optional live App credentials."""

    def make(*, live: bool = False, github_url: str = "http://127.0.0.1:9", **overrides: Any) -> Settings:
        base = Settings(
            app_id="4242" if live else None,
            private_key=app_key[0] if live else None,
            webhook_secret=SECRET,
            webhook_secret_source="WEBHOOK_SECRET",
            redis_url=redis_url,
            github_api_url=github_url,
            retry_base_seconds=0.05,
            retry_max_seconds=0.2,
            claim_idle_ms=500,
            max_attempts=3,
            worker_name="test-worker",
            watch_seconds=0,  # the pool watcher is driven by its own test
        )
        return dataclasses.replace(base, **overrides)

    return make


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


class Processes:
    """Start `nimbys web` / `nimbys worker` as real processes; every one is stopped at teardown."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.running: list[tuple[subprocess.Popen[bytes], Path]] = []

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NIMBYS_", "REDIS_", "APP_"))}
        env.update(
            PYTHONPATH=str(ROOT),
            WEBHOOK_SECRET=SECRET,
            NIMBYS_LOG_FORMAT="json",
            NIMBYS_EXTRA_ROUTERS="tests.support.routers:router",
            NIMBYS_CLAIM_IDLE_MS="500",
            NIMBYS_RETRY_BASE_SECONDS="0.05",
            NIMBYS_WEB_WORKERS="1",
            NIMBYS_WEB_THREADS="4",
            NIMBYS_WATCH_SECONDS="0",
        )
        env.update(extra)
        return env

    def start(self, role: str, name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = self.tmp / f"{name}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", role], env=dict(env, NIMBYS_WORKER_NAME=name),
            stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT,
        )
        self.running.append((proc, log))
        return proc

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for proc, _ in self.running:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in self.running:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    yield procs
    procs.stop_all()
