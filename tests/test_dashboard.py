"""The pool page, /api/pool and /metrics: the data a seeded pool shows, and who may see it."""

from __future__ import annotations

import json
import time

import pytest

from bot.intake.queue import Keys
from bot.web.app import create_app
from tests.test_runner_health import ORG, Pool, feed, live
from tests.test_worker import enqueue, run_until

TOKEN = "dashboard-token-0123456789"


@pytest.fixture
def seeded(settings_for, fake_github, r):  # type: ignore[no-untyped-def]
    """A pool with one runner quarantined by the bot, one taken out by a person, jobs waiting."""
    pool = Pool(fake_github, [f"r{i}-stx-1" for i in range(6)])
    settings = live(settings_for, fake_github)
    feed(settings, r, pool.bad_streak("r0-stx-1", "r1-stx-1", 6))
    queued = pool.job("r2-stx-1", "success", "q1")
    queued["action"], queued["workflow_job"]["created_at"] = "queued", "2026-12-04T10:00:00Z"
    started = json.loads(json.dumps(queued))
    started["action"], started["workflow_job"]["started_at"] = "in_progress", "2026-12-04T10:05:00Z"
    waiting = pool.job("r3-stx-1", "success", "q2")
    waiting["action"] = "queued"
    waiting["workflow_job"]["created_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 120))
    for payload in (queued, started, waiting):
        delivery = enqueue(r, "workflow_job", payload)
        run_until(settings, lambda d=delivery: r.get(Keys("nimbys").status(d)) == b"done")
    r.hset("nimbys:health:state:r5-stx-1", mapping={"removed_by_person": 1, "has_label": 0})
    import dataclasses

    return dataclasses.replace(settings, dashboard_token=TOKEN)


def test_api_and_page_show_the_pool(seeded, r) -> None:  # type: ignore[no-untyped-def]
    client = create_app(seeded, r).test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    data = client.get("/api/pool", headers=auth).json
    by_name = {x["name"]: x for x in data["runners"]}
    assert by_name["r0-stx-1"]["state"] == "quarantined by bot" and by_name["r0-stx-1"]["issue"]
    assert by_name["r5-stx-1"]["state"] == "taken out by hand"
    assert by_name["r1-stx-1"]["state"] == "active" and by_name["r1-stx-1"]["maintainer"] == "r1"
    assert len(by_name["r0-stx-1"]["jobs"]) == 6 and all(j["failed"] for j in by_name["r0-stx-1"]["jobs"])
    stx = data["queue"]["stx"]
    assert stx["wait_p50_s"] == 300.0 and [w["job"] for w in stx["waiting_now"]]
    assert any(d["action"] == "quarantine" for d in data["decisions"])
    page = client.get("/", headers=auth)
    assert page.status_code == 200 and 'data-runner="r0-stx-1" data-state="quarantined by bot"' in page.text
    assert "quarantined-row" in page.text and 'meta http-equiv="refresh"' in page.text


def test_private_by_default(seeded, r) -> None:  # type: ignore[no-untyped-def]
    client = create_app(seeded, r).test_client()
    assert client.get("/").status_code == 401 and client.get("/api/pool").status_code == 401
    assert client.get("/api/pool", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/login?token=wrong").status_code == 403
    login = client.get(f"/login?token={TOKEN}")
    assert login.status_code == 302 and client.get("/").status_code == 200  # the cookie now
    import dataclasses

    unconfigured = create_app(dataclasses.replace(seeded, dashboard_token=None), r).test_client()
    refused = unconfigured.get("/api/pool")
    assert refused.status_code == 403 and "NIMBYS_DASHBOARD_TOKEN" in refused.text
    assert unconfigured.get("/healthz").status_code == 200  # stays public


def test_metrics(seeded, r) -> None:  # type: ignore[no-untyped-def]
    import dataclasses

    client = create_app(seeded, r).test_client()
    assert client.get("/metrics").status_code == 401
    text = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    public = create_app(dataclasses.replace(seeded, metrics_public=True), r).test_client()
    assert public.get("/metrics").text == text
    assert 'nimbys_runner_actions_total{action="quarantine"} 1' in text
    assert "nimbys_queue_depth 0" in text and 'nimbys_github_calls_total{status="200"}' in text
    assert 'nimbys_processing_seconds_bucket{le="+Inf"}' in text
    client.post("/webhook", data=b"{}", headers={"X-GitHub-Event": "ping"})
    assert 'outcome="refused",reason="missing X-Hub-Signature-256"} 1' in public.get("/metrics").text
    assert ORG


def test_github_sign_in_for_org_members_only(seeded, r, fake_github) -> None:  # type: ignore[no-untyped-def]
    import dataclasses
    from urllib.parse import parse_qs, urlparse

    settings = dataclasses.replace(seeded, dashboard_token=None, oauth_client_id="Iv1.client",
                                   oauth_client_secret="client-secret", github_url=fake_github.url)
    fake_github.state.members[ORG] = {"alice": "member"}
    fake_github.state.oauth_codes.update({"code-alice": "alice", "code-mallory": "mallory"})
    client = create_app(settings, r).test_client()
    assert client.get("/").headers["Location"] == "/auth/login"  # the page sends people to sign in
    assert client.get("/api/pool").status_code == 401
    start = client.get("/auth/login")
    target = urlparse(start.headers["Location"])
    assert target.path == "/login/oauth/authorize" and parse_qs(target.query)["client_id"] == ["Iv1.client"]
    state = parse_qs(target.query)["state"][0]
    assert client.get("/auth/callback?code=code-alice&state=forged").status_code == 400
    client.get("/auth/login")  # a fresh state (the failed attempt used the old one up)
    with client.session_transaction() as sess:
        state = sess["state"]
    done = client.get(f"/auth/callback?code=code-alice&state={state}")
    assert done.status_code == 302 and client.get("/api/pool").status_code == 200
    with client.session_transaction() as sess:
        assert sess["login"] == "alice" and "token" not in str(dict(sess))  # the user's token is not kept

    other = create_app(settings, r).test_client()
    other.get("/auth/login")
    with other.session_transaction() as sess:
        state = sess["state"]
    refused = other.get(f"/auth/callback?code=code-mallory&state={state}")
    assert refused.status_code == 403 and "not a member of aigdat" in refused.text
    assert other.get("/api/pool").status_code == 401
