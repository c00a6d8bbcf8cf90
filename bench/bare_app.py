"""The framework's ceiling for bench/intake.py: same gunicorn setup and Flask, no verify, no queue."""

from flask import Flask, Response

app = Flask("bare")


@app.post("/webhook")
def webhook() -> Response:
    return Response('{"status":"queued"}', status=202, mimetype="application/json")


@app.get("/healthz")
def healthz() -> Response:
    return Response("ok")
