"""MetadataCache with a fake clock: TTL, negative lookups, shared fetches, own writes."""

from __future__ import annotations

import gc
import threading
import tracemalloc

import pytest

from portalfs.cache.metadata import Entry, MetadataCache


def _until(cond, timeout_s: float = 5.0) -> bool:
    deadline = threading.Event()
    timer = threading.Timer(timeout_s, deadline.set)
    timer.start()
    try:
        while not cond():
            if deadline.wait(0.005):
                return cond()
        return True
    finally:
        timer.cancel()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Folder:
    """A fetch callable serving a dict of folder -> entries (or raising `error`), counting
    calls; each waits at `gate`."""

    def __init__(self, entries: dict[str, list[Entry]]) -> None:
        self.entries = entries
        self.calls = 0
        self.error: Exception | None = None
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, folder: str) -> list[Entry]:
        self.calls += 1
        self.gate.wait(5)
        if self.error is not None:
            raise self.error
        return list(self.entries.get(folder, []))


def test_fresh_listing_answers_lookups_and_misses_without_fetching():
    fetch, clock = Folder({"/": [Entry("a", False, 1)]}), Clock()
    cache = MetadataCache(fetch, ttl_s=5, timer=clock)
    assert cache.lookup("/a").size == 1
    assert cache.lookup("/missing") is None
    assert fetch.calls == 1
    clock.now += 5.1
    fetch.entries["/"] = [Entry("a", False, 2)]
    assert cache.lookup("/a").size == 2 and fetch.calls == 2


def test_own_writes_show_until_a_newer_listing_arrives():
    fetch, clock = Folder({"/": []}), Clock()
    cache = MetadataCache(fetch, ttl_s=5, timer=clock)
    assert cache.listing("/") == {}
    clock.now += 1
    cache.record("/new", Entry("new", False, 3))
    assert cache.lookup("/new").size == 3 and "new" in cache.listing("/")
    clock.now += 10  # expired; the next listing started after the write and is the truth
    fetch.entries["/"] = [Entry("new", False, 4)]
    assert cache.lookup("/new").size == 4
    cache.record("/new", None)
    assert cache.lookup("/new") is None and cache.listing("/") == {}


def _waiting_on(future, count: int) -> bool:
    """Whether `count` threads wait for `future` (in result()): CPython's Future waits on a
    Condition, whose waiters are listed. Lets a test release them together, knowingly."""
    return len(future._condition._waiters) == count


@pytest.mark.parametrize("fails", [False, True], ids=["result", "failure"])
def test_one_fetch_in_flight_reaches_every_waiter_with_its_result_or_failure(fails):
    # Before, the failure case ran its callers one after another, each fetching, and passed
    # whenever nothing was raised.
    fetch = Folder({"/x": [Entry("a", False, 7)]})
    fetch.gate.clear()
    fetch.error = OSError(5, "boom") if fails else None
    cache = MetadataCache(fetch, ttl_s=5, timer=Clock())
    outcomes: list[object] = []

    def look() -> None:
        try:
            outcomes.append(cache.lookup("/x/a"))
        except OSError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=look) for _ in range(8)]
    threads[0].start()
    assert _until(lambda: fetch.calls == 1)  # the first is fetching, held at the gate
    future = cache._inflight["/x"]
    for t in threads[1:]:
        t.start()
    assert _until(lambda: _waiting_on(future, 7))  # the other seven wait for that fetch
    fetch.gate.set()
    for t in threads:
        t.join(5)
    assert len(outcomes) == 8 and fetch.calls == 1
    if fails:
        assert all(isinstance(o, OSError) and o.errno == 5 for o in outcomes)
        with pytest.raises(OSError):
            cache.lookup("/x/a")
        assert fetch.calls == 2  # a failure is not cached
    else:
        assert all(o == Entry("a", False, 7) for o in outcomes)


class Down(Exception):
    pass


class Flaky:
    """A fetch that serves `entries` while up and raises Down while down."""

    def __init__(self, entries: list[Entry]) -> None:
        self.entries, self.up, self.calls = entries, True, 0

    def __call__(self, folder: str) -> list[Entry]:
        self.calls += 1
        if not self.up:
            raise Down("server unreachable")
        return list(self.entries)


def test_an_unreachable_server_leaves_the_last_listing_in_use_for_another_ttl():
    fetch, clock = Flaky([Entry("a", False, 1)]), Clock()
    cache = MetadataCache(fetch, ttl_s=5, timer=clock, stale_on=(Down,))
    assert cache.lookup("/a").size == 1
    clock.now += 6
    fetch.up = False
    assert cache.lookup("/a").size == 1  # the expired listing, not an error
    calls = fetch.calls
    clock.now += 4
    assert [e.name for e in cache.listing("/").values()] == ["a"]
    assert fetch.calls == calls  # not asked again within the new TTL
    clock.now += 2
    fetch.up, fetch.entries = True, [Entry("b", False, 3)]
    assert cache.lookup("/a") is None and cache.lookup("/b").size == 3  # fresh again


def test_without_a_listing_to_fall_back_on_the_failure_is_raised():
    fetch = Flaky([])
    fetch.up = False
    cache = MetadataCache(fetch, ttl_s=5, timer=Clock(), stale_on=(Down,))
    with pytest.raises(Down):
        cache.lookup("/a")


