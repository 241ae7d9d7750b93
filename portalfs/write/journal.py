"""Journal: spooled files whose upload failed, kept in CACHE_DIR/unsent/ until they are sent.

Each entry is a data file and a JSON record (portal path, size, MD5). File names are random
ids, never tokens or user paths. Does no network I/O itself: the caller sends.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Unsent:
    """One kept file: where its bytes are and where they were meant to go."""

    data_path: Path
    portal_path: str
    size: int
    md5: str


class Journal:
    """The unsent/ folder (0700, files 0600). Thread-safe: entries are separate files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def keep(self, source: Path, portal_path: str, size: int, md5: str) -> Unsent:
        """Copy `source` into the journal, record its destination, and say so in the log."""
        entry_id = uuid.uuid4().hex
        data_path = self.directory / f"{entry_id}.data"
        # A copy, not a link: the spool may still be written to after this failure.
        fd = os.open(data_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with open(source, "rb") as src, os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst, 1024 * 1024)
        record = {"portal_path": portal_path, "size": size, "md5": md5}
        tmp = self.directory / f".{entry_id}.json.tmp"
        tmp.write_text(json.dumps(record))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.directory / f"{entry_id}.json")
        log.warning("upload of %s failed; its bytes are kept in %s", portal_path, data_path)
        return Unsent(data_path, portal_path, size, md5)

    def entries(self) -> Iterator[Unsent]:
        """Every kept file whose record is complete."""
        for record_path in sorted(self.directory.glob("*.json")):
            try:
                record = json.loads(record_path.read_text())
            except (OSError, ValueError):
                continue
            data_path = record_path.with_suffix(".data")
            if data_path.exists():
                yield Unsent(data_path, record["portal_path"], record["size"], record["md5"])

    def forget(self, entry: Unsent) -> None:
        """Drop an entry once it has been sent."""
        entry.data_path.with_suffix(".json").unlink(missing_ok=True)
        entry.data_path.unlink(missing_ok=True)
