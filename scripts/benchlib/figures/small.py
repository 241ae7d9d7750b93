"""Figure 5: many small files written through the mount (`cp -r`) and by `portalfs
upload`, against the seed's sequential client, on loopback or over a WAN."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from ..direct import seed_upload
from ..mounts import mount
from ..probe import timed
from ..report import Bench
from ..servers import PY, Portal
from . import WAN_RTT_S


def small_files(bench: Bench, portal: Portal, tree: Path, count: int, wan: bool = False) -> None:
    files = sorted(p for p in tree.rglob("*") if p.is_file())
    tag = time.time_ns()
    key = "-wan" if wan else ""
    target = f"5 small files{f' ({WAN_RTT_S * 1000:.0f} ms RTT)' if wan else ''}"
    t = timed(lambda: [seed_upload(portal, f"seed-{tag}/{p.name}", p) for p in files])
    bench.add(
        f"small-seed{key}",
        target,
        f"seed client, sequential ({count} x 16 KiB)",
        count / t,
        "files/s",
    )
    t = _cp_into_mount(bench, portal, tree, f"cp-{tag}")
    bench.add(
        f"small-cp{key}",
        target,
        "portalfs cp -r",
        count / t,
        "files/s",
        ratio_to=f"small-seed{key}",
    )
    t = timed(lambda: _cli_upload(bench, portal, tree, f"up-{tag}"))
    bench.add(
        f"small-upload{key}",
        target,
        "portalfs upload (concurrent)",
        count / t,
        "files/s",
        ratio_to=f"small-seed{key}",
    )


def _cp_into_mount(bench: Bench, portal: Portal, tree: Path, folder: str) -> float:
    """Seconds `cp -r` of `tree` into `folder` of a fresh token-only mount took."""
    with mount(portal, bench.workdir, False) as (point, _):
        return timed(
            lambda: subprocess.run(["cp", "-r", str(tree), str(point / folder)], check=True)
        )


def _cli_upload(bench: Bench, portal: Portal, tree: Path, folder: str) -> None:
    env = {**os.environ, **portal.env(False), "HOME": str(bench.workdir)}
    subprocess.run(
        [PY, "-m", "portalfs", "upload", "-q", str(tree), "--to", folder],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
