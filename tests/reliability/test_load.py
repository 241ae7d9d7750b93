"""Load through a real mount: an fsx-style random run against an in-memory model, and many
writers and readers at once; afterwards the daemon's spool and descriptors are back to
where they started."""

from __future__ import annotations

import os
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)

OPS = int(os.environ.get("PORTALFS_FSX_OPS", "10000"))


def daemon_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fsx_random_writes_truncates_and_reads_match_a_model(mount_portal, seed):
    m = mount_portal()
    rng = random.Random(seed)
    path = m.path / f"fsx-{seed}.bin"
    model = bytearray()
    path.write_bytes(b"")
    baseline = daemon_fds(m.process.pid)
    fd = os.open(path, os.O_RDWR)
    try:
        for step in range(OPS):
            op = rng.random()
            if op < 0.45:
                offset = rng.randrange(0, len(model) + 4096)
                data = rng.randbytes(rng.randrange(1, 65536))
                os.pwrite(fd, data, offset)
                model.extend(bytes(max(0, offset + len(data) - len(model))))
                model[offset : offset + len(data)] = data
            elif op < 0.55:
                length = rng.randrange(0, len(model) + 65536)
                os.ftruncate(fd, length)
                model = model[:length] + bytes(max(0, length - len(model)))
            elif op < 0.98:
                offset = rng.randrange(0, len(model) + 1)
                size = rng.randrange(1, 65536)
                assert os.pread(fd, size, offset) == bytes(model[offset : offset + size]), step
            else:  # close (upload) and open again, as the model's file
                os.close(fd)
                fd = os.open(path, os.O_RDWR)
        assert os.fstat(fd).st_size == len(model)
    finally:
        os.close(fd)
    assert path.read_bytes() == bytes(model)
    assert mount_portal().path.joinpath(path.name).read_bytes() == bytes(model)
    assert daemon_fds(m.process.pid) <= baseline  # sockets may close; nothing may leak
    assert list((m.cache_dir / "spool").iterdir()) == []
    assert list((m.cache_dir / "unsent").iterdir()) == []


def test_32_writers_and_16_mixed_readers(mount_portal):
    m = mount_portal()
    blobs = {f"r{i}.bin": os.urandom(300_000 + 7 * i) for i in range(16)}
    for name, data in blobs.items():
        (m.path / name).write_bytes(data)

    def write(i: int) -> bool:
        data = random.Random(i).randbytes(150_000 + i)
        (m.path / f"w{i}.bin").write_bytes(data)
        return (m.path / f"w{i}.bin").read_bytes() == data

    def read(i: int) -> bool:
        name, data = list(blobs.items())[i]
        path: Path = m.path / name
        if i % 2:  # random ranges
            rng = random.Random(i)
            with open(path, "rb") as f:
                for _ in range(20):
                    offset = rng.randrange(0, len(data))
                    f.seek(offset)
                    if f.read(4096) != data[offset : offset + 4096]:
                        return False
            return True
        return path.read_bytes() == data

    def round_of_load() -> int:
        with ThreadPoolExecutor(48) as pool:
            writes = [pool.submit(write, i) for i in range(32)]
            reads = [pool.submit(read, i) for i in range(16)]
            assert all(f.result() for f in writes + reads)
        assert list((m.cache_dir / "spool").iterdir()) == []
        return daemon_fds(m.process.pid)

    # Connections are per thread and idle libfuse threads keep theirs, so descriptors grow
    # with the first burst of threads; a leak would grow them again with every round.
    first = round_of_load()
    second = round_of_load()
    third = round_of_load()
    assert max(second, third) <= first + 4, (first, second, third)
