"""ListAhead: once an application walks into a folder's subfolders (it lists the folder and
then one of its subfolders, or two subfolders one after the other, as `ls -R`, `find`, `du`
and os.walk do), lists the next few subfolders in the background, so the walk finds them
listed instead of waiting on one request per folder in turn.

Only asks MetadataCache.listing, so a fresh listing is not fetched again and a folder the
application and the list-ahead want at once costs one request; never fetches the parent's
listing to decide. Failures are left to the application's own listing to report.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from cachetools import TTLCache

from .. import paths
from ..cache.metadata import MetadataCache
from ..client import errors

log = logging.getLogger(__name__)

_REMEMBERED = 4096  # folders asked for lately, so one walk never asks twice


class ListAhead:
    """Keeps up to `ahead` sibling folders listed in front of a walk, `workers` at a time."""

    def __init__(self, metadata: MetadataCache, ahead: int, workers: int = 4) -> None:
        self.metadata = metadata
        self.ahead = ahead
        self._lock = threading.Lock()
        self._previous: str | None = None
        # Folders asked for within a TTL: still fresh, or being listed. Guarded by _lock.
        self._asked: TTLCache[str, bool] = TTLCache(_REMEMBERED, metadata.ttl_s, time.monotonic)
        self._todo: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        # Daemon threads, not a ThreadPoolExecutor: Python waits for an executor's threads at
        # exit, and a listing retrying against a server that is gone would hold up unmount.
        self._workers = workers
        self._started = 0  # workers running (started on the first walk)

    def listed(self, folder: str) -> None:
        """The application just listed `folder` (a mount path)."""
        if self.ahead <= 0 or folder == "/":
            return
        parent, name = paths.split(folder)
        with self._lock:
            previous, self._previous = self._previous, folder
        if previous is None or previous == folder:
            return
        if previous != parent and paths.split(previous)[0] != parent:
            return  # not a walk into parent's subfolders (yet)
        siblings = self.metadata.cached_listing(parent)
        if siblings is None:
            return
        subfolders = sorted(n for n, entry in siblings.items() if entry.is_dir)
        later = [n for n in subfolders if n > name][: self.ahead]
        submitted = 0
        for sibling in later:
            path = paths.join(parent, sibling)
            with self._lock:
                if self._asked.get(path):
                    continue  # listed lately: still fresh, or being listed
                self._asked[path] = True
            self._todo.put(path)
            submitted += 1
        if submitted:
            self._start_workers()
            log.debug("listing %d folders of %s ahead of the walk", submitted, parent)

    def _start_workers(self) -> None:
        with self._lock:  # on the first walk only
            while self._started < self._workers:
                threading.Thread(target=self._work, name="list-ahead", daemon=True).start()
                self._started += 1

    def _work(self) -> None:
        while (folder := self._todo.get()) is not None:
            try:
                self.metadata.listing(folder)
            except (errors.PortalError, OSError) as exc:
                log.debug("listing %s ahead of the walk failed: %s", folder, exc)

    def close(self) -> None:
        """Stop the workers once they finish what they are listing; drop the rest."""
        while True:
            try:
                self._todo.get_nowait()
            except queue.Empty:
                break
        with self._lock:
            started = self._started
        for _ in range(started):
            self._todo.put(None)
