"""MetadataCache: folder listings kept for a TTL, so stat, lookups of missing names and
readdir cost no request while fresh; plus entries this mount wrote itself.

Thread-safe: one lock guards the maps and is never held while fetching; concurrent misses of
one folder share one fetch. Takes a fetch callable; knows nothing of HTTP.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from .. import paths

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    """What the mount knows of one name: a folder, or a file with size, mtime and ETag."""

    name: str
    is_dir: bool
    size: int = 0
    mtime_ns: int = 0
    etag: str | None = None


@dataclass(frozen=True)
class _Listing:
    entries: dict[str, Entry]
    # When the fetch began: writes recorded after this are newer than the listing.
    started: float
    expires: float


class MetadataCache:
    """Listings by folder mount path ("/", "/a"), fresh for `ttl_s` seconds."""

    def __init__(
        self,
        fetch: Callable[[str], list[Entry]],
        ttl_s: float,
        timer: Callable[[], float] = time.monotonic,
        max_folders: int = 4096,
        stale_on: tuple[type[BaseException], ...] = (),
    ) -> None:
        self._fetch = fetch
        self.ttl_s = ttl_s
        # Failures (e.g. the server unreachable) after which an expired listing is still
        # served, for another TTL, instead of failing every stat and ls of the mount.
        self._stale_on = stale_on
        self._timer = timer
        self._max_folders = max_folders
        self._lock = threading.Lock()
        self._listings: dict[str, _Listing] = {}
        self._inflight: dict[str, Future[_Listing]] = {}
        # Entries this mount uploaded or removed, by folder and name, with when; None: removed.
        self._local: dict[str, dict[str, tuple[float, Entry | None]]] = {}

    def listing(self, folder: str) -> dict[str, Entry]:
        """Entries of `folder` by name, including this mount's own recent writes."""
        listing = self._fresh_or_fetch(folder)
        with self._lock:
            entries = dict(listing.entries)
            for name in list(self._local.get(folder, ())):
                found, entry = self._local_entry(folder, name, listing)
                if found and entry is None:
                    entries.pop(name, None)
                elif found:
                    entries[name] = entry
            return entries

    def cached_listing(self, folder: str) -> dict[str, Entry] | None:
        """The fresh listing of `folder` as fetched, or None; never fetches."""
        with self._lock:
            cached = self._listings.get(folder)
            if cached and cached.expires > self._timer():
                return cached.entries
            return None

    def lookup(self, path: str) -> Entry | None:
        """The entry at `path`, or None when the fresh listing of its folder lacks it.
        Costs no copy of the listing: stat() of every file of a large folder stays linear."""
        folder, name = paths.split(path)
        listing = self._fresh_or_fetch(folder)
        with self._lock:
            found, entry = self._local_entry(folder, name, listing)
        return entry if found else listing.entries.get(name)

    def record(self, path: str, entry: Entry | None) -> None:
        """Remember that this mount just wrote (or, with None, removed) `path`."""
        folder, name = paths.split(path)
        with self._lock:
            self._local.setdefault(folder, {})[name] = (self._timer(), entry)

    def record_stored(self, path: str, size: int, etag: str | None) -> None:
        """Remember that `path` now holds a file of `size` bytes stored just now."""
        self.record(path, Entry(paths.split(path)[1], False, size, time.time_ns(), etag))

    def invalidate(self, folder: str) -> None:
        """Forget the listing of `folder`; the next look fetches it again."""
        with self._lock:
            self._listings.pop(folder, None)

    def _local_entry(self, folder: str, name: str, listing: _Listing) -> tuple[bool, Entry | None]:
        """(True, entry) if this mount's own record for the name is newer than `listing`;
        an older record is dropped, since the listing already shows that write. Needs _lock."""
        records = self._local.get(folder)
        if not records or name not in records:
            return False, None
        when, entry = records[name]
        if when < listing.started:
            del records[name]
            if not records:
                del self._local[folder]
            return False, None
        return True, entry

    def _fresh_or_fetch(self, folder: str) -> _Listing:
        with self._lock:
            cached = self._listings.get(folder)
            if cached and cached.expires > self._timer():
                return cached
            future = self._inflight.get(folder)
            leader = future is None
            if leader:
                future = self._inflight[folder] = Future()
        if not leader:
            return future.result()
        try:
            listing = self._load(folder)
        except self._stale_on as exc:
            if cached is None:
                future.set_exception(exc)
                raise
            listing = self._keep_stale(folder, cached, exc)
        except BaseException as exc:
            future.set_exception(exc)
            raise
        finally:
            with self._lock:
                self._inflight.pop(folder, None)
        future.set_result(listing)
        return listing

    def _keep_stale(self, folder: str, cached: _Listing, exc: BaseException) -> _Listing:
        log.warning("listing %s failed (%s); showing the last one for %gs", folder, exc, self.ttl_s)
        now = self._timer()
        listing = _Listing(cached.entries, cached.started, now + self.ttl_s)
        with self._lock:
            # Unless invalidated meanwhile (e.g. a reader saw the file change): then the
            # stale listing answers this call only.
            if self._listings.get(folder) is cached:
                self._listings[folder] = listing
        return listing

    def _load(self, folder: str) -> _Listing:
        started = self._timer()
        entries = {e.name: e for e in self._fetch(folder)}
        listing = _Listing(entries, started, started + self.ttl_s)
        with self._lock:
            if len(self._listings) >= self._max_folders:
                self._listings.pop(next(iter(self._listings)))
            self._listings[folder] = listing
        return listing
