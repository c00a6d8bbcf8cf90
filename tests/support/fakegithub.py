"""A stateful fake GitHub REST API, served over HTTP, strict about requests.

Every request is checked against GitHub's own OpenAPI description (the subset in
``tests/fixtures/openapi``) with openapi-core before the fake looks at it. A
request the real API would reject is answered 422 *and* recorded in
``violations``; the ``fake_github`` fixture fails the test when any was
recorded, so a test cannot pass on a request GitHub would refuse.

Authentication is checked as GitHub does: ``/app/...`` needs an App JWT signed
with the App's key; everything else needs an installation token this fake
issued and that has not expired.

Faults are scripted with ``fail_next(method, path_regex, status, headers, times)``
and ``latency[path_regex] = seconds``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jwt
from aiohttp import web
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

SPEC_PATH = Path(__file__).resolve().parent.parent / "fixtures" / "openapi" / "api.github.com.subset.json"
HOST = "https://api.github.com"

_spec_cache: OpenAPI | None = None


def load_spec() -> OpenAPI:
    global _spec_cache
    if _spec_cache is None:
        _spec_cache = OpenAPI.from_file_path(str(SPEC_PATH))
    return _spec_cache


@dataclass
class _Req:
    """openapi-core's Request protocol, over a recorded aiohttp request."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes | None
    host_url: str = HOST

    def __post_init__(self) -> None:
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qsl(self.query, keep_blank_values=True)),
            header=Headers(self.headers),
            cookie=ImmutableMultiDict(),
        )

    @property
    def full_url_pattern(self) -> str:
        return self.host_url + self.path

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "application/json").lower()


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int = 0
    auth: str = ""


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    status: int
    headers: dict[str, str]
    body: dict[str, Any]
    times: int


@dataclass
class Runner:
    id: int
    name: str
    labels: list[str]
    status: str = "online"
    busy: bool = False
    os: str = "Windows"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "os": self.os,
            "status": self.status,
            "busy": self.busy,
            "labels": [label_json(i, n) for i, n in enumerate(self.labels, 1)],
        }


def label_json(i: int, name: str) -> dict[str, Any]:
    kind = "read-only" if name in {"self-hosted", "Windows", "Linux", "X64", "ARM64", "macOS"} else "custom"
    return {"id": i, "name": name, "type": kind}


def user_json(login: str, uid: int = 1, kind: str = "User") -> dict[str, Any]:
    return {
        "login": login, "id": uid, "node_id": f"U_{uid}", "avatar_url": "https://example.invalid/a.png",
        "gravatar_id": "", "url": f"{HOST}/users/{login}", "html_url": f"https://github.com/{login}",
        "followers_url": "", "following_url": "", "gists_url": "", "starred_url": "",
        "subscriptions_url": "", "organizations_url": "", "repos_url": "", "events_url": "",
        "received_events_url": "", "type": kind, "site_admin": False,
    }  # fmt: skip


