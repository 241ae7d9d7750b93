"""Ranged reads from a store that answers with less than the range asked for."""

from __future__ import annotations

from portalfs.client.storage import StorageClient
from portalfs.client.transport import Transport
from portalfs.config import HttpConfig

from .conftest import Reply

DATA = bytes(range(256)) * 16  # 4096 bytes


def part(first: int, last: int) -> Reply:
    headers = {"Content-Range": f"bytes {first}-{last}/{len(DATA)}", "ETag": '"e"'}
    return Reply(206, DATA[first : last + 1], headers)


def test_a_store_that_caps_ranges_is_asked_for_the_rest(scripted):
    # Some stores and CDNs answer a long range with a shorter 206: the rest is asked for,
    # not taken as the end of the file.
    scripted.replies = [part(0, 999), part(1000, 1999), part(2000, 2999)]
    storage = StorageClient(Transport(HttpConfig(max_attempts=1)))
    read = storage.get_range(f"{scripted.url}/o", 0, 3000)
    assert read.data == DATA[:3000]
    assert [s.headers.get("range") for s in scripted.seen] == [
        "bytes=0-2999",
        "bytes=1000-2999",
        "bytes=2000-2999",
    ]
