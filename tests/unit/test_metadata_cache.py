"""MetadataCache with a fake clock: TTL, negative lookups, shared fetches, own writes."""

from __future__ import annotations

import threading

import pytest

from portalfs.cache.metadata import Entry, MetadataCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Folder:
    """A fetch callable serving a dict of folder -> entries, counting calls."""

    def __init__(self, entries: dict[str, list[Entry]]) -> None:
        self.entries = entries
        self.calls = 0
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, folder: str) -> list[Entry]:
        self.calls += 1
        self.gate.wait(5)
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


def test_concurrent_misses_of_one_folder_share_one_fetch():
    fetch = Folder({"/": [Entry("a", False)]})
    fetch.gate.clear()
    cache = MetadataCache(fetch, ttl_s=5, timer=Clock())
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.lookup("/a"))) for _ in range(8)
    ]
    for t in threads:
        t.start()
    fetch.gate.set()
    for t in threads:
        t.join(5)
    assert len(results) == 8 and all(r.name == "a" for r in results)
    assert fetch.calls == 1


def test_a_failed_fetch_reaches_every_waiter_and_is_not_cached():
    calls = []

    def failing(folder):
        calls.append(folder)
        raise OSError(5, "boom")

    cache = MetadataCache(failing, ttl_s=5, timer=Clock())
    for _ in range(2):
        try:
            cache.lookup("/x")
        except OSError as exc:
            assert exc.errno == 5
    assert len(calls) == 2


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
