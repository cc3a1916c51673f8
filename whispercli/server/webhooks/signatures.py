"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

Every delivery carries ``webhook-id`` (the same on every retry of one delivery),
``webhook-timestamp`` (seconds since the epoch, of this attempt) and
``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``. The key is the base64
part of the server secret ``whsec_<base64>``, kept 0600 in the config dir and created on first
need; ``whispercli server webhook-secret`` prints it for receivers to verify with.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from pathlib import Path

import whispercli.paths as paths
from whispercli.fsutil import is_private, read_or_create_secret

PREFIX = "whsec_"
_KEY_BYTES = 32


class WebhookSecretError(RuntimeError):
    """The secret file is readable by others or does not hold a ``whsec_`` secret."""


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(_KEY_BYTES)).decode("ascii")


def secret_file() -> Path:
    return paths.config_dir() / "webhook-secret"


def load_secret(path: Path | None = None) -> str:
    """The secret in ``path`` (default: the config dir's), created 0600 on first need."""
    path = path or secret_file()
    secret = read_or_create_secret(path, make=new_secret)
    if not is_private(path):
        raise WebhookSecretError(f"{path} is readable by other users; run `chmod 600 {path}`")
    if not secret.startswith(PREFIX):
        raise WebhookSecretError(
            f"{path} does not hold a {PREFIX}... secret; delete it to have a new one made"
        )
    return secret


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(16)


class WebhookSigner:
    def __init__(self, secret: str) -> None:
        if not secret.startswith(PREFIX):
            raise WebhookSecretError(f"a webhook secret starts with {PREFIX}")
        self._key = base64.b64decode(secret[len(PREFIX) :])

    def signature(self, message_id: str, timestamp: int, body: bytes) -> str:
        signed = f"{message_id}.{timestamp}.".encode() + body
        digest = hmac.new(self._key, signed, hashlib.sha256).digest()
        return "v1," + base64.b64encode(digest).decode("ascii")

    def headers(self, message_id: str, body: bytes, *, now: float | None = None) -> dict[str, str]:
        """The three ``webhook-*`` headers for one attempt (its own timestamp)."""
        timestamp = int(time.time() if now is None else now)
        return {
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": self.signature(message_id, timestamp, body),
        }
