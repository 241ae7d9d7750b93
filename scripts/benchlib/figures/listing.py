"""Figure 6: a cold `ls -lR` and `find` of a folder tree through the mount, against the
seed's list calls alone, and the listing requests the mount made."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ..direct import direct_list_all
from ..mounts import mount
from ..probe import timed
from ..report import Bench
from ..servers import Portal
from . import WAN_RTT_S


def listings(
    bench: Bench, portal: Portal, prefix: str, files: int, wan: bool = False, many: bool = False
) -> None:
    """`many`: the 10,000 files in 100 folders, where fixed costs weigh less."""
    key = "-wan" if wan else "-10k" if many else ""
    target = f" ({WAN_RTT_S * 1000:.0f} ms RTT)" if wan else " (10,000 files)" if many else ""
    t_direct = timed(lambda: direct_list_all(portal, prefix + "/"))
    bench.add(
        f"ls-direct{key}",
        f"6 ls -lR{target}",
        f"listing requests alone ({files} files)",
        t_direct,
        "s",
    )
    with mount(portal, bench.workdir) as (point, _):
        before = portal.requests_seen("POST", "/files")
        t = timed(lambda: _walk(["ls", "-lR"], point / prefix))
        lists = portal.requests_seen("POST", "/files") - before
    bench.add(
        f"ls-mount{key}",
        f"6 ls -lR{target}",
        "portalfs cold ls -lR",
        t,
        "s",
        ratio_to=f"ls-direct{key}",
    )
    bench.add(
        f"ls-requests{key}",
        f"6 ls -lR{target}",
        "listing requests made by ls -lR",
        lists,
        "requests",
    )
    with mount(portal, bench.workdir) as (point, _):
        t = timed(lambda: _walk(["find"], point / prefix))
    bench.add(
        f"find-mount{key}", f"6 find{target}", "portalfs cold find", t, "s", f"ls-direct{key}"
    )


def _walk(cmd: list[str], folder: Path) -> None:
    subprocess.run([*cmd, str(folder)], check=True, stdout=subprocess.DEVNULL)
