"""Structured logs that carry the delivery and never carry a secret.

Every line written while a delivery is handled carries its delivery id, event
and installation id (kept in context variables, so handlers need not pass
them). Lines are JSON in production and readable in a terminal. Redaction
happens on the final formatted line, so a secret cannot slip through an
``extra`` field, an exception message or a traceback either.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

delivery_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("delivery", default=None)
event_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("event", default=None)
installation_var: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "installation", default=None
)

REDACTED = "[REDACTED]"

# Shapes of credentials, whatever their value: GitHub tokens (classic and the
# stateless ghs_APPID_JWT format), JWTs, PEM private keys, authorization headers.
_PATTERNS = [
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9_]{16,}"),
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    re.compile(r"(?i)\b(authorization|bearer|token)(\s*[:=]?\s*)(token |bearer )?[A-Za-z0-9_.\-]{20,}"),
]

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_secrets_re: re.Pattern[str] | None = None

_STANDARD_ATTRS = set(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {
    "message",
    "asctime",
    "delivery",
    "event",
    "installation",
}


def register_secret(value: str | None) -> None:
    """Remember a secret value (webhook secret, token, key) so no log line shows it."""
    global _secrets_re
    if not value or len(value) < 6:
        return
    with _secrets_lock:
        pieces = {value} | {line.strip() for line in value.splitlines() if len(line.strip()) >= 16}
        if pieces <= _secrets:
            return
        _secrets.update(pieces)
        ordered = sorted(_secrets, key=len, reverse=True)
        _secrets_re = re.compile("|".join(re.escape(s) for s in ordered))


def redact(text: str) -> str:
    """Remove known secret values and anything shaped like a credential."""
    pattern = _secrets_re
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    for shape in _PATTERNS:
        if shape.groups >= 2:
            text = shape.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
        else:
            text = shape.sub(REDACTED, text)
    return text


_base_factory = logging.getLogRecordFactory()


def _record_with_context(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """Stamp every record, whatever handler gets it, with the delivery being handled."""
    record = _base_factory(*args, **kwargs)
    record.delivery = delivery_var.get()
    record.event = event_var.get()
    record.installation = installation_var.get()
    return record


if getattr(_base_factory, "__name__", "") != "_record_with_context":
    logging.setLogRecordFactory(_record_with_context)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("delivery", "event", "installation"):
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        line.update(_extras(record))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(line, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    """Readable in a terminal: time, level, context, message, then key=value extras."""

    def format(self, record: logging.LogRecord) -> str:
        ctx = [
            f"{key}={getattr(record, key)}"
            for key in ("delivery", "event", "installation")
            if getattr(record, key, None) is not None
        ]
        extras = [f"{k}={v}" for k, v in _extras(record).items()]
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        text = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if ctx or extras:
            text += "  [" + " ".join(ctx + extras) + "]"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return redact(text)


def setup_logging(level: str = "INFO", fmt: str = "auto", stream: Any = None) -> None:
    """Configure the root logger once per process (web, worker or CLI)."""
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "text" if getattr(stream, "isatty", lambda: False)() else "json"
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("aiohttp.access", "werkzeug", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextlib.contextmanager
def delivery_context(delivery: str | None, event: str | None, installation: int | None) -> Iterator[None]:
    """Attach a delivery to every log line written inside the block."""
    tokens = (
        delivery_var.set(delivery),
        event_var.set(event),
        installation_var.set(installation),
    )
    try:
        yield
    finally:
        delivery_var.reset(tokens[0])
        event_var.reset(tokens[1])
        installation_var.reset(tokens[2])
