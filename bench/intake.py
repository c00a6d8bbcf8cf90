"""Intake benchmark: POST /webhook under concurrency on loopback, three servers side by side.

1. nimbys: gunicorn + Flask, verify + dedup + XADD to a private redis-server (AOF on);
2. bare:   the same gunicorn setup and Flask, a route that answers 202 and does nothing
           (the framework's ceiling);
3. probot: a no-op Probot app (npm `probot`), which verifies and stores nothing
           (skipped with a note when bench/probot-app has no node_modules:
           `cd bench/probot-app && npm install`).

For each: the most deliveries/s at a fixed concurrency (closed loop; with `wrk` when
it is installed, `apt-get install wrk`, else an aiohttp client), then p50/p99 latency
at a fixed offered rate (open loop, default 500/s, aiohttp). Prints a table.

    .venv/bin/python bench/intake.py [--seconds 10] [--rate 500] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.embedded_redis import EmbeddedRedis  # noqa: E402
from bot.replay import sign  # noqa: E402

SECRET = "bench-secret-0123456789abcdef"
PAYLOAD = (ROOT / "tests" / "fixtures" / "webhooks" / "workflow_job.completed.1.json").read_bytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def headers(event: str = "workflow_job") -> dict[str, str]:
    return {"Content-Type": "application/json", "X-GitHub-Event": event,
            "X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": sign(PAYLOAD, SECRET)}


async def closed_loop(url: str, seconds: float, concurrency: int) -> tuple[float, int]:
    """Deliveries per second with `concurrency` requests always in flight."""
    done = errors = 0
    stop_at = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def client() -> None:
            nonlocal done, errors
            while time.monotonic() < stop_at:
                async with session.post(url, data=PAYLOAD, headers=headers()) as answer:
                    await answer.read()
                    if answer.status in (200, 202):
                        done += 1
                    else:
                        errors += 1
        started = time.monotonic()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return done / (time.monotonic() - started), errors


async def open_loop(url: str, seconds: float, rate: float) -> tuple[float, float, float, int]:
    """Latency at a fixed offered rate: (p50 ms, p99 ms, achieved rate, errors)."""
    latencies: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        async def one() -> None:
            nonlocal errors
            started = time.perf_counter()
            async with session.post(url, data=PAYLOAD, headers=headers()) as answer:
                await answer.read()
                if answer.status not in (200, 202):
                    errors += 1
            latencies.append((time.perf_counter() - started) * 1000)

        tasks = []
        begin = time.perf_counter()
        n = int(seconds * rate)
        for i in range(n):
            delay = begin + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - begin
    q = statistics.quantiles(latencies, n=100)
    return q[49], q[98], len(latencies) / elapsed, errors


def wrk_closed_loop(url: str, seconds: float, concurrency: int) -> tuple[float, int]:
    """The same measurement with wrk (C, Debian package `wrk`): the generator takes far less CPU."""
    body = tempfile.NamedTemporaryFile(suffix=".json", delete=False)
    body.write(PAYLOAD)
    body.close()
    base, _, path = url.partition("://")[2].partition("/")
    env = dict(os.environ, BENCH_BODY=body.name, BENCH_SIG=sign(PAYLOAD, SECRET), BENCH_PATH="/" + path,
               BENCH_RUN=uuid.uuid4().hex[:12])
    out = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:.0f}s",
                          "-s", str(ROOT / "bench" / "wrk_webhook.lua"), f"http://{base}"],
                         env=env, capture_output=True, text=True, check=True).stdout
    os.unlink(body.name)
    rps = float(next(line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec")))
    errors = sum(int(line.split()[-1]) for line in out.splitlines() if "Non-2xx" in line)
    return rps, errors


class Drain:
    """Stand in for workers that keep up: trim the delivery stream every 0.2 s.

    Without it the backlog grows by ~30 MB/s during a run and Redis's automatic
    AOF rewrite forks and rewrites all of it again and again, which is not the
    steady state of a bot whose workers keep up.
    """

    def __init__(self, url: str) -> None:
        import threading

        import redis

        self.client = redis.Redis.from_url(url)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.wait(0.2):
            self.client.xtrim("nimbys:deliveries", maxlen=0)

    def __enter__(self) -> Drain:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def measure(url: str, args: argparse.Namespace, use_wrk: bool) -> tuple[float, int, float, float, float, int]:
    """Median max throughput over ``args.repeat`` closed-loop runs, then the open-loop latency."""
    runs = []
    for _ in range(args.repeat):
        if use_wrk:
            runs.append(wrk_closed_loop(url, args.seconds, args.concurrency))
        else:
            runs.append(asyncio.run(closed_loop(url, args.seconds, args.concurrency)))
    p50, p99, achieved, errors = asyncio.run(open_loop(url, args.seconds, args.rate))
    return statistics.median(r[0] for r in runs), sum(r[1] for r in runs), p50, p99, achieved, errors


def start(cmd: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--no-drain", action="store_true", help="let the backlog grow (no stand-in workers)")
    parser.add_argument("--repeat", type=int, default=3, help="closed-loop runs per server; the median is shown")
    parser.add_argument("--python-client", action="store_true", help="closed loop with aiohttp, not wrk")
    parser.add_argument("--only", nargs="*", default=["nimbys", "bare", "probot"])
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="nimbys-bench-"))
    redis = EmbeddedRedis(tmp / "redis").start()
    base_env = dict(os.environ, WEBHOOK_SECRET=SECRET, REDIS_URL=redis.url, NIMBYS_LOG_FORMAT="json",
                    LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT))
    venv_bin = Path(sys.executable).parent
    gunicorn = [str(venv_bin / "gunicorn"), "-c", "python:bot.web.gunicorn_conf"]
    servers: dict[str, tuple[list[str], dict[str, str], Path, str]] = {}
    port = free_port()
    servers["nimbys"] = ([*gunicorn, "bot.web.wsgi:app"], dict(base_env, PORT=str(port)), ROOT,
                         f"http://127.0.0.1:{port}/webhook")
    port = free_port()
    servers["bare"] = ([*gunicorn, "bench.bare_app:app"], dict(base_env, PORT=str(port)), ROOT,
                       f"http://127.0.0.1:{port}/webhook")
    probot_dir = ROOT / "bench" / "probot-app"
    notes = []
    if (probot_dir / "node_modules" / "probot").exists() and shutil.which("node"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption()).decode()
        port = free_port()
        servers["probot"] = (
            [str(probot_dir / "node_modules" / ".bin" / "probot"), "run", "./app.js"],
            dict(base_env, APP_ID="1", PRIVATE_KEY=key, PORT=str(port), LOG_LEVEL="warn", HOST="127.0.0.1"),
            probot_dir, f"http://127.0.0.1:{port}/api/github/webhooks")
    else:
        notes.append("probot: not measured (run `npm install` in bench/probot-app)")
    if "nimbys" in args.only:
        backlog = "left to grow" if args.no_drain else "drained every 0.2 s (workers keeping up)"
        notes.append("nimbys: backlog " + backlog)
    use_wrk = shutil.which("wrk") is not None and not args.python_client
    notes.append("max deliveries/s measured with " + ("wrk" if use_wrk else "the Python aiohttp client"))
    rows = []
    try:
        for name, (cmd, env, cwd, url) in servers.items():
            if name not in args.only:
                continue
            proc = start(cmd, env, tmp / f"{name}.log", cwd)
            try:
                wait_up(url.rsplit("/", 1)[0] + "/healthz" if name != "probot" else url)
                asyncio.run(closed_loop(url, 1, 8))  # warm up
                drain = Drain(redis.url) if name == "nimbys" and not args.no_drain else contextlib.nullcontext()
                with drain:
                    rps, err1, p50, p99, achieved, err2 = measure(url, args, use_wrk)
                rows.append((name, rps, p50, p99, achieved, err1 + err2))
            finally:
                stop(proc)
    finally:
        redis.stop()
    print(f"\nPOST /webhook, {len(PAYLOAD)} B signed workflow_job payload, loopback, "
          f"{os.cpu_count()} cores, {args.seconds:.0f} s per measurement")
    print(f"{'server':<8} {'max deliveries/s':>17} {'p50 ms':>8} {'p99 ms':>8} {'at rate/s':>10} {'errors':>7}")
    print(f"{'':<8} {'(median of ' + str(args.repeat) + ', c=' + str(args.concurrency) + ')':>17}")
    for name, rps, p50, p99, achieved, errors in rows:
        print(f"{name:<8} {rps:>17.0f} {p50:>8.2f} {p99:>8.2f} {achieved:>10.0f} {errors:>7}")
    for note in notes:
        print(note)
    print(json.dumps({"results": [dict(zip(["server", "max_rps", "p50_ms", "p99_ms", "offered_rps", "errors"],
                                           row, strict=True)) for row in rows]}))


if __name__ == "__main__":
    main()
