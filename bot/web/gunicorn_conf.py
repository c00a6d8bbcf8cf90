"""gunicorn settings from the environment (``gunicorn -c python:bot.web.gunicorn_conf``).

Threads rather than async workers: the request path is short, CPU-bound
(HMAC, JSON) plus one Redis round trip, so a few processes with a few threads
each keep both cores busy without an event loop's overhead.
"""

import os

bind = f"{os.environ.get('NIMBYS_BIND', '0.0.0.0')}:{os.environ.get('PORT', '3000')}"
workers = int(os.environ.get("NIMBYS_WEB_WORKERS", "3"))
threads = int(os.environ.get("NIMBYS_WEB_THREADS", "4"))
worker_class = "gthread"
preload_app = True  # a missing secret stops the master once, with one clear message
accesslog = None
keepalive = 5
graceful_timeout = 10
# gunicorn's control socket lives under $HOME by default, which is read-only under the
# systemd units and shared between instances on one machine; the bot does not use it.
control_socket_disable = True
