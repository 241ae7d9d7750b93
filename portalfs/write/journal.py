"""Journal: the durable record of files whose bytes are final but not yet stored in the
portal, in CACHE_DIR/unsent/. An entry is made before every upload and dropped after it,
so a failed upload, a dead server or a killed mount loses nothing: the next mount (or
`portalfs recover`) sends what is left.

Each entry is a data file and a JSON record (portal path, size, MD5). File names are
time-ordered random ids, never tokens or user paths. Uploads of one path go one at a time
(`sending`), so a resent old version can never land after a newer one. Does no network
I/O itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Unsent:
    """One journal entry: where its bytes are and where they go."""

    data_path: Path
    portal_path: str
    size: int
    md5: str


class Journal:
    """The unsent/ folder (0700, files 0600). Thread-safe: entries are separate files, and
    per-path locks order the uploads of one path within this process."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._guard = threading.Lock()
        self._sending: dict[str, tuple[threading.Lock, list[int]]] = {}
        # Entries by portal path, so forgetting a path's entries reads no records. Only one
        # process uses a cache folder at a time (the mount's flock), so this stays true.
        self._by_path: dict[str, list[Unsent]] = {}
        for entry in self.entries():
            self._by_path.setdefault(entry.portal_path, []).append(entry)

    @contextlib.contextmanager
    def sending(self, portal_path: str) -> Iterator[None]:
        """Held around recording, uploading and forgetting a version of `portal_path`:
        the mount's own uploads and the resender's take turns, in the order they come."""
        with self._guard:
            lock, users = self._sending.setdefault(portal_path, (threading.Lock(), [0]))
            users[0] += 1
        try:
            with lock:
                yield
        finally:
            with self._guard:
                users[0] -= 1
                if users[0] == 0:
                    del self._sending[portal_path]

    def holds(self, entry: Unsent) -> bool:
        """Whether `entry` is still unsent (not forgotten as sent or superseded)."""
        return entry.data_path.with_suffix(".json").exists()

    def record(self, source: Path, portal_path: str, size: int, md5: str) -> Unsent:
        """Enter `source` (final bytes) before its upload: a hard link, so it costs no copy."""
        entry_id = f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"
        data_path = self.directory / f"{entry_id}.data"
        try:
            os.link(source, data_path)
        except OSError:
            _copy_private(source, data_path)
        tmp = self.directory / f".{entry_id}.json.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"portal_path": portal_path, "size": size, "md5": md5}, f)
        os.replace(tmp, self.directory / f"{entry_id}.json")
        entry = Unsent(data_path, portal_path, size, md5)
        with self._guard:
            self._by_path.setdefault(portal_path, []).append(entry)
        return entry

    def keep(self, entry: Unsent) -> None:
        """The upload failed: give the entry bytes of its own (the spool may change next),
        and say in the log where they are."""
        private = entry.data_path.with_suffix(".copy")
        _copy_private(entry.data_path, private)
        os.replace(private, entry.data_path)
        log.warning(
            "upload of %s failed; its bytes are kept in %s", entry.portal_path, entry.data_path
        )

    def entries(self) -> Iterator[Unsent]:
        """Every entry whose record is complete, oldest first."""
        for record_path in sorted(self.directory.glob("*.json")):
            try:
                record = json.loads(record_path.read_text())
            except (OSError, ValueError):
                continue
            data_path = record_path.with_suffix(".data")
            if data_path.exists():
                yield Unsent(data_path, record["portal_path"], record["size"], record["md5"])

    def forget(self, entry: Unsent) -> None:
        """Drop an entry once its bytes are stored (or superseded)."""
        entry.data_path.with_suffix(".json").unlink(missing_ok=True)
        entry.data_path.unlink(missing_ok=True)
        with self._guard:
            entries = self._by_path.get(entry.portal_path, [])
            if entry in entries:
                entries.remove(entry)
            if not entries:
                self._by_path.pop(entry.portal_path, None)

    def forget_path(self, portal_path: str) -> None:
        """Drop every entry of `portal_path`: a newer version of it is stored."""
        with self._guard:
            entries = self._by_path.pop(portal_path, [])
        for entry in entries:
            self.forget(entry)


def _copy_private(source: Path, target: Path) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(source, "rb") as src, os.fdopen(fd, "wb") as dst:
        shutil.copyfileobj(src, dst, 1024 * 1024)