def _traced_bytes() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def test_a_hundred_thousand_writes_in_ten_thousand_folders_leave_memory_flat():
    # Before: one record kept per file written, until its folder was listed again.
    cache = MetadataCache(Folder({}), ttl_s=5, timer=Clock(), max_records=1000)
    tracemalloc.start()
    try:
        for i in range(10_000):
            cache.record_stored(f"/d{i % 10_000:05}/f{i:06}.jpg", 16384, f"{i:032x}")
        after_ten_thousand = _traced_bytes()
        for i in range(10_000, 100_000):
            cache.record_stored(f"/d{i % 10_000:05}/f{i:06}.jpg", 16384, f"{i:032x}")
        grown = _traced_bytes() - after_ten_thousand
    finally:
        tracemalloc.stop()
    # 90,000 more records would be some 30 MB; the bound keeps it to noise.
    assert grown < 64 * 1024
    assert len(cache._local) == 1000
    assert sum(len(names) for names in cache._names.values()) == 1000


def test_ten_thousand_folders_listed_leave_memory_flat_expired_or_not():
    # Before: up to 4096 folders of any size, in insertion order, expired or not.
    folders = {
        f"/d{i:05}": [Entry(f"f{j:03}.jpg", False, j) for j in range(50)] for i in range(10_000)
    }
    clock = Clock()
    cache = MetadataCache(Folder(folders), ttl_s=5, timer=clock, max_entries=5100)
    tracemalloc.start()
    try:
        for i in range(1000):
            cache.listing(f"/d{i:05}")
            clock.now += 0.01  # the early ones expire meanwhile
        after_a_thousand = _traced_bytes()
        for i in range(1000, 10_000):
            cache.listing(f"/d{i:05}")
            clock.now += 0.01
        grown = _traced_bytes() - after_a_thousand
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024
    assert cache._listings.currsize <= 5100 and len(cache._listings) == 100


def test_the_least_recently_used_listing_goes_first_expired_ones_like_others():
    fetch, clock = Flaky([Entry(f"f{j}", False) for j in range(9)]), Clock()
    cache = MetadataCache(fetch, ttl_s=5, timer=clock, max_entries=20, stale_on=(Down,))
    cache.listing("/a")
    cache.listing("/b")  # 10 entries each (9, plus one for the folder): the bound is full
    clock.now += 6  # both expired
    fetch.up = False
    assert len(cache.listing("/a")) == 9  # the expired listing, served: used again lately
    fetch.up = True
    cache.listing("/c")  # needs room: /b, expired and least recently used, goes
    fetch.up = False
    assert len(cache.listing("/a")) == 9
    with pytest.raises(Down):
        cache.listing("/b")


def test_a_listing_larger_than_the_bound_is_served_not_kept():
    fetch = Folder({"/big": [Entry(f"f{j}", False) for j in range(30)]})
    cache = MetadataCache(fetch, ttl_s=5, timer=Clock(), max_entries=20)
    assert len(cache.listing("/big")) == 30
    assert cache.cached_listing("/big") is None and cache._listings.currsize == 0


class Server:
    """A fetch callable over a dict of folder -> {name: Entry}, as a store would list it."""

    def __init__(self) -> None:
        self.files: dict[str, dict[str, Entry]] = {}
        self.calls: list[str] = []

    def store(self, folder: str, name: str, size: int) -> None:
        self.files.setdefault(folder, {})[name] = Entry(name, False, size)

    def __call__(self, folder: str) -> list[Entry]:
        self.calls.append(folder)
        return list(self.files.get(folder, {}).values())


def test_an_evicted_record_drops_the_older_listing_so_the_write_stays_visible():
    server, clock = Server(), Clock()
    cache = MetadataCache(server, ttl_s=60, timer=clock, max_records=2)
    assert cache.listing("/x") == {}
    clock.now += 1
    server.store("/x", "new", 3)  # stored after the listing was fetched
    cache.record_stored("/x/new", 3, None)
    cache.record_stored("/y/a", 1, None)
    cache.record_stored("/y/b", 1, None)  # evicts the record of /x/new
    assert "/x/new" not in cache._local
    assert cache.lookup("/x/new").size == 3  # a listing fetched anew, not the old one
    assert server.calls == ["/x", "/x"]


def test_an_evicted_record_leaves_a_newer_listing_in_place():
    server, clock = Server(), Clock()
    cache = MetadataCache(server, ttl_s=60, timer=clock, max_records=1)
    server.store("/x", "new", 3)
    cache.record_stored("/x/new", 3, None)
    clock.now += 1
    assert cache.lookup("/x/other") is None  # a listing that began after the write
    cache.record_stored("/y/a", 1, None)  # evicts the record of /x/new
    assert "/x/new" not in cache._local
    assert cache.lookup("/x/new").size == 3 and server.calls == ["/x"]


def test_a_record_evicted_during_its_folders_fetch_keeps_that_listing_out():
    # The fetch began before the write and may not show it; the record that would have
    # made up for it is gone: the listing answers its callers, and the next look fetches.
    server, clock = Server(), Clock()
    fetched = threading.Event()
    release = threading.Event()

    def slow(folder: str) -> list[Entry]:
        entries = server(folder)  # the store listed before the write below
        fetched.set()
        release.wait(5)
        return entries

    cache = MetadataCache(slow, ttl_s=60, timer=clock, max_records=1)
    looker = threading.Thread(target=cache.listing, args=("/x",))
    looker.start()
    assert fetched.wait(5)
    clock.now += 1
    server.store("/x", "new", 3)
    cache.record_stored("/x/new", 3, None)
    cache.record_stored("/y/a", 1, None)  # evicts it while /x is being fetched
    release.set()
    looker.join(5)
    assert cache.cached_listing("/x") is None
    assert cache.lookup("/x/new").size == 3 and server.calls == ["/x", "/x"]
