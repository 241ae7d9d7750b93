"""What the server remembers of the upload links it signed: storage key -> the MD5 and size
each link was asked for, until the link can no longer be used. Kept in memory here, behind
`SignedUploads` so that it can move into state shared by replicas. Never holds a URL."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SignedUpload:
    """Content a key may hold: what a link was signed for, or what was there before."""

    md5: str
    size: int
    until: float  # time.time() after which the record may be forgotten


class SignedUploads(Protocol):
    """Records of signed upload links by storage key. Implementations are thread-safe."""

    def add(self, key: str, upload: SignedUpload) -> None:
        """Remembers `upload` for `key`; the same content again only extends its `until`."""
        ...

    def get(self, key: str) -> tuple[SignedUpload, ...]:
        """The records of `key`, expired ones included until `forget_expired` drops them."""
        ...

    def pending_keys(self) -> list[str]:
        """Every key that has records."""
        ...

    def forget_expired(self, key: str, now: float) -> None:
        """Drops the records of `key` whose `until` has passed."""
        ...


class MemorySignedUploads:
    """SignedUploads in a dict. Thread-safe: one lock guards the dict.

    Bounded by the links signed in the last record lifetime, one record per distinct
    (key, md5, size); a server restart forgets them all (see docs/RELIABILITY.md)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, dict[tuple[str, int], float]] = {}

    def add(self, key: str, upload: SignedUpload) -> None:
        with self._lock:
            known = self._records.setdefault(key, {})
            content = (upload.md5, upload.size)
            known[content] = max(known.get(content, 0.0), upload.until)

    def get(self, key: str) -> tuple[SignedUpload, ...]:
        with self._lock:
            known = dict(self._records.get(key, {}))
        return tuple(SignedUpload(md5, size, until) for (md5, size), until in known.items())

    def pending_keys(self) -> list[str]:
        with self._lock:
            return list(self._records)

    def forget_expired(self, key: str, now: float) -> None:
        with self._lock:
            known = self._records.get(key, {})
            for content in [c for c, until in known.items() if until <= now]:
                del known[content]
            if not known:
                self._records.pop(key, None)
