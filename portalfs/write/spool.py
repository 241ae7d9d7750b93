"""Spool: a private local file holding one open file's new content, its size and an MD5
kept up to date while the writes are sequential; SpoolFolder: where spools are made and
their files used again.

A Spool is not thread-safe: the file handle that owns it serialises access. Never talks to
the network.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from .digest import RunningMD5


class SpoolFolder:
    """The folder spools live in. Makes them, and keeps up to `keep` emptied ones to use
    again: creating a file on a busy ext4 costs 0.3-0.5 ms (docs/PERFORMANCE.md), more than
    the rest of a small file's way through the mount besides its two requests. Thread-safe
    (a lock guards the emptied ones)."""

    def __init__(self, directory: Path, keep: int = 16) -> None:
        self.directory = directory
        self.keep = keep
        self._lock = threading.Lock()
        self._free: list[tuple[int, Path]] = []

    def clear_leftovers(self) -> int:
        """Delete the spools a mount that died left here (call before any spool is made);
        returns how many. They hold bytes no close() finished: whatever a close() kept is
        in the journal, under a link of its own that this leaves alone."""
        removed = 0
        for leftover in self.directory.glob("spool-*"):
            leftover.unlink(missing_ok=True)
            removed += 1
        return removed

    def new(self) -> Spool:
        with self._lock:
            free = self._free.pop() if self._free else None
        if free is None:
            fd, name = tempfile.mkstemp(dir=self.directory, prefix="spool-")
            free = fd, Path(name)
        return Spool(*free, done=self._give_back)

    def _give_back(self, fd: int, path: Path) -> bool:
        """Keep a closed spool's file to use again, emptied; False: the caller deletes it.
        Never one whose bytes the journal holds (linked into it, or moved there): those
        must stay as they are."""
        with self._lock:
            if len(self._free) >= self.keep:
                return False
        try:
            st = os.fstat(fd)
            if st.st_nlink != 1 or not os.path.samestat(st, os.stat(path)):
                return False
            # A record xattr the journal set while it shared this inode stays; harmless:
            # spools are never read as journal entries, and a new record replaces it.
            os.ftruncate(fd, 0)
        except OSError:
            return False
        with self._lock:
            self._free.append((fd, path))
        return True

    def close(self) -> None:
        """Delete the emptied spools kept for later (at unmount)."""
        with self._lock:
            free, self._free = self._free, []
        for fd, path in free:
            os.close(fd)
            path.unlink(missing_ok=True)


class Spool:
    """Random-access bytes in a 0600 temp file, with a running MD5 for sequential writers."""

    def __init__(
        self, fd: int, path: Path, done: Callable[[int, Path], bool] | None = None
    ) -> None:
        """`fd`/`path`: an empty file; `done(fd, path)` at close keeps it (True) or not."""
        self.fd = fd
        self.path = path
        self._done = done
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
        """Close and delete the spool file, or hand it back to its folder to use again."""
        self._digest.abandon()
        if self._done is not None and self._done(self.fd, self.path):
            return
        os.close(self.fd)
        self.path.unlink(missing_ok=True)
