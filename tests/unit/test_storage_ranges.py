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


def test_the_read_ahead_stream_asks_for_the_rest_of_a_capped_range(scripted):
    # The read-ahead stream from block 1 to the end of a 4-block file meets a store that
    # caps its answers: every block it caches is whole, and a read in the middle is exact.
    from portalfs.cache.blocks import BlockCache
    from portalfs.cache.links import LinkCache
    from portalfs.fs.reader import RemoteReader

    block = 1024
    scripted.replies = [part(1024, 2535), part(2536, 4095)]  # 1.5 blocks, then the rest
    storage = StorageClient(Transport(HttpConfig(max_attempts=1)), block)
    reader = RemoteReader(
        LinkCache(lambda _: f"{scripted.url}/o", 600), storage, BlockCache(block, 64 * block), 8
    )
    reader.stream("o", '"e"', len(DATA), 1024, reader=1)
    assert reader.read("o", '"e"', len(DATA), 2048, 1024, reader=1) == DATA[2048:3072]
    assert reader.read("o", '"e"', len(DATA), 3072, 1024, reader=1) == DATA[3072:]
    assert [s.headers.get("range") for s in scripted.seen] == ["bytes=1024-4095", "bytes=2536-4095"]


def test_a_stream_of_the_whole_object_from_byte_0_is_a_get_without_range(scripted):
    scripted.replies = [Reply(200, DATA, {"ETag": '"e"'})]
    storage = StorageClient(Transport(HttpConfig(max_attempts=1)))
    got = b"".join(
        storage.stream_range(f"{scripted.url}/o", 0, len(DATA), '"e"', 1024, None, len(DATA))
    )
    assert got == DATA
    assert scripted.seen[0].headers.get("range") is None
