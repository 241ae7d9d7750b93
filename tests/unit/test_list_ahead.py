"""ListAhead: a walk into a folder's subfolders gets the next ones listed in the background."""

import threading

from portalfs.cache.metadata import Entry, MetadataCache
from portalfs.fs.listahead import ListAhead

SUBFOLDERS = [f"d{i:02}" for i in range(30)]


class Store:
    """Listings of /top/d00../top/d29 (each with one file), recording what was fetched."""

    def __init__(self) -> None:
        self.fetched: list[str] = []
        self.cond = threading.Condition()

    def fetch(self, folder: str) -> list[Entry]:
        with self.cond:
            self.fetched.append(folder)
            self.cond.notify_all()
        if folder == "/":
            return [Entry("top", True), Entry("other", True)]
        if folder == "/top":
            return [Entry(name, True) for name in SUBFOLDERS] + [Entry("f.txt", False, 1)]
        return [Entry("f.txt", False, 1)]

    def wait_for(self, folders: set[str]) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: folders <= set(self.fetched), timeout=5)


def make(ahead: int = 4) -> tuple[Store, MetadataCache, ListAhead]:
    store = Store()
    metadata = MetadataCache(store.fetch, ttl_s=60)
    return store, metadata, ListAhead(metadata, ahead)


def app_lists(metadata: MetadataCache, list_ahead: ListAhead, folder: str) -> None:
    list_ahead.listed(folder)  # as PortalFS.readdir does: before its own listing
    metadata.listing(folder)


def test_listing_a_folder_then_a_subfolder_lists_the_next_subfolders_ahead():
    store, metadata, list_ahead = make(ahead=4)
    app_lists(metadata, list_ahead, "/top")
    app_lists(metadata, list_ahead, "/top/d00")
    assert store.wait_for({"/top/d01", "/top/d02", "/top/d03", "/top/d04"})
    list_ahead.close()
    assert "/top/d05" not in store.fetched  # no more than `ahead` in front of the walk
    assert store.fetched.count("/top/d01") == 1


def test_the_walk_keeps_its_window_ahead_and_nothing_is_fetched_twice():
    store, metadata, list_ahead = make(ahead=4)
    app_lists(metadata, list_ahead, "/top")
    for name in SUBFOLDERS[:10]:
        app_lists(metadata, list_ahead, f"/top/{name}")
    assert store.wait_for({f"/top/{n}" for n in SUBFOLDERS[:14]})
    list_ahead.close()
    assert len(store.fetched) == len(set(store.fetched))  # each folder one request
    assert not {f"/top/{n}" for n in SUBFOLDERS[15:]} & set(store.fetched)


def test_folders_that_are_not_a_walk_list_nothing_ahead():
    store, metadata, list_ahead = make(ahead=4)
    app_lists(metadata, list_ahead, "/top/d07")  # the parent's listing is not cached
    app_lists(metadata, list_ahead, "/other")  # not below /top/d07, not its sibling
    app_lists(metadata, list_ahead, "/top/d07")  # the same folder again
    list_ahead.close()
    assert store.fetched == ["/top/d07", "/other"]  # /top is never fetched to decide


def test_list_ahead_zero_lists_nothing_ahead():
    store, metadata, list_ahead = make(ahead=0)
    app_lists(metadata, list_ahead, "/top")
    app_lists(metadata, list_ahead, "/top/d00")
    app_lists(metadata, list_ahead, "/top/d01")
    list_ahead.close()
    assert store.fetched == ["/top", "/top/d00", "/top/d01"]


def test_a_walk_slower_than_the_ttl_lists_the_folders_ahead_again():
    # A documented limit: what was listed ahead expires like any listing.
    store = Store()
    now = [0.0]
    metadata = MetadataCache(store.fetch, ttl_s=5, timer=lambda: now[0])
    list_ahead = ListAhead(metadata, ahead=2)
    app_lists(metadata, list_ahead, "/top")
    app_lists(metadata, list_ahead, "/top/d00")
    assert store.wait_for({"/top/d01", "/top/d02"})
    now[0] = 10.0  # the walk spent 10 s inside d00's tree
    app_lists(metadata, list_ahead, "/top/d01")
    list_ahead.close()
    assert store.fetched.count("/top/d01") == 2
