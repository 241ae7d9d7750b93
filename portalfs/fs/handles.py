"""OpenFile and Handle: the state of files open in the mount.

An OpenFile is shared by every handle of one path; its lock serialises the spool and the
upload of that file only. Does no I/O of its own besides the spool.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from ..write.journal import Unsent
from ..write.spool import Spool


@dataclass
class OpenFile:
    """One path that is open: its remote version and, once written to, its spool."""

    path: str
    etag: str | None
    size: int
    spool: Spool | None = None
    # Written or truncated through a handle since the last upload that stored it: flush and
    # fsync upload. Stays set when that upload fails, so the next flush tries again.
    changed: bool = False
    # The spool holds bytes the portal may not have (created or truncated on open, or
    # changed): release uploads them if no flush did (see SEMANTICS.md).
    unstored: bool = False
    # The journal entry that holds exactly the spool's bytes after a failed upload: the next
    # try sends it, and release leaves it to the resender. It shares the spool's inode, so
    # the spool must not change before the entry has bytes of its own.
    journaled: Unsent | None = None
    refs: int = 0
    # errno of a failed write: the file is incomplete and is never uploaded.
    error: int | None = None
    # Deleted while open: nothing is uploaded any more (its bytes live until the last close).
    unlinked: bool = False
    # Why the portal refused these bytes for good: every flush fails with it until they
    # change (the bytes wait in the journal's refused/).
    refusal: Exception | None = None
    # A descriptor on the journal's bytes of a file whose upload failed and waits to be sent
    # again: reads come from there, since the portal has no such version yet.
    unsent_fd: int | None = None
    # Shown as mtime while the file is open for writing: the time of its last change.
    mtime_ns: int = field(default_factory=time.time_ns)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def current_size(self) -> int:
        return self.spool.size if self.spool else self.size


@dataclass
class Handle:
    """One open() of an OpenFile, with where its reader is (for read-ahead)."""

    file: OpenFile
    writable: bool
    # Where the reads of a sequential run have got to (the furthest end); a read near it
    # continues the run.
    next_offset: int = 0
