"""Spool: a private local file holding one open file's new content, its size and an MD5
kept up to date while the writes are sequential.

Not thread-safe: the file handle that owns it serialises access. Never talks to the network.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from .digest import RunningMD5


def clear_leftovers(directory: Path) -> int:
    """Delete the spools a mount that died left in `directory` (call before any Spool is
    made there); returns how many. They hold bytes no close() finished: whatever a close()
    kept is in the journal, under a link of its own that this leaves alone."""
    removed = 0
    for leftover in directory.glob("spool-*"):
        leftover.unlink(missing_ok=True)
        removed += 1
    return removed


class Spool:
    """Random-access bytes in a 0600 temp file, with a running MD5 for sequential writers."""

    def __init__(self, directory: Path) -> None:
        fd, name = tempfile.mkstemp(dir=directory, prefix="spool-")
        self.fd = fd
        self.path = Path(name)
        self.size = 0
        self._digest = RunningMD5()
        # Bytes [0, _hashed) are in _digest; None once a write broke the sequence.
        self._hashed: int | None = 0

    def write(self, offset: int, data: bytes) -> int:
        written = os.pwrite(self.fd, data, offset)
        if self._hashed == offset:
            self._digest.update(data if written == len(data) else data[:written])
            self._hashed += written
        elif self._hashed is not None:
            self._hashed = None  # an overwrite or a hole: rehash when the MD5 is asked for
            self._digest.abandon()
        if written:  # a write of nothing past the end makes no hole (POSIX)
            self.size = max(self.size, offset + written)
        return written

    def read(self, offset: int, size: int) -> bytes:
        return os.pread(self.fd, size, offset)

    def truncate(self, length: int) -> None:
        os.ftruncate(self.fd, length)
        if length == 0:
            self._digest.abandon()
            self._digest, self._hashed = RunningMD5(), 0
        elif self._hashed is not None and length != self._hashed:
            self._hashed = None
            self._digest.abandon()
        self.size = length

    def md5(self) -> str:
        """MD5 hex of the current content; re-reads the file only after out-of-order writes."""
        if self._hashed != self.size:
            self._rehash()
        return self._digest.hexdigest()

    def _rehash(self) -> None:
        self._digest.abandon()
        with open(self.fd, "rb", closefd=False) as f:
            f.seek(0)
            self._digest = RunningMD5(hashlib.file_digest(f, "md5"))
            self._hashed = f.tell()

    def close(self) -> None:
        """Close and delete the spool file."""
        self._digest.abandon()
        os.close(self.fd)
        self.path.unlink(missing_ok=True)
