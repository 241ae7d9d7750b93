"""Spool: bytes at any offset, size, and an MD5 that is right whatever the write pattern."""

from __future__ import annotations

import hashlib
import os
import random

import pytest

from portalfs.write import digest
from portalfs.write.spool import Spool


@pytest.fixture
def spool(tmp_path):
    s = Spool(tmp_path)
    yield s
    s.close()


def content(s: Spool) -> bytes:
    return s.read(0, s.size)


def test_sequential_writes_large_enough_to_hash_on_a_thread(spool, monkeypatch):
    monkeypatch.setattr(digest, "BACKGROUND_AFTER_BYTES", 1000)
    data = os.urandom(50_000)
    for off in range(0, len(data), 3000):
        spool.write(off, data[off : off + 3000])
    assert spool.md5() == hashlib.md5(data).hexdigest()
    spool.write(len(data), b"more")  # appending after the MD5 was asked for
    assert spool.md5() == hashlib.md5(data + b"more").hexdigest()


@pytest.mark.parametrize("seed", range(5))
def test_random_writes_and_truncates_match_a_model(spool, seed, monkeypatch):
    monkeypatch.setattr(digest, "BACKGROUND_AFTER_BYTES", 2000)
    rng = random.Random(seed)
    model = bytearray()
    for _ in range(200):
        if rng.random() < 0.1:
            length = rng.randrange(0, 10_000)
            spool.truncate(length)
            model = model[:length] + bytes(max(0, length - len(model)))
        else:
            off = len(model) if rng.random() < 0.7 else rng.randrange(0, len(model) + 100)
            data = rng.randbytes(rng.randrange(1, 3000))
            spool.write(off, data)
            if off > len(model):
                model += bytes(off - len(model))
            model[off : off + len(data)] = data
        assert spool.size == len(model)
        if rng.random() < 0.1:
            assert spool.md5() == hashlib.md5(model).hexdigest()
    assert content(spool) == bytes(model)
    assert spool.md5() == hashlib.md5(model).hexdigest()


def test_spool_file_is_private_and_removed_on_close(tmp_path):
    s = Spool(tmp_path)
    assert s.path.stat().st_mode & 0o777 == 0o600
    s.close()
    assert not s.path.exists()


def test_a_write_of_nothing_past_the_end_changes_nothing(spool):
    spool.write(0, b"abc")
    assert spool.write(100, b"") == 0
    assert spool.size == 3 and content(spool) == b"abc"  # before: size 100, a 97-byte hole
