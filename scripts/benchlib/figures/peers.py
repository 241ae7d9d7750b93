"""Figures 1, 4, 5 and 6 against rclone and s3fs mounting the same bucket as the
S3-backed portal; a peer that is missing or fails a measure is noted, not fatal."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from ..files import dd_read
from ..mounts import mount
from ..peers import (
    PORTAL_KEY_PREFIX,
    RCLONE_LOG,
    peer_mount,
    rclone_uploaded,
    s3_client,
    stored_size,
)
from ..probe import drop_caches, timed, wait_for
from ..report import Bench
from ..servers import Portal, fresh_s3_portal


def peers(
    bench: Bench, portal: Portal, aws: dict[str, str], big: Path, tree: Path, count: int
) -> None:
    with mount(portal, bench.workdir) as (point, _):
        drop_caches()
        t = timed(lambda: _ls(point / "listing"))
    bench.add("ls-s3-portalfs", "6 ls -lR (s3)", f"portalfs cold ls -lR ({count} files)", t, "s")
    for kind in ("rclone", "s3fs"):
        if shutil.which(kind) is None:
            bench.notes.append(f"{kind} is not installed: run scripts/bench --peers")
            continue
        try:
            with peer_mount(kind, aws, bench.workdir) as point:
                _peer_measures(bench, kind, point, big, tree, count)
            # The timed 1 GiB write on a fresh moto, as ours (fresh_s3_portal says why).
            with fresh_s3_portal(bench.workdir) as (fresh, _):
                s3_client(fresh).put_object(Bucket="bench", Key=f"{PORTAL_KEY_PREFIX}/.keep")
                with peer_mount(kind, fresh, bench.workdir) as point:
                    _peer_write(bench, kind, point, fresh, big)
        except subprocess.CalledProcessError as exc:
            bench.notes.append(f"{kind} write: {exc.cmd[0]} exited {exc.returncode}")
        except RuntimeError as exc:
            bench.notes.append(f"{kind}: {exc}")


def _ls(folder: Path) -> None:
    subprocess.run(["ls", "-lR", str(folder)], check=True, stdout=subprocess.DEVNULL)


def _peer_measures(bench: Bench, kind: str, point: Path, big: Path, tree: Path, count: int) -> None:
    """Each measure on its own: one that fails is noted and the others still run."""
    measures: list[tuple[str, Callable[[], None]]] = [
        ("read", lambda: _peer_read(bench, kind, point, big)),
        ("ls", lambda: _peer_listing(bench, kind, point)),
        ("small files", lambda: _peer_small(bench, kind, point, tree, count)),
    ]
    for name, measure in measures:
        try:
            measure()
        except subprocess.CalledProcessError as exc:
            bench.notes.append(f"{kind} {name}: {exc.cmd[0]} exited {exc.returncode}")
        except RuntimeError as exc:
            bench.notes.append(f"{kind} {name}: {exc}")


def _peer_read(bench: Bench, kind: str, point: Path, big: Path) -> None:
    drop_caches()
    bench.add(
        f"read-{kind}",
        "1 read (s3)",
        f"{kind} cold dd bs=1M",
        big.stat().st_size / timed(lambda: dd_read(point / "big.bin")) / 1e6,
        "MB/s",
        ratio_to="read-cold-s3",
    )


def _peer_listing(bench: Bench, kind: str, point: Path) -> None:
    t = timed(lambda: _ls(point / "listing"))
    bench.add(f"ls-{kind}", "6 ls -lR (s3)", f"{kind} cold ls -lR", t, "s", "ls-s3-portalfs")


def _peer_small(bench: Bench, kind: str, point: Path, tree: Path, count: int) -> None:
    t = timed(
        lambda: subprocess.run(
            ["cp", "-r", str(tree), str(point / f"cp-{time.time_ns()}")], check=True
        )
    )
    bench.add(f"small-{kind}", "5 small files (s3)", f"{kind} cp -r", count / t, "files/s")


def _peer_write(bench: Bench, kind: str, point: Path, aws: dict[str, str], big: Path) -> None:
    size = big.stat().st_size
    name = f"w-{time.time_ns()}.bin"
    s3 = s3_client(aws)
    log = bench.workdir / RCLONE_LOG
    start = log.stat().st_size if log.exists() else 0

    def copy_until_stored() -> None:
        subprocess.run(["cp", str(big), str(point / name)], check=True)
        if kind == "rclone":
            # rclone's close() returns before its upload: wait until it logs the upload
            # done (its MD5 check against the PUT's ETag passed). Not by polling moto
            # with HEADs: moto computes a new object's ETag lazily, unlocked, from a
            # shared buffer, so a HEAD during the PUT corrupts the ETag the PUT answers
            # (objects > 16 MiB); rclone then deletes the object as corrupted.
            wait_for(lambda: rclone_uploaded(log, start, name), 120, "rclone's upload")
        wait_for(lambda: stored_size(s3, name) == size, 120, f"{kind}'s upload")

    t = timed(copy_until_stored)
    bench.add(
        f"write-{kind}",
        "4 write (s3)",
        f"{kind} cp until stored",
        size / t / 1e6,
        "MB/s",
        ratio_to="write-mount-s3",
    )