@dataclass
class State:
    """What the fake remembers between requests; tests seed and inspect it."""

    app_id: str = "4242"
    app_slug: str = "nimbys-bot"
    public_key: str = ""
    installations: dict[int, str] = field(default_factory=lambda: {1: "aigdat"})
    tokens: dict[str, tuple[int, float]] = field(default_factory=dict)
    token_ttl: float = 3600.0
    runners: dict[str, dict[int, Runner]] = field(default_factory=dict)
    issues: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    pulls: dict[str, dict[int, list[dict[str, Any]]]] = field(default_factory=dict)  # repo -> PR -> files
    contents: dict[tuple[str, str], dict[str, bytes]] = field(default_factory=dict)  # (repo, ref) -> path -> bytes
    check_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    annotations: dict[int, list[str]] = field(default_factory=dict)  # job (check run) id -> messages
    reruns: list[int] = field(default_factory=list)
    users: set[str] = field(default_factory=set)
    members: dict[str, dict[str, str]] = field(default_factory=dict)  # org -> login -> role (admin|member)
    permissions: dict[tuple[str, str], str] = field(default_factory=dict)  # (repo, login) -> role_name
    reactions: list[tuple[int, str]] = field(default_factory=list)  # (comment id, content)
    prs: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)  # (repo, number) -> head, author
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # repo -> workflow runs (with jobs)
    reran_runs: list[int] = field(default_factory=list)
    hook_deliveries: list[dict[str, Any]] = field(default_factory=list)  # newest first
    redelivered: list[int] = field(default_factory=list)
    oauth_client: tuple[str, str] = ("Iv1.client", "client-secret")
    oauth_codes: dict[str, str] = field(default_factory=dict)  # code -> login (one use each)
    user_tokens: dict[str, str] = field(default_factory=dict)  # user token -> login
    ids: itertools.count = field(default_factory=lambda: itertools.count(1000))

    def add_pr_files(self, repo: str, number: int, files: list[tuple[str, str]]) -> None:
        """Files a PR changes: (filename, status); renamed ones as (old -> new, renamed)."""
        entries = []
        for name, status in files:
            old, _, new = name.partition(" -> ")
            entry = {"sha": "0" * 40, "filename": new or old, "status": status, "additions": 1, "deletions": 0,
                     "changes": 1, "blob_url": f"https://github.com/{repo}/blob/x/{new or old}",
                     "raw_url": f"https://github.com/{repo}/raw/x/{new or old}",
                     "contents_url": f"{HOST}/repos/{repo}/contents/{new or old}"}
            if new:
                entry["previous_filename"] = old
            entries.append(entry)
        self.pulls.setdefault(repo, {})[number] = entries

    def put_file(self, repo: str, ref: str, path: str, data: str | bytes) -> None:
        self.contents.setdefault((repo, ref), {})[path] = data.encode() if isinstance(data, str) else data

    def add_comment(self, repo: str, issue: int, body: str, user: str) -> int:
        cid = next(self.ids)
        self.comments[cid] = {"id": cid, "repo": repo, "issue": issue, "body": body, "user": user}
        return cid

    def comments_on(self, repo: str, issue: int) -> list[dict[str, Any]]:
        return [c for c in self.comments.values() if c["repo"] == repo and c["issue"] == issue]

    def add_runner(self, org: str, name: str, labels: list[str], **kw: Any) -> Runner:
        runner = Runner(id=next(self.ids), name=name, labels=list(labels), **kw)
        self.runners.setdefault(org, {})[runner.id] = runner
        return runner


Handler = Callable[["FakeGitHub", web.Request, dict[str, str], Any], Awaitable[web.Response]]


