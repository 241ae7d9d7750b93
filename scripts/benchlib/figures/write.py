"""Figures 4 and 7 while writing: one large file written until stored, through the mount
and by the seed's client, and the daemon's memory meanwhile. Each object is deleted once
timed, so the store's state stays put."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from ..direct import delete, seed_upload
from ..mounts import mount
from ..probe import drop_caches, rss_peak_mib, timed
from ..report import Bench
from ..servers import Portal, fresh_s3_portal


def writes(bench: Bench, portal: Portal, backend: str, big: Path) -> None:
    # They take turns going first, and each object is deleted once timed; on S3 each
    # gets a fresh moto (fresh_s3_portal says why).
    turn = bench.next_turn(f"write-{backend}")
    measures = [_write_direct, _write_mount]
    for measure in measures if turn % 2 == 0 else measures[::-1]:
        if backend == "s3":
            with fresh_s3_portal(bench.workdir) as (_, fresh):
                measure(bench, fresh, backend, big)
        else:
            measure(bench, portal, backend, big)


def _write_direct(bench: Bench, portal: Portal, backend: str, big: Path) -> None:
    name = f"direct-{time.time_ns()}"
    drop_caches()
    bench.add(
        f"write-direct-{backend}",
        f"4 write ({backend})",
        "direct md5+link+PUT",
        big.stat().st_size / timed(lambda: seed_upload(portal, name, big)) / 1e6,
        "MB/s",
    )
    delete(portal, name)


def _write_mount(bench: Bench, portal: Portal, backend: str, big: Path) -> None:
    name = f"w-{time.time_ns()}.bin"
    with mount(portal, bench.workdir) as (point, pid):
        drop_caches()
        t = timed(lambda: subprocess.run(["cp", str(big), str(point / name)], check=True))
        bench.add(
            f"write-mount-{backend}",
            f"4 write ({backend})",
            "portalfs cp until close",
            big.stat().st_size / t / 1e6,
            "MB/s",
            ratio_to=f"write-direct-{backend}",
        )
        bench.add(
            f"rss-write-{backend}",
            f"7 memory ({backend})",
            "daemon peak RSS, writing",
            rss_peak_mib(pid),
            "MiB",
        )
    delete(portal, name)
