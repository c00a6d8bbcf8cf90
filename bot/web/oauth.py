"""Sign in with GitHub, for members of the org only (the App's OAuth client id and secret).

The web flow: /auth/login sends the browser to GitHub with a random `state`
kept in the signed session; /auth/callback checks it, exchanges the code for
the user's token, asks who the user is and whether they are a member of the
org (``GET /orgs/{org}/members/{user}`` with the user's own token: 204 for a
member), and keeps only the login in the session; the token is not kept.
Probot's names for the settings: ``GITHUB_CLIENT_ID``, ``GITHUB_CLIENT_SECRET``.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from flask import Flask, Response, redirect, request, session

from bot.settings import Settings

SESSION_HOURS = 12


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 302 from the membership check means "not a member": do not follow it


def _call(url: str, *, token: str | None = None, data: dict[str, str] | None = None) -> tuple[int, Any]:
    if not url.startswith(("http://", "https://")):
        raise ValueError("bad URL")
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, method="POST" if body else "GET")  # noqa: S310 (checked above)
    req.add_header("Accept", "application/json")
    req.add_header("User-Agent", "nimbys-bot")
    if token:
        req.add_header("Authorization", f"token {token}")
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=10) as answer:
            raw = answer.read()
            return answer.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, None


def signed_in(settings: Settings) -> bool:
    return bool(session.get("login")) and session.get("org") == settings.org \
        and float(session.get("until", 0)) > time.time()


def register(app: Flask, settings: Settings) -> None:
    if not (settings.oauth_client_id and settings.oauth_client_secret):
        return

    @app.get("/auth/login")
    def oauth_login() -> Response:
        session["state"] = secrets.token_urlsafe(24)
        query = urllib.parse.urlencode({"client_id": settings.oauth_client_id, "state": session["state"],
                                        "redirect_uri": request.url_root.rstrip("/") + "/auth/callback"})
        return redirect(f"{settings.github_url}/login/oauth/authorize?{query}")

    @app.get("/auth/callback")
    def oauth_callback() -> Response:
        expected = session.pop("state", None)
        if not expected or request.args.get("state") != expected or not request.args.get("code"):
            return Response("sign-in failed: the state does not match; start again at /auth/login\n", status=400,
                            mimetype="text/plain")
        status, token = _call(f"{settings.github_url}/login/oauth/access_token",
                              data={"client_id": str(settings.oauth_client_id),
                                    "client_secret": str(settings.oauth_client_secret),
                                    "code": request.args["code"]})
        access = (token or {}).get("access_token") if status == 200 else None
        if not access:
            return Response("sign-in failed: GitHub did not grant a token\n", status=403, mimetype="text/plain")
        status, user = _call(f"{settings.github_api_url}/user", token=access)
        login_name = (user or {}).get("login") if status == 200 else None
        if not login_name:
            return Response("sign-in failed: GitHub did not say who you are\n", status=403, mimetype="text/plain")
        member, _ = _call(f"{settings.github_api_url}/orgs/{settings.org}/members/{login_name}", token=access)
        if member != 204:
            return Response(f"{login_name} is not a member of {settings.org}: the pool page is for its members\n",
                            status=403, mimetype="text/plain")
        session.clear()
        session.update(login=login_name, org=settings.org, until=time.time() + SESSION_HOURS * 3600)
        return redirect("/")
