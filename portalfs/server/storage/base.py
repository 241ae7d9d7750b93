"""The storage interface every backend implements, and `storage_key`, the only function
that turns a portal path into a storage key. Knows nothing about HTTP or credentials."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class StorageError(Exception):
    """A storage failure the API reports to the caller; subclasses name the condition."""


class NotFound(StorageError):
    pass


class Conflict(StorageError):
    """A file where a folder is needed, or the other way round."""


class InvalidContinuationToken(StorageError):
    pass


class InvalidKey(StorageError):
    """A key that would leave the backend's namespace (a bug or a forged request)."""


# Tags our continuation tokens, so garbage is told apart from a position.
_TOKEN_TAG = "portalfs-list-1\n"


@dataclass(frozen=True)
class ObjectStat:
    size: int
    # Unquoted; the md5 hex for single-part uploads. None: not known yet (a file placed in
    # the local backend by other means, until its md5 is computed in the background).
    etag: str | None
    mtime: datetime  # timezone-aware, UTC


@dataclass(frozen=True)
class Entry:
    """One listing entry; `key` is the full storage key, ending in "/" for a folder."""

    key: str
    stat: ObjectStat | None  # None for folders

    @property
    def is_folder(self) -> bool:
        return self.key.endswith("/")


class Storage(Protocol):
    """Objects addressed by full storage keys. Implementations are thread-safe."""

    provider: str  # the API's storageProvider: "s3" or "other"
    bucket_name: str

    def list_page(
        self, prefix: str, token: str | None, page_size: int, only_folders: bool
    ) -> tuple[list[Entry], str | None]:
        """One folder level under `prefix` (ends in "/"), in S3 key order, folders and
        files interleaved; returns (entries, next token or None). Raises
        InvalidContinuationToken."""
        ...

    def stat(self, key: str) -> ObjectStat | None:
        """The object's size, ETag and mtime; None when there is no *file* at `key`."""
        ...

    def upload_url(self, key: str, size: int, md5: str) -> str:
        """A pre-signed PUT URL for `key`; the client sends no extra headers."""
        ...

    def download_url(self, key: str) -> str:
        """A pre-signed GET URL for `key` that honours Range."""
        ...

    def delete(self, key: str) -> None:
        """Removes the file at `key`; raises NotFound."""
        ...

    def rename(self, old: str, new: str) -> None:
        """Moves the file at `old` to `new`, replacing any file there; raises NotFound."""
        ...


def storage_key(portal_prefix: str, portal_path: str) -> str:
    """The storage key of `portal_path` ("a/b.jpg" or folder "a/") inside a portal.

    Every key the API touches is built here, so a request can only reach its own portal.
    `portal_path` must already be validated by names.py; this re-checks the invariant."""
    segments = portal_path.removesuffix("/").split("/") if portal_path else []
    if portal_path.startswith("/") or any(s in ("", ".", "..") for s in segments):
        raise ValueError("unvalidated portal path reached storage_key")
    return portal_prefix + portal_path


def wrap_token(prefix: str, position: str) -> str:
    """An opaque continuation token for a backend's `position` in the listing of `prefix`."""
    return base64.urlsafe_b64encode(f"{_TOKEN_TAG}{prefix}\n{position}".encode()).decode()


def unwrap_token(prefix: str, token: str) -> str:
    """The position in `token`; raises InvalidContinuationToken for a token that this
    server did not issue or that belongs to another listing."""
    try:
        text = base64.b64decode(token, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidContinuationToken("continuationToken is not one this server issued") from exc
    tag, _, rest = text.partition("\n")
    token_prefix, newline, position = rest.partition("\n")
    if f"{tag}\n" != _TOKEN_TAG or not newline:
        raise InvalidContinuationToken("continuationToken is not one this server issued")
    if token_prefix != prefix:
        raise InvalidContinuationToken("continuationToken belongs to another folder's listing")
    return position
