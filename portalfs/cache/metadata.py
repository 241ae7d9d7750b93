"""MetadataCache: folder listings kept for a TTL, so stat, lookups of missing names and
readdir cost no request while fresh; plus entries this mount wrote itself. Both are bounded
by entries, however long the mount lives.

Thread-safe: one lock guards the caches and is never held while fetching; concurrent misses
of one folder share one fetch. Takes a fetch callable; knows nothing of HTTP.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from cachetools import LRUCache

from .. import paths

log = logging.getLogger(__name__)

# About 300 bytes an entry (name, ETag, the Entry): some 75 MB of listings at most, and
# 5 MB of this mount's own writes. A record only has to outlive its folder's next listing.
MAX_LISTED_ENTRIES = 250_000
MAX_OWN_RECORDS = 16_384


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


# This mount's own write of a path: when, and the entry (None: removed).
_Record = tuple[float, Entry | None]


class _Records(LRUCache):
    """Own writes by mount path, least recently used evicted first; tells `evicted` of each
    one it evicts (under the cache's lock)."""

    def __init__(self, maxsize: int, evicted: Callable[[str, _Record], None]) -> None:
        super().__init__(maxsize)
        self._evicted = evicted

    def popitem(self) -> tuple[str, _Record]:
        path, record = super().popitem()
        self._evicted(path, record)
        return path, record


class MetadataCache:
    """Listings by folder mount path ("/", "/a"), fresh for `ttl_s` seconds.

    Listings hold at most `max_entries` entries in all, least recently used evicted first.
    An expired listing counts like any other and is evicted in its turn: it stays only to
    be served while the server is unreachable (`stale_on`), so the ones nobody looks at go
    first. A listing larger than the whole bound is served but not kept. Own writes are at
    most `max_records`; evicting one that its folder's kept listing predates drops that
    listing, so the next look fetches one that shows the write.
    """

    def __init__(
        self,
        fetch: Callable[[str], list[Entry]],
        ttl_s: float,
        timer: Callable[[], float] = time.monotonic,
        max_entries: int = MAX_LISTED_ENTRIES,
        stale_on: tuple[type[BaseException], ...] = (),
        max_records: int = MAX_OWN_RECORDS,
        quiet_on: tuple[type[BaseException], ...] = (),
    ) -> None:
        self._fetch = fetch
        self.ttl_s = ttl_s
        # Failures (e.g. the server unreachable) after which an expired listing is still
        # served, for another TTL, instead of failing every stat and ls of the mount.
        self._stale_on = stale_on
        self._quiet_on = quiet_on
        self._timer = timer
        self._lock = threading.Lock()
        # A listing counts its entries, plus one so that empty folders count too.
        self._listings: LRUCache[str, _Listing] = LRUCache(
            max_entries, getsizeof=lambda listing: len(listing.entries) + 1
        )
        self._inflight: dict[str, Future[_Listing]] = {}
        # Folders whose fetch in flight began before an own write it may not show, and
        # whose evicted record can no longer make up for it: that listing is not kept.
        self._outdated: set[str] = set()
        self._local: _Records = _Records(max_records, self._forget_record)
        self._names: dict[str, set[str]] = {}  # the names of _local, by folder

    def listing(self, folder: str) -> dict[str, Entry]:
        """Entries of `folder` by name, including this mount's own recent writes."""
        listing = self._fresh_or_fetch(folder)
        with self._lock:
            entries = dict(listing.entries)
            for name in list(self._names.get(folder, ())):
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
            self._local[paths.join(folder, name)] = (self._timer(), entry)
            self._names.setdefault(folder, set()).add(name)

    def record_stored(self, path: str, size: int, etag: str | None) -> None:
        """Remember that `path` now holds a file of `size` bytes stored just now."""
        self.record(path, Entry(paths.split(path)[1], False, size, time.time_ns(), etag))

    def record_new_folder(self, folder: str) -> None:
        """`folder` was just made by this mount, so it holds nothing yet: that is its listing
        for a TTL, with no request (so files can be made in it while the server is down)."""
        now = self._timer()
        with self._lock:
            self._listings[folder] = _Listing({}, now, now + self.ttl_s)

    def invalidate(self, folder: str) -> None:
        """Forget the listing of `folder`; the next look fetches it again."""
        with self._lock:
            self._listings.pop(folder, None)

    def _local_entry(self, folder: str, name: str, listing: _Listing) -> tuple[bool, Entry | None]:
        """(True, entry) if this mount's own record for the name is newer than `listing`;
        an older record is dropped, since the listing already shows that write. Needs _lock."""
        path = paths.join(folder, name)
        record = self._local.get(path)
        if record is None:
            return False, None
        when, entry = record
        if when < listing.started:
            del self._local[path]
            self._unindex(path)
            return False, None
        return True, entry

    def _forget_record(self, path: str, record: _Record) -> None:
        """A record evicted for room (under _lock): a kept listing of its folder that began
        before the write may not show it, so it goes too."""
        self._unindex(path)
        folder = paths.split(path)[0]
        listing = self._listings.get(folder)
        if listing is not None and listing.started <= record[0]:
            del self._listings[folder]
        if folder in self._inflight:
            self._outdated.add(folder)

    def _unindex(self, path: str) -> None:
        folder, name = paths.split(path)
        names = self._names.get(folder)
        if names is not None:
            names.discard(name)
            if not names:
                del self._names[folder]

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
                self._outdated.discard(folder)
        future.set_result(listing)
        return listing

    def _keep_stale(self, folder: str, cached: _Listing, exc: BaseException) -> _Listing:
        # Quietly for a server already known to be down: that was said once.
        level = logging.INFO if isinstance(exc, self._quiet_on) else logging.WARNING
        log.log(
            level, "listing %s failed (%s); showing the last one for %gs", folder, exc, self.ttl_s
        )
        now = self._timer()
        listing = _Listing(cached.entries, cached.started, now + self.ttl_s)
        with self._lock:
            # Unless invalidated (or evicted) meanwhile, e.g. a reader saw the file change:
            # then the stale listing answers this call only.
            if self._listings.get(folder) is cached:
                self._listings[folder] = listing
        return listing

    def _load(self, folder: str) -> _Listing:
        started = self._timer()
        entries = {e.name: e for e in self._fetch(folder)}
        listing = _Listing(entries, started, started + self.ttl_s)
        with self._lock:
            if folder in self._outdated:
                return listing  # see _outdated: this caller only
            if len(entries) + 1 > self._listings.maxsize:
                log.warning("%s has %d entries, more than the cache keeps", folder, len(entries))
                return listing
            self._listings[folder] = listing
        return listing
