"""HMAC-SHA256 signed URLs with an expiry: the upload URL is the upload's only credential.

The signature covers the method, the path and the expiry time, so a URL cannot be reused for
another upload, another job or a later time. Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlencode


class SignatureError(Exception):
    """A signed URL that is missing its signature, tampered with or expired."""


class Signer:
    def __init__(self, secret: str) -> None:
        self._key = secret.encode("utf-8")

    def _digest(self, method: str, path: str, expires: int) -> str:
        message = f"{method.upper()}\n{path}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def sign(self, method: str, path: str, ttl: float, *, now: float | None = None) -> str:
        """Return ``path?expires=...&sig=...`` valid for ``ttl`` seconds."""
        expires = int((time.time() if now is None else now) + ttl)
        query = urlencode({"expires": expires, "sig": self._digest(method, path, expires)})
        return f"{path}?{query}"

    def verify(
        self,
        method: str,
        path: str,
        expires: str | None,
        sig: str | None,
        *,
        check_expiry: bool = True,
    ) -> None:
        """Raise :class:`SignatureError` unless ``sig`` signs ``method path expires``."""
        if not expires or not sig:
            raise SignatureError("the URL is not signed (expires and sig are required)")
        try:
            expires_at = int(expires)
        except ValueError:
            raise SignatureError("the URL's signature is invalid") from None
        # Compare bytes: compare_digest refuses non-ASCII str, and a hostile sig may be any text.
        expected = self._digest(method, path, expires_at).encode()
        if not hmac.compare_digest(expected, sig.encode("utf-8", "surrogateescape")):
            raise SignatureError("the URL's signature is invalid (was the URL altered?)")
        if check_expiry and time.time() > expires_at:
            raise SignatureError("the URL has expired; ask for a new one")