class FakeGitHub:
    """Serve the fake on 127.0.0.1 in a background thread (``start``/``stop``)."""

    def __init__(self, public_key: str = "", app_id: str = "4242") -> None:
        self.state = State(app_id=app_id, public_key=public_key)
        self.calls: list[Call] = []
        self.violations: list[str] = []
        self.faults: list[Fault] = []
        self.latency: dict[str, float] = {}
        self.spec = load_spec()
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.lock = threading.Lock()
        _register_routes(self)
        _register_pr_routes(self)

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> str:
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", self._dispatch)
            self._runner = web.AppRunner(app, access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.url = f"http://127.0.0.1:{port}"
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True, name="fake-github")
        self._thread.start()
        ready.wait(10)
        return self.url

    def stop(self) -> None:
        if self._loop is None:
            return
        loop = self._loop

        async def shutdown() -> None:
            assert self._runner is not None
            await self._runner.cleanup()
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        if self._thread:
            self._thread.join(5)

    # ---- scripting -------------------------------------------------------------------------

    def route(self, method: str, template: str) -> Callable[[Handler], Handler]:
        greedy = re.sub(r"\{(\w+)\*\}", r"(?P<\1>.+)", template)
        pattern = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", greedy) + "$")

        def deco(fn: Handler) -> Handler:
            self._routes.append((method, pattern, fn))
            return fn

        return deco

    def fail_next(self, method: str, path_regex: str, status: int, *, headers: dict[str, str] | None = None,
                  message: str = "fake failure", times: int = 1) -> None:
        self.faults.append(Fault(method, re.compile(path_regex), status, headers or {},
                                 {"message": message}, times))

    def issue_token(self, installation_id: int = 1) -> str:
        token = "ghs_" + secrets.token_urlsafe(30).replace("-", "a").replace("_", "b")
        self.state.tokens[token] = (installation_id, time.time() + self.state.token_ttl)
        return token

    def calls_to(self, method: str, path_regex: str) -> list[Call]:
        rx = re.compile(path_regex)
        return [c for c in self.calls if c.method == method and rx.search(c.path)]

    # ---- request handling ------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        path = request.path
        try:
            parsed_body = json.loads(body) if body else None
        except ValueError:
            parsed_body = body.decode(errors="replace")
        call = Call(request.method, path, dict(request.query), parsed_body, auth=headers.get("authorization", ""))
        with self.lock:
            self.calls.append(call)
        for rx, seconds in self.latency.items():
            if re.search(rx, path):
                await asyncio.sleep(seconds)
        # OpenAPI 3.0 cannot say that {path} of the contents API spans segments, as GitHub accepts
        # (`.github/workflows/x.yml`): encode its slashes for validation only.
        if (request.method, path) in _OUTSIDE_SUBSET:
            return await self._outside_subset(request, path, headers, body, call)
        checked_path = _CONTENTS.sub(lambda m: m.group(1) + m.group(2).replace("/", "%2F"), path)
        try:
            self.spec.validate_request(
                _Req(request.method.lower(), checked_path, request.query_string, headers, body or None)
            )
        except Exception as exc:
            why = f"{request.method} {path}: {type(exc).__name__}: {exc}"
            cause = getattr(exc, "__cause__", None)
            if cause is not None:
                why += f" ({cause})"
            self.violations.append(why)
            call.status = 422
            return web.json_response({"message": "Validation Failed (OpenAPI)", "detail": why}, status=422)
        if extra := _extra_rules(request.method, path, parsed_body):
            self.violations.append(f"{request.method} {path}: {extra}")
            call.status = 422
            return web.json_response({"message": extra}, status=422)
        for fault in self.faults:
            if fault.times > 0 and fault.method == request.method and fault.pattern.search(path):
                fault.times -= 1
                call.status = fault.status
                return web.json_response(fault.body, status=fault.status, headers=fault.headers)
        auth_error = self._check_auth(path, headers)
        if auth_error:
            call.status = 401
            return web.json_response({"message": auth_error}, status=401)
        for method, pattern, handler in self._routes:
            match = pattern.match(path)
            if method == request.method and match:
                response = await handler(self, request, match.groupdict(), parsed_body)
                call.status = response.status
                response.headers.setdefault("x-ratelimit-remaining", "4999")
                response.headers.setdefault("x-ratelimit-limit", "5000")
                return response
        self.violations.append(f"{request.method} {path}: valid for GitHub but not implemented by the fake")
        call.status = 501
        return web.json_response({"message": "not implemented by the fake"}, status=501)

    async def _outside_subset(self, request: web.Request, path: str, headers: dict[str, str], body: bytes,
                              call: Call) -> web.Response:
        """The OAuth web flow's token exchange (github.com, not the API) and GET /user, checked by hand."""
        st = self.state
        if path == "/login/oauth/access_token":
            form = dict(parse_qsl(body.decode()))
            if (form.get("client_id"), form.get("client_secret")) != st.oauth_client:
                call.status = 200
                return web.json_response({"error": "incorrect_client_credentials"})
            login = st.oauth_codes.pop(form.get("code", ""), None)
            if login is None:
                return web.json_response({"error": "bad_verification_code"})
            token = "gho_" + secrets.token_hex(18)
            st.user_tokens[token] = login
            call.status = 200
            return web.json_response({"access_token": token, "token_type": "bearer", "scope": ""})
        login = st.user_tokens.get(headers.get("authorization", "").removeprefix("token "))
        if body or login is None:
            call.status = 401
            return web.json_response({"message": "Requires authentication"}, status=401)
        call.status = 200
        return web.json_response(user_json(login))

    def _check_auth(self, path: str, headers: dict[str, str]) -> str | None:
        auth = headers.get("authorization", "")
        if auth.startswith("token ") and auth[6:] in self.state.user_tokens and "/members/" in path:
            return None  # a signed-in user asking about org membership with their own token
        if path.startswith("/app") or re.fullmatch(r"/(orgs|users)/[^/]+/installation|/repos/[^/]+/[^/]+/installation",
                                                   path):
            if not auth.lower().startswith("bearer "):
                return "A JSON web token could not be decoded"
            try:
                claims = jwt.decode(auth.split(" ", 1)[1], self.state.public_key, algorithms=["RS256"])
            except jwt.PyJWTError as exc:
                return f"'Expiration time' claim ('exp') or signature is invalid: {exc}"
            if str(claims.get("iss")) != self.state.app_id:
                return "Integration not found"
            return None
        if not auth.lower().startswith("token "):
            return "Requires authentication"
        known = self.state.tokens.get(auth.split(" ", 1)[1])
        if known is None or known[1] < time.time():
            return "Bad credentials"
        return None


