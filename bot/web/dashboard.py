"""The pool page, /api/pool and /metrics (read-only views of Redis).

Private by default: the page and the API need a GitHub sign-in of an org
member (``bot.web.oauth``, when the App's OAuth client is configured) or the
bearer token from ``NIMBYS_DASHBOARD_TOKEN`` (header ``Authorization: Bearer
…``, or the cookie set by ``/login?token=…``); with neither configured they are
refused with a message saying how to configure them. ``/metrics`` follows
``NIMBYS_METRICS_PUBLIC``. ``/webhook`` and ``/healthz`` stay public.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import redis
from flask import Flask, Response, jsonify, make_response, redirect, render_template_string, request

from bot.pool.view import pool_view
from bot.runner_health.policy import HealthPolicy, load_policy
from bot.settings import Settings
from bot.web import oauth as oauth_module

PAGE = (Path(__file__).parent / "pool.html").read_text()
COOKIE = "nimbys_token"


def _policy(settings: Settings) -> HealthPolicy:
    return load_policy(Path(settings.policy_path).read_text() if settings.policy_path else None)


def register(app: Flask, settings: Settings, client: redis.Redis) -> None:
    policy = _policy(settings)
    token = settings.dashboard_token

    oauth = bool(settings.oauth_client_id and settings.oauth_client_secret)
    oauth_module.register(app, settings)

    def authorised() -> bool:
        if oauth and oauth_module.signed_in(settings):
            return True
        if not token:
            return False
        header = request.headers.get("Authorization", "")
        given = header[7:] if header.startswith("Bearer ") else request.cookies.get(COOKIE, "")
        return hmac.compare_digest(given.encode(), token.encode())

    def private(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not authorised():
                if oauth and request.path == "/":
                    return redirect("/auth/login")
                configured = token or oauth
                if not configured:
                    why = "set NIMBYS_DASHBOARD_TOKEN, or GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET"
                elif oauth:
                    why = "sign in at /auth/login or send the bearer token"
                else:
                    why = "a valid bearer token is needed"
                return Response(f"the pool page is private: {why}\n", status=401 if configured else 403,
                                mimetype="text/plain", headers={"WWW-Authenticate": "Bearer"} if configured else {})
            return view(*args, **kwargs)

        return guarded

    @app.get("/login")
    def login() -> Response:
        given = request.args.get("token", "")
        if not token or not hmac.compare_digest(given.encode(), token.encode()):
            return Response("invalid token\n", status=403, mimetype="text/plain")
        answer = make_response(redirect("/"))
        answer.set_cookie(COOKIE, given, httponly=True, samesite="Strict", secure=request.is_secure)
        return answer

    @app.get("/api/pool")
    @private
    def api_pool() -> Response:
        return jsonify(pool_view(client, settings.key_prefix, policy))

    @app.get("/")
    @private
    def page() -> Response:
        data = pool_view(client, settings.key_prefix, policy)
        return Response(render_template_string(PAGE, pool=data, now=time.time()), mimetype="text/html")

    @app.get("/metrics")
    def metrics() -> Response:
        if not settings.metrics_public and not authorised():
            return Response("metrics are private: set NIMBYS_METRICS_PUBLIC=true or send the token\n",
                            status=401, mimetype="text/plain")
        return Response(prometheus_text(client, settings.key_prefix), mimetype="text/plain; version=0.0.4")


def prometheus_text(client: redis.Redis, prefix: str) -> str:
    """Counters kept in Redis by the web and worker processes, in Prometheus' text format."""
    def h(key: str) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in client.hgetall(key).items()}

    intake, worker, github = h(f"{prefix}:stats:intake"), h(f"{prefix}:stats:worker"), h(f"{prefix}:stats:github")
    lines = ["# HELP nimbys_deliveries_total Webhook deliveries by outcome.", "# TYPE nimbys_deliveries_total counter"]
    lines.append(f'nimbys_deliveries_total{{outcome="accepted"}} {intake.get("accepted", 0)}')
    for key, value in sorted(intake.items()):
        if key.startswith("duplicate_"):
            lines.append(f'nimbys_deliveries_total{{outcome="{key}"}} {value}')
        if key.startswith("refused:"):
            reason = key[8:].replace('"', "'")
            lines.append(f'nimbys_deliveries_total{{outcome="refused",reason="{reason}"}} {value}')
    depth = client.xlen(f"{prefix}:deliveries") + client.zcard(f"{prefix}:retry")
    lines += ["# HELP nimbys_queue_depth Deliveries received and not yet processed.", "# TYPE nimbys_queue_depth gauge",
              f"nimbys_queue_depth {depth}",
              "# HELP nimbys_processing_seconds Time from receipt to handled.",
              "# TYPE nimbys_processing_seconds histogram"]
    for bound in ("0.1", "0.5", "1", "5", "30", "120", "600"):
        lines.append(f'nimbys_processing_seconds_bucket{{le="{bound}"}} {worker.get(f"latency_le:{bound}", 0)}')
    lines += [f'nimbys_processing_seconds_bucket{{le="+Inf"}} {worker.get("processed", 0)}',
              f"nimbys_processing_seconds_sum {worker.get('latency_sum', 0)}",
              f"nimbys_processing_seconds_count {worker.get('processed', 0)}",
              "# HELP nimbys_github_calls_total GitHub API calls by status.",
              "# TYPE nimbys_github_calls_total counter"]
    for key, value in sorted(github.items()):
        if key.startswith("status:"):
            lines.append(f'nimbys_github_calls_total{{status="{key[7:]}"}} {value}')
    if "ratelimit_remaining" in github:
        lines += ["# TYPE nimbys_github_ratelimit_remaining gauge",
                  f"nimbys_github_ratelimit_remaining {github['ratelimit_remaining']}"]
    actions: dict[str, int] = {}
    for _id, fields in client.xrange(f"{prefix}:audit", "-", "+"):
        action = fields[b"action"].decode()
        actions[action] = actions.get(action, 0) + 1
    lines += ["# HELP nimbys_runner_actions_total Quarantines, restores and other runner decisions (audit log).",
              "# TYPE nimbys_runner_actions_total counter"]
    for action in ("quarantine", "restore", "warn", "storm", "hold", "probation_end"):
        lines.append(f'nimbys_runner_actions_total{{action="{action}"}} {actions.get(action, 0)}')
    return "\n".join(lines) + "\n"
