"""The pool as the page and /api/pool show it, read from Redis (synchronous: the web process).

One function builds the data; the page renders it and the API returns it, so
the two never disagree.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

import redis

from bot.runner_health.policy import HealthPolicy

STRIP = 20  # jobs shown per runner


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def runner_state(st: dict[str, str], name: str, policy: HealthPolicy) -> str:
    if st.get("quarantined") == "1":
        who = st.get("quarantined_by") or "nimbys-bot"
        return "quarantined by bot" if who == "nimbys-bot" else f"quarantined by {who}"
    if st.get("removed_by_person") == "1":
        return "taken out by hand"
    if st.get("has_label") == "0":
        return "not in the pool"
    if st.get("exempt") == "1" or name in policy.exempt:
        return "exempt"
    if int(st.get("probation_left") or 0) > 0:
        return "probation"
    if st.get("warn_since"):
        return "warn"
    return "active"


def pool_view(client: redis.Redis, prefix: str, policy: HealthPolicy, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    p = f"{prefix}:health"
    names = sorted(_s(n) for n in client.smembers(f"{p}:pool"))
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hgetall(f"{p}:state:{name}")
        pipe.zrange(f"{p}:order:{name}", -STRIP, -1)
    answers = pipe.execute()
    pipe = client.pipeline(transaction=False)
    for i, name in enumerate(names):
        pipe.hmget(f"{p}:records:{name}", answers[2 * i + 1] or [b"-"])
    records = pipe.execute()
    runners = []
    for i, name in enumerate(names):
        st = {_s(k): _s(v) for k, v in answers[2 * i].items()}
        jobs = [json.loads(r) for r in records[i] if r]
        score = round(sum(j.get("weight") or 0 for j in jobs[-policy.window:]), 2)
        issue = st.get("issue_number")
        runners.append({
            "name": name,
            "maintainer": policy.maintainers.get(name) or (name.split("-stx-")[0] if "-stx-" in name else None),
            "status": st.get("status") or "unknown",
            "busy": st.get("busy") == "1",
            "state": runner_state(st, name, policy),
            "score": score,
            "reason": st.get("reason") if st.get("quarantined") == "1" else None,
            "issue": f"https://github.com/{policy.issues_repo}/issues/{issue}" if issue else None,
            "jobs": [{"id": j["job_id"], "url": j.get("url"), "failed": bool(j.get("failed")),
                      "class": j.get("cls")} for j in jobs],
        })
    decisions = []
    for _id, fields in client.xrevrange(f"{prefix}:audit", "+", "-", count=30):
        f = {_s(k): _s(v) for k, v in fields.items()}
        decisions.append({"ts": float(f.get("ts", 0)), "action": f.get("action"), "runner": f.get("runner"),
                          "reason": f.get("reason")})
    return {"generated_at": now, "runners": runners, "queue": queue_view(client, prefix, policy, now),
            "decisions": decisions}


def queue_view(client: redis.Redis, prefix: str, policy: HealthPolicy, now: float) -> dict[str, Any]:
    """Queue wait per pool label over the last 24 h (p50, p95) and the jobs waiting now."""
    out: dict[str, Any] = {}
    for label in policy.tracked_labels:
        key = f"{prefix}:wait:{label}"
        client.zremrangebyscore(key, "-inf", now - 86400)
        waits = [float(_s(m).split(":", 1)[1]) for m in client.zrange(key, 0, -1)]
        waiting = [(int(_s(k)), now - float(v)) for k, v in client.hgetall(f"{prefix}:queued:{label}").items()]
        q = statistics.quantiles(waits, n=100) if len(waits) >= 2 else None
        out[label] = {
            "jobs_24h": len(waits),
            "wait_p50_s": round(q[49], 1) if q else (waits[0] if waits else None),
            "wait_p95_s": round(q[94], 1) if q else (waits[0] if waits else None),
            "waiting_now": [{"job": job, "waiting_s": round(age, 1)} for job, age in sorted(waiting)],
        }
    return out