_CONTENTS = re.compile(r"^(/repos/[^/]+/[^/]+/contents/)(.+)$")
# Real operations outside the subset (which lists the App's own calls): the OAuth web flow's token
# exchange on github.com, and GET /user with the signed-in user's token. Checked by hand.
_OUTSIDE_SUBSET = {("POST", "/login/oauth/access_token"), ("GET", "/user")}


def _extra_rules(method: str, path: str, body: Any) -> str | None:
    """Rules GitHub enforces that the OpenAPI schema does not encode."""
    if path.endswith("/check-runs") or "/check-runs/" in path:
        if isinstance(body, dict) and (body.get("status") == "completed" or body.get("completed_at")):
            if not body.get("conclusion"):
                return "conclusion is required when status is completed"
        annotations = (body or {}).get("output", {}).get("annotations") if isinstance(body, dict) else None
        if annotations is not None and len(annotations) > 50:
            return "at most 50 annotations per request"
    if "/comments" in path and isinstance(body, dict) and len(body.get("body") or "") > 65536:
        return "body is too long (maximum is 65536 characters)"
    return None


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def _not_found() -> web.Response:
    return web.json_response({"message": "Not Found"}, status=404)


def _register_routes(fake: FakeGitHub) -> None:
    st = fake.state

    @fake.route("GET", "/app")
    async def get_app(f: FakeGitHub, r: web.Request, p: dict[str, str], b: Any) -> web.Response:
        return _json({"id": int(st.app_id), "slug": st.app_slug, "name": st.app_slug,
                      "node_id": "A_1", "owner": user_json("aigdat", 9, "Organization"),
                      "description": "", "external_url": "https://example.invalid",
                      "html_url": f"https://github.com/apps/{st.app_slug}",
                      "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
                      "permissions": {}, "events": []})

    @fake.route("POST", "/app/installations/{installation_id}/access_tokens")
    async def access_token(f: FakeGitHub, r: web.Request, p: dict[str, str], b: Any) -> web.Response:
        inst = int(p["installation_id"])
        if inst not in st.installations:
            return _not_found()
        token = f.issue_token(inst)
        expires = dt.datetime.fromtimestamp(st.tokens[token][1], dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return _json({"token": token, "expires_at": expires, "permissions": {},
                      "repository_selection": "all"}, 201)

    def org_runners(org: str) -> dict[int, Runner]:
        return st.runners.setdefault(org, {})

    @fake.route("GET", "/orgs/{org}/actions/runners")
    async def list_runners(f: FakeGitHub, r: web.Request, p: dict[str, str], b: Any) -> web.Response:
        runners = sorted(org_runners(p["org"]).values(), key=lambda x: x.id)
        per_page = int(r.query.get("per_page", 30))
        page = int(r.query.get("page", 1))
        chunk = runners[(page - 1) * per_page: page * per_page]
        headers = {}
        if page * per_page < len(runners):
            nxt = f"{f.url}{r.path}?per_page={per_page}&page={page + 1}"
            headers["Link"] = f'<{nxt}>; rel="next"'
        return web.json_response({"total_count": len(runners), "runners": [x.as_json() for x in chunk]},
                                 headers=headers)

    @fake.route("GET", "/orgs/{org}/actions/runners/{runner_id}")
    async def get_runner(f: FakeGitHub, r: web.Request, p: dict[str, str], b: Any) -> web.Response:
        runner = org_runners(p["org"]).get(int(p["runner_id"]))
        return _json(runner.as_json()) if runner else _not_found()

    @fake.route("DELETE", "/orgs/{org}/actions/runners/{runner_id}/labels/{name}")
    async def remove_label(f: FakeGitHub, r: web.Request, p: dict[str, str], b: Any) -> web.Response:
        runner = org_runners(p["org"]).get(int(p["runner_id"]))
        if runner is None or p["name"] not in runner.labels:
            return _not_found()
        runner.labels.remove(p["name"])
        return _json({"total_count": len(runner.labels),
                      "labels": [label_json(i, n) for i, n in enumerate(runner.labels, 1)]})

    @fake.route("POST", "/orgs/{org}/actions/runners/{runner_id}/labels")
    async def add_labels(f: FakeGitHub, r: web.Request, p: dict[str, str], b: Any) -> web.Response:
        runner = org_runners(p["org"]).get(int(p["runner_id"]))
        if runner is None:
            return _not_found()
        for name in b["labels"]:
            if name not in runner.labels:
                runner.labels.append(name)
        return _json({"total_count": len(runner.labels),
                      "labels": [label_json(i, n) for i, n in enumerate(runner.labels, 1)]})

    def repo_issues(owner: str, repo: str) -> dict[int, dict[str, Any]]:
        return st.issues.setdefault(f"{owner}/{repo}", {})

    @fake.route("POST", "/repos/{owner}/{repo}/issues")
    async def create_issue(f: FakeGitHub, r: web.Request, p: dict[str, str], b: Any) -> web.Response:
        issues = repo_issues(p["owner"], p["repo"])
        number = len(issues) + 1
        issues[number] = {"id": next(st.ids), "title": b["title"], "body": b.get("body"),
                          "state": "open", "assignees": list(b.get("assignees") or [])}
        return _json(issue_json(p["owner"], p["repo"], number, issues[number]), 201)

    @fake.route("GET", "/repos/{owner}/{repo}/issues/{issue_number}")
    async def get_issue(f: FakeGitHub, r: web.Request, p: dict[str, str], b: Any) -> web.Response:
        data = repo_issues(p["owner"], p["repo"]).get(int(p["issue_number"]))
        return _json(issue_json(p["owner"], p["repo"], int(p["issue_number"]), data)) if data else _not_found()

    @fake.route("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments")
    async def create_comment(f: FakeGitHub, r: web.Request, p: dict[str, str], b: Any) -> web.Response:
        number = int(p["issue_number"])
        issue = repo_issues(p["owner"], p["repo"]).get(number)
        repo = f"{p['owner']}/{p['repo']}"
        if issue is None and (number in st.pulls.get(repo, {}) or (repo, number) in st.prs):
            issue = {}  # a pull request is an issue for comments
        if issue is None:
            return _not_found()
        cid = next(st.ids)
        st.comments[cid] = {"id": cid, "repo": f"{p['owner']}/{p['repo']}", "issue": number,
                            "body": b["body"], "user": f"{st.app_slug}[bot]"}
        issue["comments"] = issue.get("comments", 0) + 1
        return _json(comment_json(st.comments[cid]), 201)


def issue_json(owner: str, repo: str, number: int, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": data["id"], "node_id": f"I_{data['id']}", "number": number,
            "url": f"{HOST}/repos/{owner}/{repo}/issues/{number}",
            "html_url": f"https://github.com/{owner}/{repo}/issues/{number}",
            "title": data["title"], "body": data.get("body"), "state": data["state"],
            "labels": [], "assignees": [user_json(a) for a in data.get("assignees", [])],
            "user": user_json("nimbys-bot[bot]", 7, "Bot"), "comments": data.get("comments", 0),
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}


def _paginate(f: FakeGitHub, r: web.Request, items: list[Any]) -> web.Response:
    per_page = int(r.query.get("per_page", 30))
    page = int(r.query.get("page", 1))
    chunk = items[(page - 1) * per_page: page * per_page]
    headers = {}
    if page * per_page < len(items):
        headers["Link"] = f'<{f.url}{r.path}?per_page={per_page}&page={page + 1}>; rel="next"'
    return web.json_response(chunk, headers=headers)


def _register_pr_routes(fake: FakeGitHub) -> None:
    st = fake.state

    @fake.route("GET", "/app/hook/deliveries")
    async def hook_deliveries(f: FakeGitHub, r: web.Request, p: dict[str, str], b: Any) -> web.Response:
        wanted = r.query.get("status")
        found = [d for d in st.hook_deliveries
                 if wanted is None or (200 <= d["status_code"] < 300) == (wanted == "success")]
        return _json(found)

    @fake.route("POST", "/app/hook/deliveries/{id}/attempts")
    async def redeliver(f: FakeGitHub, r: web.Request, p: dict[str, str], b: Any) -> web.Response:
        st.redelivered.append(int(p["id"]))
        return _json({}, 202)

    @fake.route("GET", "/orgs/{org}/installation")
    async def org_installation(f: FakeGitHub, r: web.Request, p: dict[str, str], b: Any) -> web.Response:
        for inst, org in st.installations.items():
            if org == p["org"]:
                return _json({"id": inst, "account": user_json(org, 9, "Organization"), "access_tokens_url": "",
                              "repositories_url": "", "html_url": "", "app_id": int(st.app_id), "target_id": 9,
                              "target_type": "Organization", "permissions": {}, "events": [],
                              "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
                              "single_file_name": None, "app_slug": st.app_slug, "repository_selection": "all"})
        return _not_found()

    @fake.route("GET", "/orgs/{org}/members/{username}")
    async def is_member(f: FakeGitHub, r: web.Request, p: dict[str, str], b: Any) -> web.Response:
        requester = st.user_tokens.get(r.headers.get("Authorization", "").removeprefix("token "))
        if requester is not None and requester not in st.members.get(p["org"], {}):
            # GitHub: a requester who is not a member is sent to the public members list
            return web.Response(status=302, headers={"Location": f"{f.url}/orgs/{p['org']}/public_members/x"})
        known = p["username"] in st.members.get(p["org"], {})
        return web.Response(status=204) if known else _not_found()

    @fake.route("GET", "/orgs/{org}/memberships/{username}")
    async def membership(f: FakeGitHub, r: web.Request, p: dict[str, str], b: Any) -> web.Response:
        role = st.members.get(p["org"], {}).get(p["username"])
        if role is None:
            return _not_found()
        return _json({"url": "", "state": "active", "role": role, "organization_url": "",
                      "organization": {"login": p["org"], "id": 9, "node_id": "O_9", "url": "", "repos_url": "",
                                       "events_url": "", "hooks_url": "", "issues_url": "", "members_url": "",
                                       "public_members_url": "", "avatar_url": "", "description": None},
                      "user": user_json(p["username"])})

    @fake.route("GET", "/repos/{owner}/{repo}/collaborators/{username}/permission")
    async def permission(f: FakeGitHub, r: web.Request, p: dict[str, str], b: Any) -> web.Response:
        role = st.permissions.get((f"{p['owner']}/{p['repo']}", p["username"]))
        if role is None:
            return _not_found()
        legacy = {"maintain": "write", "triage": "read"}.get(role, role)
        return _json({"permission": legacy, "role_name": role, "user": user_json(p["username"])})

    @fake.route("POST", "/repos/{owner}/{repo}/issues/comments/{id}/reactions")
    async def react(f: FakeGitHub, r: web.Request, p: dict[str, str], b: Any) -> web.Response:
        st.reactions.append((int(p["id"]), b["content"]))
        return _json({"id": next(st.ids), "node_id": "R_1", "user": user_json("nimbys-bot[bot]", 7, "Bot"),
                      "content": b["content"], "created_at": "2026-01-01T00:00:00Z"}, 201)

    @fake.route("GET", "/repos/{owner}/{repo}/pulls/{number}")
    async def get_pr(f: FakeGitHub, r: web.Request, p: dict[str, str], b: Any) -> web.Response:
        repo = f"{p['owner']}/{p['repo']}"
        pr = st.prs.get((repo, int(p["number"])))
        if pr is None:
            return _not_found()
        return _json({"number": int(p["number"]), "state": "open", "user": user_json(pr["author"]),
                      "head": {"sha": pr["head"], "ref": "feature", "repo": {"full_name": repo}},
                      "base": {"sha": pr.get("base", "b0"), "ref": "main", "repo": {"full_name": repo}}})

    @fake.route("GET", "/repos/{owner}/{repo}/actions/runs")
    async def list_runs(f: FakeGitHub, r: web.Request, p: dict[str, str], b: Any) -> web.Response:
        runs = [{k: v for k, v in run.items() if k != "jobs"} for run in st.runs.get(f"{p['owner']}/{p['repo']}", [])
                if run["head_sha"] == r.query.get("head_sha", run["head_sha"])]
        return _json({"total_count": len(runs), "workflow_runs": runs})

    @fake.route("GET", "/repos/{owner}/{repo}/actions/runs/{run_id}/attempts/{attempt}/jobs")
    async def run_jobs(f: FakeGitHub, r: web.Request, p: dict[str, str], b: Any) -> web.Response:
        for run in st.runs.get(f"{p['owner']}/{p['repo']}", []):
            if run["id"] == int(p["run_id"]):
                return _json({"total_count": len(run["jobs"]), "jobs": run["jobs"]})
        return _not_found()

    @fake.route("POST", "/repos/{owner}/{repo}/actions/runs/{run_id}/rerun-failed-jobs")
    async def rerun_failed(f: FakeGitHub, r: web.Request, p: dict[str, str], b: Any) -> web.Response:
        st.reran_runs.append(int(p["run_id"]))
        return _json({}, 201)

    @fake.route("GET", "/repos/{owner}/{repo}/check-runs/{id}/annotations")
    async def annotations(f: FakeGitHub, r: web.Request, p: dict[str, str], b: Any) -> web.Response:
        notes = st.annotations.get(int(p["id"]), [])
        return _paginate(f, r, [{"path": ".github", "blob_href": "", "start_line": 1, "end_line": 1,
                                 "start_column": None, "end_column": None, "annotation_level": "failure",
                                 "title": "", "message": m, "raw_details": None} for m in notes])

    @fake.route("POST", "/repos/{owner}/{repo}/actions/jobs/{job_id}/rerun")
    async def rerun_job(f: FakeGitHub, r: web.Request, p: dict[str, str], b: Any) -> web.Response:
        st.reruns.append(int(p["job_id"]))
        return _json({}, 201)

    @fake.route("GET", "/repos/{owner}/{repo}/issues")
    async def list_issues(f: FakeGitHub, r: web.Request, p: dict[str, str], b: Any) -> web.Response:
        owner, repo = p["owner"], p["repo"]
        wanted = r.query.get("state", "open")
        found = [issue_json(owner, repo, n, d) for n, d in sorted(st.issues.get(f"{owner}/{repo}", {}).items())
                 if wanted == "all" or d["state"] == wanted]
        return _paginate(f, r, found)

    @fake.route("PATCH", "/repos/{owner}/{repo}/issues/{number}")
    async def update_issue(f: FakeGitHub, r: web.Request, p: dict[str, str], b: Any) -> web.Response:
        issue = st.issues.get(f"{p['owner']}/{p['repo']}", {}).get(int(p["number"]))
        if issue is None:
            return _not_found()
        issue.update({k: v for k, v in b.items() if k in {"state", "title", "body"}})
        return _json(issue_json(p["owner"], p["repo"], int(p["number"]), issue))

    @fake.route("GET", "/users/{username}")
    async def get_user(f: FakeGitHub, r: web.Request, p: dict[str, str], b: Any) -> web.Response:
        if p["username"] not in st.users:
            return _not_found()
        return _json({**user_json(p["username"], 5), "name": None, "company": None, "blog": None,
                      "location": None, "email": None, "hireable": None, "bio": None, "public_repos": 0,
                      "public_gists": 0, "followers": 0, "following": 0, "created_at": "2020-01-01T00:00:00Z",
                      "updated_at": "2020-01-01T00:00:00Z"})

    @fake.route("GET", "/repos/{owner}/{repo}/pulls/{number}/files")
    async def pr_files(f: FakeGitHub, r: web.Request, p: dict[str, str], b: Any) -> web.Response:
        files = st.pulls.get(f"{p['owner']}/{p['repo']}", {}).get(int(p["number"]))
        return _not_found() if files is None else _paginate(f, r, files)

    @fake.route("GET", "/repos/{owner}/{repo}/contents/{path*}")
    async def contents(f: FakeGitHub, r: web.Request, p: dict[str, str], b: Any) -> web.Response:
        repo = f"{p['owner']}/{p['repo']}"
        data = st.contents.get((repo, r.query.get("ref", "main")), {}).get(p["path"])
        if data is None:
            return _not_found()
        name = p["path"].rsplit("/", 1)[-1]
        big = len(data) > 1024 * 1024
        return _json({"type": "file", "encoding": "none" if big else "base64", "size": len(data), "name": name,
                      "path": p["path"], "content": "" if big else base64.b64encode(data).decode(),
                      "sha": "1" * 40, "url": "", "git_url": None, "html_url": None, "download_url": None,
                      "_links": {"self": "", "git": None, "html": None}})

    @fake.route("POST", "/repos/{owner}/{repo}/check-runs")
    async def create_check(f: FakeGitHub, r: web.Request, p: dict[str, str], b: Any) -> web.Response:
        cid = next(st.ids)
        run = {"id": cid, "repo": f"{p['owner']}/{p['repo']}", "name": b["name"], "head_sha": b["head_sha"],
               "status": b.get("status", "queued"), "conclusion": b.get("conclusion"),
               "output": dict(b.get("output") or {}), "annotations": list((b.get("output") or {})
                                                                          .get("annotations") or []),
               "updates": 0}
        st.check_runs[cid] = run
        return _json(_check_json(run), 201)

    @fake.route("PATCH", "/repos/{owner}/{repo}/check-runs/{id}")
    async def update_check(f: FakeGitHub, r: web.Request, p: dict[str, str], b: Any) -> web.Response:
        run = st.check_runs.get(int(p["id"]))
        if run is None:
            return _not_found()
        run["updates"] += 1
        for key in ("status", "conclusion", "name"):
            if key in b:
                run[key] = b[key]
        if "output" in b:
            run["annotations"] += list(b["output"].get("annotations") or [])
            run["output"] = {k: v for k, v in b["output"].items() if k != "annotations"}
        return _json(_check_json(run))

    @fake.route("GET", "/repos/{owner}/{repo}/issues/{number}/comments")
    async def list_comments(f: FakeGitHub, r: web.Request, p: dict[str, str], b: Any) -> web.Response:
        found = f.state.comments_on(f"{p['owner']}/{p['repo']}", int(p["number"]))
        return _paginate(f, r, [comment_json(c) for c in found])

    @fake.route("PATCH", "/repos/{owner}/{repo}/issues/comments/{id}")
    async def edit_comment(f: FakeGitHub, r: web.Request, p: dict[str, str], b: Any) -> web.Response:
        comment = st.comments.get(int(p["id"]))
        if comment is None:
            return _not_found()
        comment["body"] = b["body"]
        comment["edits"] = comment.get("edits", 0) + 1
        return _json(comment_json(comment))


def _check_json(run: dict[str, Any]) -> dict[str, Any]:
    return {"id": run["id"], "head_sha": run["head_sha"], "node_id": f"CR_{run['id']}", "external_id": "",
            "url": f"{HOST}/repos/{run['repo']}/check-runs/{run['id']}",
            "html_url": f"https://github.com/{run['repo']}/runs/{run['id']}", "details_url": None,
            "status": run["status"], "conclusion": run["conclusion"], "started_at": None, "completed_at": None,
            "output": {"title": run["output"].get("title"), "summary": run["output"].get("summary"), "text": None,
                       "annotations_count": len(run["annotations"]), "annotations_url": ""},
            "name": run["name"], "check_suite": None, "app": None, "pull_requests": []}


def comment_json(c: dict[str, Any]) -> dict[str, Any]:
    owner_repo = c["repo"]
    return {"id": c["id"], "node_id": f"C_{c['id']}", "body": c["body"],
            "url": f"{HOST}/repos/{owner_repo}/issues/comments/{c['id']}",
            "html_url": f"https://github.com/{owner_repo}/issues/{c['issue']}#issuecomment-{c['id']}",
            "issue_url": f"{HOST}/repos/{owner_repo}/issues/{c['issue']}",
            "user": user_json(c["user"], 7, "Bot" if c["user"].endswith("[bot]") else "User"),
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
            "author_association": "NONE"}
