"""BlockCache: bounded in bytes; blocks read ahead stay until taken or released, and
released ones are the first to go."""

from portalfs.cache.blocks import BlockCache, BlockKey


def _key(index: int) -> BlockKey:
    return BlockKey("f", "etag", index)


def test_least_recently_used_blocks_go_first_and_the_bound_holds():
    cache = BlockCache(block_bytes=10, max_bytes=30)
    for index in range(3):
        cache.put(_key(index), b"x" * 10)
    assert cache.get(_key(0)) is not None  # now the most recent
    cache.put(_key(3), b"x" * 10)
    assert cache.get(_key(1)) is None
    assert [cache.get(_key(i)) is not None for i in (0, 2, 3)] == [True, True, True]
    assert cache.bytes_held == 30


def test_blocks_read_ahead_are_not_evicted_until_taken():
    cache = BlockCache(block_bytes=10, max_bytes=30)
    cache.put(_key(0), b"a" * 10, unread=True)
    for index in range(1, 6):
        cache.put(_key(index), b"x" * 10)
    assert cache.get(_key(0)) == b"a" * 10  # still there; taken: an ordinary block now
    assert cache.bytes_held == 30
    for index in range(6, 9):
        cache.put(_key(index), b"x" * 10)
    assert cache.get(_key(0)) is None


def test_released_blocks_are_the_first_to_go():
    cache = BlockCache(block_bytes=10, max_bytes=30)
    cache.put(_key(0), b"x" * 10)
    cache.put(_key(1), b"a" * 10, unread=True)
    cache.put(_key(2), b"x" * 10)
    cache.release([_key(1), _key(7)])  # 7 is not there: nothing happens
    cache.put(_key(3), b"x" * 10)
    assert cache.get(_key(1)) is None
    assert cache.get(_key(0)) is not None


def test_a_block_put_again_is_counted_once():
    cache = BlockCache(block_bytes=10, max_bytes=30)
    cache.put(_key(0), b"x" * 10, unread=True)
    cache.put(_key(0), b"y" * 10)
    assert cache.bytes_held == 10
    assert cache.get(_key(0)) == b"y" * 10


def test_looking_for_a_block_neither_takes_it_nor_moves_it():
    cache = BlockCache(block_bytes=10, max_bytes=30)
    cache.put(_key(0), b"a" * 10, unread=True)
    cache.put(_key(1), b"x" * 10)
    assert _key(0) in cache and _key(1) in cache and _key(5) not in cache
    for index in range(2, 6):  # room needed: the looked-at block 1 goes first all the same
        cache.put(_key(index), b"x" * 10)
    assert _key(1) not in cache
    assert cache.get(_key(0)) == b"a" * 10  # still unread until get() took it
