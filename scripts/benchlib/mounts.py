"""FUSE daemons under test, each on a fresh mount point in the work folder: portalfs's
mount, and scripts/minimal_mount.py (the floor of any Python mount). Each is unmounted on
leaving, and a hung one killed; nothing here measures.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .direct import download_url
from .probe import wait_for
from .servers import PY, Portal

MINIMAL_MOUNT = Path(__file__).resolve().parent.parent / "minimal_mount.py"


@contextmanager
def mount(
    portal: Portal, workdir: Path, member: bool = True, *flags: str
) -> Iterator[tuple[Path, int]]:
    point = Path(tempfile.mkdtemp(dir=workdir, prefix="mnt-"))
    cache = Path(tempfile.mkdtemp(dir=workdir, prefix="cache-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("EI_")}
    env.update(portal.env(member), HOME=str(workdir))
    cmd = [PY, "-m", "portalfs", "mount", str(point), "-f", "--cache-dir", str(cache), *flags]
    with serving(cmd, env, point, "mount") as pid:
        yield point, pid


@contextmanager
def minimal_mount(
    portal: Portal, workdir: Path, name: str, size: int
) -> Iterator[tuple[Path, int]]:
    """scripts/minimal_mount.py serving `name` as <point>/file: the floor of any Python mount."""
    point = Path(tempfile.mkdtemp(dir=workdir, prefix="minimal-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("EI_")}
    env.update(MINIMAL_MOUNT_URL=download_url(portal, name), MINIMAL_MOUNT_SIZE=str(size))
    cmd = [PY, str(MINIMAL_MOUNT), str(point)]
    with serving(cmd, env, point, "minimal mount") as pid:
        yield point, pid


@contextmanager
def serving(
    cmd: list[str], env: dict[str, str], point: Path, what: str, readahead: bool = True
) -> Iterator[int]:
    """Run a FUSE daemon until its mount is up (and, with `readahead`, has raised its
    read-ahead, as portalfs does just after the mount appears); unmount it at the end."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.path.ismount(point) or proc.poll() is not None, 30, what)
        if not os.path.ismount(point):
            raise RuntimeError(f"{what} did not mount (exit status {proc.poll()})")
        if readahead:
            wait_for(lambda: _readahead_set(point), 5, "read-ahead")
        yield proc.pid
    finally:
        subprocess.run(["fusermount3", "-u", str(point)], check=False, capture_output=True)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:  # hung: leave neither it nor its mount behind
            proc.kill()
            subprocess.run(["fusermount3", "-uz", str(point)], check=False, capture_output=True)


def _readahead_set(point: Path) -> bool:
    dev = os.stat(point).st_dev
    knob = Path(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb")
    return os.geteuid() != 0 or not knob.exists() or knob.read_text().strip() != "128"
