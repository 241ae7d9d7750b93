"""After-upload checks for a backend whose signed PUT cannot enforce the MD5 a link was
asked for (S3): an object that holds none of the contents signed for its key is removed
and reported at WARNING, by portal folder and path. Never logs a URL or a token."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from enum import Enum

from .base import ObjectStat
from .signed_uploads import SignedUpload, SignedUploads

log = logging.getLogger(__name__)


class Removal(Enum):
    """What became of an object the check condemned."""

    REMOVED = "removed"
    GONE = "already gone or replaced"  # someone else deleted or overwrote it meanwhile
    FAILED = "could not be removed"


class UploadChecker:
    """Remembers the links signed per key and judges stored objects against them.
    Thread-safe: its state is the SignedUploads store."""

    def __init__(
        self,
        uploads: SignedUploads,
        remove: Callable[[str, str], Removal],
        keep_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._uploads = uploads
        self._remove = remove  # (key, etag) -> Removal; must remove only that etag
        self._keep_s = keep_s
        self._clock = clock

    def signed(self, key: str, md5: str, size: int, current: ObjectStat | None) -> None:
        """Records a link for `key`; call before the link leaves the server. `current` is
        the object there now, already checked: a link never used must not condemn it."""
        until = self._clock() + self._keep_s
        if current is not None:
            self._uploads.add(key, SignedUpload(current.etag, current.size, until))
        self._uploads.add(key, SignedUpload(md5, size, until))

    def moved(self, key: str, stat: ObjectStat) -> None:
        """`key` now holds checked content put there by the server itself (a rename)."""
        if self._uploads.get(key):
            self._uploads.add(key, SignedUpload(stat.etag, stat.size, self._clock() + self._keep_s))

    def admits(self, key: str, stat: ObjectStat) -> bool:
        """Whether the object at `key` may be shown; one that is not is removed."""
        return self._judge(key, stat) is None

    def sweep(self, head: Callable[[str], ObjectStat | None]) -> int:
        """Checks the object of every key with records (`head`: its unchecked stat), then
        forgets expired records, unless a condemned object is still there. Returns how
        many objects it removed."""
        removed = 0
        for key in self._uploads.pending_keys():
            now = self._clock()  # before the look: a PUT seen after it was in time
            current = head(key)
            verdict = None if current is None else self._judge(key, current)
            removed += verdict is Removal.REMOVED
            if verdict is not Removal.FAILED:
                self._uploads.forget_expired(key, now)
        return removed

    def _judge(self, key: str, stat: ObjectStat) -> Removal | None:
        records = self._uploads.get(key)
        if not records or any((r.md5, r.size) == (stat.etag, stat.size) for r in records):
            return None
        verdict = self._remove(key, stat.etag)
        folder, _, path = key.partition("/")
        signed = ", ".join(sorted(f"{r.md5} ({r.size} bytes)" for r in records))
        log.warning(
            "upload check: %r in portal folder %r holds content no link was signed for "
            "(md5 %s, %d bytes; signed: %s): %s",
            path,
            folder,
            stat.etag,
            stat.size,
            signed,
            verdict.value,
        )
        return verdict


class Sweeper:
    """Calls `sweep` every `every_s` seconds in a daemon thread until `stop()`; `sweep`
    None (a backend that checks at the PUT) runs nothing. `rounds` counts finished sweeps."""

    def __init__(self, sweep: Callable[[], int] | None, every_s: float) -> None:
        self._sweep = sweep
        self._every_s = every_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="portalfs-upload-sweep", daemon=True)
        self.rounds = 0

    def start(self) -> Sweeper:
        if self._sweep is not None:
            self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stopping.wait(self._every_s):
            try:
                removed = self._sweep()
            except Exception:  # a storage outage must not end the sweeps for good
                log.exception("upload sweep failed; next try in %.0f s", self._every_s)
                continue
            self.rounds += 1
            if removed:
                log.info("upload sweep removed %d object(s)", removed)


def start_sweeper(storage: object, every_s: float) -> Sweeper:
    """A running Sweeper for `storage` if it checks uploads afterwards (has
    `sweep_uploads`), else one that runs nothing."""
    return Sweeper(getattr(storage, "sweep_uploads", None), every_s).start()
