"""Figures 1, 2, 3 and 7 while reading: a sequential cold read and re-read, the minimal
mount beside it, many files at once, random reads; the store's and the daemon's CPU and
the daemon's memory meanwhile."""

from __future__ import annotations

import os
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..direct import direct_get
from ..files import MiB, dd_all, dd_read
from ..mounts import minimal_mount, mount
from ..probe import drop_caches, rss_peak_mib, timed_cpu
from ..report import Bench
from ..servers import Portal


def reads(bench: Bench, portal: Portal, backend: str, big: Path, name: str, store_pid: int) -> None:
    """`store_pid`: the process that serves the bytes (our server, or moto), whose CPU
    per GiB shows what the two paths cost the store on these shared cores."""
    size = big.stat().st_size
    where, direct = f"1 read ({backend})", f"read-direct-{backend}"
    drop_caches()
    t, (store_direct,) = timed_cpu(lambda: direct_get(portal, name), [store_pid])
    bench.add(direct, where, "direct streaming GET", size / t / 1e6, "MB/s")
    # Taking turns going first: the store's cost per GET varies with its history (moto's).
    first = bench.runs(direct) % 2
    got = _read_both(bench, portal, name, size, store_pid, first)
    got["store_direct"] = store_direct
    _add_reads(bench, backend, got)
    _add_read_cpu(bench, backend, got, size / 1024**3)


def _read_both(
    bench: Bench, portal: Portal, name: str, size: int, store_pid: int, first: int
) -> dict[str, float]:
    """Cold read (and re-read) through portalfs and through the minimal mount, in turn."""
    got: dict[str, float] = {}

    def portalfs() -> None:
        with mount(portal, bench.workdir) as (point, pid):
            drop_caches()
            t, (got["store_cold"], got["daemon_cold"]) = timed_cpu(
                lambda: dd_read(point / name), [store_pid, pid]
            )
            got["cold"] = size / t / 1e6
            t, (got["store_warm"],) = timed_cpu(lambda: dd_read(point / name), [store_pid])
            got["warm"] = size / t / 1e6
            got["rss"] = rss_peak_mib(pid)

    def minimal() -> None:
        with minimal_mount(portal, bench.workdir, name, size) as (point, pid):
            drop_caches()
            t, (got["store_minimal"], got["daemon_minimal"]) = timed_cpu(
                lambda: dd_read(point / "file"), [store_pid, pid]
            )
            got["minimal"] = size / t / 1e6

    for run in (portalfs, minimal) if first else (minimal, portalfs):
        run()
    return got


def _add_reads(bench: Bench, backend: str, got: dict[str, float]) -> None:
    where, direct = f"1 read ({backend})", f"read-direct-{backend}"
    bench.add(f"read-cold-{backend}", where, "portalfs cold dd bs=1M", got["cold"], "MB/s", direct)
    bench.add(
        f"read-minimal-{backend}",
        where,
        "minimal Python mount of the same GET, cold dd",
        got["minimal"],
        "MB/s",
        direct,
    )
    bench.add(
        f"read-warm-{backend}",
        f"2 re-read ({backend})",
        "portalfs second dd",
        got["warm"],
        "MB/s",
        ratio_to=f"read-cold-{backend}",
    )
    memory = f"7 memory ({backend})"
    bench.add(f"rss-read-{backend}", memory, "daemon peak RSS, reading", got["rss"], "MiB")


def _add_read_cpu(bench: Bench, backend: str, got: dict[str, float], gib: float) -> None:
    for key, measure, value in (
        ("store-direct", "store's CPU per GiB, direct GET", got["store_direct"]),
        ("store-cold", "store's CPU per GiB, portalfs cold read", got["store_cold"]),
        ("daemon-cold", "daemon's CPU per GiB, cold read", got["daemon_cold"]),
        ("store-warm", "store's CPU per GiB, re-read (0: no GET)", got["store_warm"]),
        ("store-minimal", "store's CPU per GiB, minimal mount", got["store_minimal"]),
        ("daemon-minimal", "minimal mount's CPU per GiB", got["daemon_minimal"]),
    ):
        bench.add(f"cpu-{key}-{backend}", f"1 read ({backend})", measure, value / gib, "s")


def parallel_reads(
    bench: Bench, portal: Portal, backend: str, names: list[str], file_bytes: int, store_pid: int
) -> None:
    """All files at once, as a processing job's workers read them: cold `dd`s on one mount
    against direct GETs, one thread each. The store's CPU per GiB shows GETs beyond one per
    file (moto loads the whole object for each), and our server's log counts them on the
    local backend."""
    total = len(names) * file_bytes
    target = f"1 read, {len(names)} files at once ({backend})"

    def direct_all() -> None:
        with ThreadPoolExecutor(len(names)) as pool:
            list(pool.map(lambda name: direct_get(portal, name), names))

    drop_caches()
    t, (store_direct,) = timed_cpu(direct_all, [store_pid])
    bench.add(f"par-direct-{backend}", target, "direct streaming GETs", total / t / 1e6, "MB/s")
    store_mount, gets = _parallel_mount(bench, portal, backend, names, file_bytes, store_pid)
    if backend == "local":
        bench.add(f"par-gets-{backend}", target, "GETs per file", gets / len(names), "GET/file")
    for key, measure, value in (
        ("direct", "store's CPU per GiB, direct GETs", store_direct),
        ("mount", "store's CPU per GiB, portalfs", store_mount),
    ):
        bench.add(f"par-cpu-{key}-{backend}", target, measure, value / (total / 1024**3), "s")


def _parallel_mount(
    bench: Bench, portal: Portal, backend: str, names: list[str], file_bytes: int, store_pid: int
) -> tuple[float, int]:
    """The mount's turn of parallel_reads: the store's CPU seconds and the GETs it saw."""
    total = len(names) * file_bytes
    target = f"1 read, {len(names)} files at once ({backend})"
    with mount(portal, bench.workdir) as (point, pid):
        drop_caches()
        before = portal.requests_seen("GET", "/storage/")
        t, (store_mount,) = timed_cpu(lambda: dd_all(point, names), [store_pid])
        gets = portal.requests_seen("GET", "/storage/") - before
        bench.add(
            f"par-mount-{backend}",
            target,
            f"portalfs cold dd of {len(names)} x {file_bytes // MiB} MiB",
            total / t / 1e6,
            "MB/s",
            ratio_to=f"par-direct-{backend}",
        )
        bench.add(
            f"rss-par-{backend}",
            f"7 memory ({backend})",
            f"daemon peak RSS, reading {len(names)} files at once",
            rss_peak_mib(pid),
            "MiB",
        )
    return store_mount, gets


def random_reads(bench: Bench, portal: Portal, big: Path, name: str, count: int) -> None:
    """Figure 3: random reads cost at most one ranged GET each."""
    size = big.stat().st_size
    rng = random.Random(7)
    with mount(portal, bench.workdir) as (point, _):
        before = portal.requests_seen("GET", "/storage/")
        fd = os.open(point / name, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        try:
            for _ in range(count):
                length = rng.randint(4096, 65536)
                offset = rng.randrange(0, size - length)
                os.pread(fd, length, offset)
        finally:
            os.close(fd)
        gets = portal.requests_seen("GET", "/storage/") - before
    bench.add(
        "random-gets",
        "3 random reads (local)",
        f"ranged GETs per read ({count} reads)",
        gets / count,
        "GET/read",
    )
