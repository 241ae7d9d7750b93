"""md5s of the local backend's files: known ones (from the xattr `user.portalfs.md5` or
memory) and a background hasher for files placed by other means. Never hashes on the
caller's thread: a request only ever reads what is known, and asks for the rest."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from collections import deque
from pathlib import Path
from typing import BinaryIO

from cachetools import LRUCache

log = logging.getLogger(__name__)

# Value "<md5> <size> <mtime_ns>": set on the temp file before the atomic rename, and
# trusted only while size and mtime still match (an admin may edit a file in place).
MD5_XATTR = "user.portalfs.md5"
# md5s kept in memory where xattrs cannot be written (about 200 bytes each).
_MAX_REMEMBERED = 100_000
# Files waiting for the hasher; more are dropped, and asked for again by a later listing.
_MAX_PENDING = 10_000

FileKey = tuple[str, int, int, int]  # path, inode, size, mtime_ns


def file_key(path: Path, st: os.stat_result) -> FileKey:
    return (str(path), st.st_ino, st.st_size, st.st_mtime_ns)


class Md5Cache:
    """md5 hex of files, from the xattr when it still matches, else from memory (an LRU of
    _MAX_REMEMBERED entries keyed by FileKey). Thread-safe: a lock guards the LRU."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: LRUCache[FileKey, str] = LRUCache(_MAX_REMEMBERED)

    def get(self, path: Path, st: os.stat_result) -> str | None:
        """The md5 of the file at `path` whose stat is `st`, or None if not known."""
        from_xattr = read_xattr(path, st)
        if from_xattr:
            return from_xattr
        with self._lock:
            return self._known.get(file_key(path, st))

    def put(self, path: Path, st: os.stat_result, md5: str) -> None:
        with self._lock:
            self._known[file_key(path, st)] = md5


class Hasher:
    """Computes the md5s nobody knows yet, one file at a time, in a daemon thread that runs
    while there is work. A file is hashed once: then the xattr (or Md5Cache) has it.
    Thread-safe: one lock (with a condition for `wait_idle`) guards the queue and counts."""

    def __init__(self, cache: Md5Cache) -> None:
        self._cache = cache
        self._cond = threading.Condition()
        self._todo: deque[tuple[Path, FileKey]] = deque()
        self._pending: set[FileKey] = set()
        self._running = False
        self.hashed = 0  # files read and hashed, for tests and metrics

    def request(self, path: Path, st: os.stat_result) -> None:
        """Asks for the md5 of `path` as `st` describes it; returns at once."""
        key = file_key(path, st)
        with self._cond:
            if key in self._pending or len(self._todo) >= _MAX_PENDING:
                return
            self._pending.add(key)
            self._todo.append((path, key))
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="portalfs-md5", daemon=True).start()

    def wait_idle(self, timeout_s: float) -> bool:
        """True once nothing is waiting or being hashed (False after `timeout_s`)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending, timeout_s)

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._todo:
                    self._running = False
                    return
                path, key = self._todo.popleft()
            try:
                self._hash_one(path, key)
            except Exception:  # the thread must go on with the rest of the queue
                log.exception("computing the md5 of %s failed", path.name)
            finally:
                with self._cond:
                    self._pending.discard(key)
                    self._cond.notify_all()

    def _hash_one(self, path: Path, key: FileKey) -> None:
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                if file_key(path, st) != key:
                    return  # changed since it was listed; a later listing asks again
                md5 = _hash_file(f, path)
                changed = file_key(path, os.fstat(f.fileno())) != key
        except OSError:
            return  # gone or unreadable: it will be listed without an ETag
        with self._cond:
            self.hashed += 1
        if changed:
            return  # edited while we read: the md5 may mix two versions
        self._cache.put(path, st, md5)
        # Persist it for the next start; harmless where xattrs are unsupported.
        with contextlib.suppress(OSError):
            os.setxattr(path, MD5_XATTR, xattr_value(md5, st).encode())


def read_xattr(path: Path, st: os.stat_result) -> str | None:
    try:
        md5, size, mtime_ns = os.getxattr(path, MD5_XATTR, follow_symlinks=False).split()
    except (OSError, ValueError):
        return None
    valid = int(size) == st.st_size and int(mtime_ns) == st.st_mtime_ns
    return md5.decode() if valid else None


def xattr_value(md5: str, st: os.stat_result) -> str:
    return f"{md5} {st.st_size} {st.st_mtime_ns}"


def _hash_file(f: BinaryIO, path: Path) -> str:
    log.info("computing md5 of %s (no valid %s xattr)", path.name, MD5_XATTR)
    return hashlib.file_digest(f, "md5").hexdigest()
