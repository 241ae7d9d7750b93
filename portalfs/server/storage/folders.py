"""Sorted entry names of the local backend's folders, scanned once and kept between listing
pages until the folder changes (its inode or mtime). Reads names only; never stats entries."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from cachetools import LRUCache

log = logging.getLogger(__name__)

# Names kept over all folders (about 100 bytes each); a bigger folder is scanned per page.
_MAX_NAMES = 1_000_000
# A folder's mtime comes from the kernel's coarse clock, up to a tick (1-10 ms) behind
# time.time_ns(): a scan is kept only if the folder last changed well before it began, so
# that any later change is sure to move the mtime (git's "racy" check, for the same reason).
_RACY_NS = 50_000_000

_Listing = tuple[tuple[int, int], list[str]]  # (inode, mtime_ns), sorted names


class FolderNames:
    """Entry names ("name", or "name/" for a folder) of folders, sorted like S3 keys: by
    UTF-8 bytes, which is code point order, i.e. Python's own str order. Thread-safe: a lock
    guards the LRU and the count; scanning happens outside it. Callers must not change a
    returned list (it is shared)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: LRUCache[str, _Listing] = LRUCache(
            _MAX_NAMES, getsizeof=lambda listing: len(listing[1]) + 1
        )
        self.scans = 0  # folders read from disk, for tests

    def names(self, folder: Path) -> list[str]:
        """The sorted names in `folder`; [] if it does not exist."""
        try:
            st = os.stat(folder)
        except (FileNotFoundError, NotADirectoryError):
            return []
        signature = (st.st_ino, st.st_mtime_ns)
        with self._lock:
            kept = self._kept.get(str(folder))
        if kept is not None and kept[0] == signature:
            return kept[1]
        started_ns = time.time_ns()
        names = _scan(folder)
        with self._lock:
            self.scans += 1
            if st.st_mtime_ns < started_ns - _RACY_NS and len(names) < _MAX_NAMES:
                self._kept[str(folder)] = (signature, names)
        return names


def _scan(folder: Path) -> list[str]:
    try:
        with os.scandir(folder) as it:
            names = [n for n in map(_listing_name, it) if n is not None]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(names)


def _listing_name(entry: os.DirEntry) -> str | None:
    try:
        entry.name.encode("utf-8")
    except UnicodeEncodeError:
        log.warning("skipping %r: its name is not UTF-8", entry.name)
        return None
    if entry.is_dir(follow_symlinks=False):
        return entry.name + "/"
    return entry.name if entry.is_file(follow_symlinks=False) else None
