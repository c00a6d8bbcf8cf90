"""``nimbys``: run the bot and look after it.

serve         web + worker + (without REDIS_URL) a private redis-server, on one machine
web, worker   the two halves, as the Procfile runs them
replay        send recorded deliveries to a running receiver, signed
dead-letters  list (or requeue) deliveries whose handlers kept failing
actions       list the writes a dry-run bot would have made
backtest      replay workflow_job payloads through the health policy
simulate      generate a synthetic pool's stream and measure the policy on it
runner        restore a quarantined runner
lint          lint NIMBYS workflow files (text, json, sarif or github output)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from bot.settings import Settings, SettingsError

EXIT_USAGE = 2


def _fail(message: str) -> int:
    print(f"nimbys: {message}", file=sys.stderr)
    return EXIT_USAGE


def _redis_url(settings: Settings) -> str | None:
    """REDIS_URL, else the private Redis of a running `nimbys serve` on this machine."""
    if settings.redis_url:
        return settings.redis_url
    sock = settings.state_dir / "redis" / "redis.sock"
    return f"unix://{sock}?db=0" if sock.exists() else None


def _secret_file(settings: Settings) -> Path:
    return settings.state_dir / "webhook-secret"


def cmd_serve(args: argparse.Namespace) -> int:
    from bot.embedded_redis import EmbeddedRedis, EmbeddedRedisError

    settings = Settings.from_env()
    port = args.port or settings.port
    env = dict(os.environ, PORT=str(port))
    secret_source = "WEBHOOK_SECRET"  # noqa: S105 (a description, not a secret)
    if not settings.webhook_secret:
        if not settings.dry_run:
            return _fail("WEBHOOK_SECRET is not set: a live bot must verify every delivery "
                         "with your App's webhook secret. Set it, or run in dry-run.")
        path = _secret_file(settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_text(secrets.token_hex(32) + "\n")
        os.chmod(path, 0o600)
        env["WEBHOOK_SECRET"] = path.read_text().strip()
        secret_source = f"generated, kept in {path}"
    embedded = None
    if not settings.redis_url:
        try:
            embedded = EmbeddedRedis(settings.state_dir / "redis").start()
        except EmbeddedRedisError as exc:
            return _fail(str(exc))
        env["REDIS_URL"] = embedded.url
    redis_desc = f"private redis-server, data in {settings.state_dir / 'redis'}" if embedded else "REDIS_URL"
    print(f"nimbys serve: webhook URL   http://127.0.0.1:{port}/webhook")
    print(f"              mode          {settings.mode}"
          + ("" if settings.has_app_credentials else " (no App credentials: APP_ID and PRIVATE_KEY unset)"))
    print(f"              secret        {secret_source}")
    print(f"              redis         {redis_desc}")
    print(f"              health        http://127.0.0.1:{port}/healthz", flush=True)
    children = [
        subprocess.Popen([sys.executable, "-m", "bot", "web"], env=env),
        subprocess.Popen([sys.executable, "-m", "bot", "worker"], env=env),
    ]
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = 0
    try:
        while not stopping:
            for child in children:
                if child.poll() is not None:
                    print(f"nimbys serve: {child.args[-1]} exited with {child.returncode}; stopping",
                          file=sys.stderr)
                    code = 1
                    stopping = True
            time.sleep(0.2)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
        if embedded:
            embedded.stop()
    return code


def cmd_web(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    try:
        settings.require_webhook_secret()
    except SettingsError as exc:
        return _fail(str(exc))
    if not settings.redis_url:
        return _fail("REDIS_URL is not set (use `nimbys serve` for a private Redis)")
    env = dict(os.environ)
    if args.port:
        env["PORT"] = str(args.port)
    argv = [sys.executable, "-m", "gunicorn", "-c", "python:bot.web.gunicorn_conf", "bot.web.wsgi:app"]
    os.execve(sys.executable, argv, env)  # noqa: S606 (fixed argv, no shell)
    return 0  # pragma: no cover


def cmd_worker(args: argparse.Namespace) -> int:
    from bot.logs import register_secret, setup_logging
    from bot.worker.consumer import run_worker
    from bot.worker.routing import build_router

    settings = Settings.from_env()
    if not settings.redis_url:
        return _fail("REDIS_URL is not set (use `nimbys serve` for a private Redis)")
    register_secret(settings.webhook_secret)
    register_secret(settings.private_key)
    setup_logging(settings.log_level, settings.log_format)
    asyncio.run(run_worker(settings, build_router(settings.extra_routers)))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from bot.replay import ReplayError, load, send

    settings = Settings.from_env()
    secret = args.secret or settings.webhook_secret
    if not secret and _secret_file(settings).exists():
        secret = _secret_file(settings).read_text().strip()
    if not secret:
        return _fail("no webhook secret: set WEBHOOK_SECRET or pass --secret")
    url = args.url or f"http://127.0.0.1:{settings.port}/webhook"
    worst = 0
    try:
        for item in load(Path(p) for p in args.files):
            status, text = send(url, secret, item)
            print(f"{status} {item.event} {item.delivery} {item.source}: {text}")
            if status >= 300:
                worst = 1
    except (ReplayError, OSError) as exc:
        return _fail(str(exc))
    return worst


def _sync_redis(settings: Settings):  # type: ignore[no-untyped-def]
    import redis

    url = _redis_url(settings)
    if not url:
        raise SettingsError("no Redis: set REDIS_URL (or start `nimbys serve` on this machine)")
    return redis.Redis.from_url(url, socket_connect_timeout=2)


def cmd_dead_letters(args: argparse.Namespace) -> int:
    from bot.intake.queue import Keys, decode_fields
    from bot.intake.store import IntakeStore

    settings = Settings.from_env()
    try:
        client = _sync_redis(settings)
    except SettingsError as exc:
        return _fail(str(exc))
    keys = Keys(settings.key_prefix)
    entries = client.xrange(keys.dead, "-", "+")
    store = IntakeStore(client, keys, queued_ttl=settings.delivery_ttl_seconds)
    shown = 0
    for entry_id, raw in entries:
        fields = decode_fields(raw)
        delivery = fields.get("delivery", "")
        if args.requeue and (args.requeue == ["all"] or delivery in args.requeue):
            store.enqueue(event=fields.get("event", ""), delivery=delivery,
                          content_type=fields.get("content_type", "application/json"),
                          body=fields.get("body", b""), headers={})
            client.xdel(keys.dead, entry_id)
            print(f"requeued {delivery}")
            continue
        info = {k: v for k, v in fields.items() if k != "body"}
        info["id"] = entry_id.decode()
        if args.json:
            print(json.dumps(info))
        else:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(info.get("failed_at", 0))))
            print(f"{when}Z {info.get('event')} {delivery} attempts={info.get('attempt')} "
                  f"error={info.get('error')}")
        shown += 1
    if not entries and not args.json:
        print("no dead letters")
    return 0


def cmd_actions(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    try:
        client = _sync_redis(settings)
    except SettingsError as exc:
        return _fail(str(exc))
    rows = client.lrange(f"{settings.key_prefix}:dry-run:actions", 0, args.limit - 1)
    for raw in reversed(rows):
        entry = json.loads(raw)
        if args.json:
            print(json.dumps(entry, ensure_ascii=False))
        else:
            when = time.strftime("%H:%M:%S", time.localtime(entry["ts"]))
            body = json.dumps(entry.get("body"), ensure_ascii=False) if entry.get("body") is not None else ""
            print(f"{when} {entry['method']:<6} {entry['path']} {body[:200]}")
    if not rows and not args.json:
        print("no dry-run actions recorded")
    return 0


def cmd_lint(args: argparse.Namespace) -> int:
    from bot.lint.cli import run

    return run(args)


def _policy(path: str | None):  # type: ignore[no-untyped-def]
    from bot.runner_health.policy import load_policy

    settings_path = path or Settings.from_env().policy_path
    return load_policy(Path(settings_path).read_text() if settings_path else None)


def cmd_backtest(args: argparse.Namespace) -> int:
    from bot.runner_health.backtest import as_jsonl, as_text, backtest, read_jsonl
    from bot.runner_health.policy import PolicyError

    try:
        policy = _policy(args.config)
        payloads = list(read_jsonl(args.events))
    except (OSError, ValueError, PolicyError) as exc:
        return _fail(str(exc))
    result = asyncio.run(backtest(payloads, policy, Settings.from_env().redis_url))
    sys.stdout.write(as_jsonl(result) if args.format == "jsonl" else as_text(result))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from bot.runner_health.backtest import backtest
    from bot.runner_health.policy import PolicyError
    from bot.runner_health.simulate import SimConfig, Truth, generate, score_decisions

    cfg = SimConfig(runners=args.runners, jobs=args.jobs, bad=args.bad, bad_rate=args.bad_rate, flaky=args.flaky,
                    code_bug_rate=args.code_bug_rate, seed=args.seed, infra_share=args.infra_share)
    truth = Truth()
    payloads = list(generate(cfg, truth))
    if args.out:
        Path(args.out).write_text("".join(json.dumps(p) + "\n" for p in payloads))
    if not args.backtest:
        if not args.out:
            sys.stdout.write("".join(json.dumps(p) + "\n" for p in payloads))
        return 0
    try:
        policy = _policy(args.config)
    except (OSError, PolicyError) as exc:
        return _fail(str(exc))
    result = asyncio.run(backtest(payloads, policy, Settings.from_env().redis_url))
    figures = score_decisions(result.decisions, truth)
    figures["jobs"] = len(payloads)
    print(json.dumps(figures, indent=2))
    return 0


def cmd_runner(args: argparse.Namespace) -> int:
    from bot.runner_health.cli import restore_command

    return asyncio.run(restore_command(args.name, args.org, args.by))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nimbys", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="web + worker (+ a private Redis) on this machine")
    p.add_argument("--port", type=int, help="listen port (overrides PORT)")
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("web", help="the webhook receiver (gunicorn)")
    p.add_argument("--port", type=int, help="listen port (overrides PORT)")
    p.set_defaults(func=cmd_web)
    p = sub.add_parser("worker", help="the async worker")
    p.set_defaults(func=cmd_worker)
    p = sub.add_parser("replay", help="send recorded deliveries to a receiver, signed")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--url", help="receiver URL (default http://127.0.0.1:$PORT/webhook)")
    p.add_argument("--secret", help="webhook secret (default WEBHOOK_SECRET or serve's generated one)")
    p.set_defaults(func=cmd_replay)
    from bot.lint.cli import add_arguments as lint_arguments

    p = sub.add_parser("lint", help="lint NIMBYS workflow files")
    lint_arguments(p)
    p.set_defaults(func=cmd_lint)
    p = sub.add_parser("backtest", help="replay workflow_job payloads through the health policy")
    p.add_argument("events", metavar="EVENTS.jsonl", help="one payload per line (- for stdin)")
    p.add_argument("--config", metavar="POLICY.yml")
    p.add_argument("--format", choices=["text", "jsonl"], default="text")
    p.set_defaults(func=cmd_backtest)
    p = sub.add_parser("simulate", help="generate a synthetic pool's workflow_job stream (and backtest it)")
    p.add_argument("--runners", type=int, default=12)
    p.add_argument("--jobs", type=int, default=5000)
    p.add_argument("--bad", type=int, default=2)
    p.add_argument("--bad-rate", type=float, default=0.5)
    p.add_argument("--flaky", type=float, default=0.05)
    p.add_argument("--code-bug-rate", type=float, default=0.03)
    p.add_argument("--infra-share", type=float, default=0.0,
                   help="share of a bad runner's own failures with an INFRA sign (its 'Set up runner' step fails, "
                        "as with a pre-job health check); default 0")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", metavar="FILE", help="write the stream here (JSON lines)")
    p.add_argument("--backtest", action="store_true", help="run the backtest on it and print the figures")
    p.add_argument("--config", metavar="POLICY.yml")
    p.set_defaults(func=cmd_simulate)
    p = sub.add_parser("runner", help="act on a runner: restore NAME")
    runner_sub = p.add_subparsers(dest="runner_command", required=True)
    q = runner_sub.add_parser("restore", help="put a quarantined runner back, on probation")
    q.add_argument("name")
    q.add_argument("--org", default="aigdat")
    q.add_argument("--by", default="cli", help="the login recorded as restoring it")
    q.set_defaults(func=cmd_runner)
    p = sub.add_parser("dead-letters", help="deliveries whose handlers kept failing")
    p.add_argument("--json", action="store_true")
    p.add_argument("--requeue", nargs="+", metavar="DELIVERY", help="requeue these (or 'all')")
    p.set_defaults(func=cmd_dead_letters)
    p = sub.add_parser("actions", help="writes a dry-run bot would have made")
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, default=100)
    p.set_defaults(func=cmd_actions)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SettingsError as exc:
        return _fail(str(exc))


if __name__ == "__main__":
    raise SystemExit(main())
