"""HMAC-SHA256 signed URLs for the local storage backend, S3-presign style: the signature
covers method, key, expiry and, for PUT, size and md5. Verification is constant time.
Never logs a signature."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from urllib.parse import quote, urlencode

from ..errors import ApiError

STORAGE_ROOT = "/storage/"


class Signer:
    """Signs and checks storage URLs with one key. Thread-safe (stateless)."""

    def __init__(self, key: bytes, base_url: str, ttl_s: int) -> None:
        self._key = key
        self._base_url = base_url.rstrip("/")
        self._ttl_s = ttl_s

    def url(
        self,
        method: str,
        key: str,
        size: int | None = None,
        md5: str | None = None,
        expires: int | None = None,
    ) -> str:
        """A URL for `method` on `key`, valid for ttl_s (or until `expires`, epoch s)."""
        expires = int(time.time()) + self._ttl_s if expires is None else expires
        query = {"expires": str(expires)}
        if method == "PUT":
            query |= {"size": str(size), "md5": str(md5)}
        query["signature"] = self._sign(method, key, query)
        return f"{self._base_url}{STORAGE_ROOT}{quote(key, safe='/')}?{urlencode(query)}"

    def verify(self, method: str, key: str, query: Mapping[str, str]) -> None:
        """Raises ApiError 403 unless `query` carries a valid, unexpired signature."""
        fields = {name: query.get(name, "") for name in _signed_fields(method)}
        expected = self._sign(method, key, fields)
        if not hmac.compare_digest(expected.encode(), query.get("signature", "").encode()):
            raise ApiError(403, "invalid signature: the URL was altered or is not ours")
        if not fields["expires"].isdigit() or int(fields["expires"]) < time.time():
            raise ApiError(403, "signed URL expired: request a new link")

    def _sign(self, method: str, key: str, query: Mapping[str, str]) -> str:
        # Newline-separated: neither a method, a number nor an md5 can contain one, and keys
        # are checked by names.py to be free of control characters.
        parts = [method, key] + [query[name] for name in _signed_fields(method)]
        return hmac.new(self._key, "\n".join(parts).encode(), hashlib.sha256).hexdigest()


def _signed_fields(method: str) -> tuple[str, ...]:
    return ("expires", "size", "md5") if method == "PUT" else ("expires",)
