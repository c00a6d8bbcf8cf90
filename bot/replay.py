"""Send recorded deliveries to a running receiver, signed as GitHub signs them.

For demos, manual redelivery and tests. Inputs:

* payload files named ``EVENT.ACTION.N.json`` (the event is the first dotted
  part; the file's bytes are sent unchanged, so the signature covers them);
* JSON lines of ``{"event": ..., "delivery": ..., "payload": {...}}``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Recorded:
    event: str
    delivery: str
    body: bytes
    source: str


class ReplayError(ValueError):
    pass


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def load(paths: Iterable[Path]) -> Iterator[Recorded]:
    for path in paths:
        if path.suffix in {".jsonl", ".ndjson"}:
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                    event, payload = item["event"], item["payload"]
                except (ValueError, KeyError, TypeError) as exc:
                    raise ReplayError(f"{path}:{n}: expected {{event, delivery, payload}}: {exc}") from None
                body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
                yield Recorded(event, str(item.get("delivery") or uuid.uuid4()), body, f"{path}:{n}")
        else:
            event = path.name.split(".")[0]
            if not event or path.suffix != ".json":
                raise ReplayError(f"{path}: expected EVENT.ACTION.N.json or a .jsonl file")
            yield Recorded(event, str(uuid.uuid4()), path.read_bytes(), str(path))


def send(url: str, secret: str, item: Recorded, timeout: float = 10.0) -> tuple[int, str]:
    """POST one delivery; returns (status, first line of the answer)."""
    if not url.startswith(("http://", "https://")):
        raise ReplayError(f"{url}: the receiver URL must be http:// or https://")
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        url,
        data=item.body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/nimbys-replay",
            "X-GitHub-Event": item.event,
            "X-GitHub-Delivery": item.delivery,
            "X-Hub-Signature-256": sign(item.body, secret),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 (scheme checked above)
            return answer.status, answer.read().decode(errors="replace").strip().splitlines()[0]
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace").strip()
        return exc.code, text.splitlines()[0] if text else exc.reason
