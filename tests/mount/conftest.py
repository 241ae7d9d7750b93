"""Real FUSE mounts: `portalfs mount -f` in a subprocess against the portal server on a
loopback port; every mount is unmounted with fusermount3 -u when its test ends."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.portal_fixtures import Portal, portal  # noqa: F401

MOUNT_TIMEOUT_S = 20


@dataclass
class Mount:
    path: Path
    process: subprocess.Popen
    cache_dir: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll `condition` until it holds; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def unmount(mount: Mount) -> None:
    if os.path.ismount(mount.path):
        subprocess.run(["fusermount3", "-u", str(mount.path)], check=False, capture_output=True)
    try:
        mount.process.wait(timeout=MOUNT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        mount.process.kill()
        subprocess.run(["fusermount3", "-uz", str(mount.path)], check=False)
        mount.process.wait()


@pytest.fixture
def mount_portal(portal, tmp_path) -> Iterator[Callable[..., Mount]]:  # noqa: F811
    """mount_portal(member=True, *flags) mounts the test portal and returns the Mount."""
    mounts: list[Mount] = []

    def make(
        *flags: str, member: bool = True, env: dict | None = None, relative: bool = False
    ) -> Mount:
        n = len(mounts)
        path, cache = tmp_path / f"mnt{n}", tmp_path / f"cache{n}"
        path.mkdir()
        log_path = tmp_path / f"mount{n}.log"
        full_env = {**os.environ, **portal.env(member), **(env or {})}
        full_env.pop("XDG_CONFIG_HOME", None)
        full_env["HOME"] = str(tmp_path)  # no saved login from the machine leaks in
        command = [
            sys.executable,
            "-m",
            "portalfs",
            "mount",
            # relative=True: paths as a user in tmp_path would type them.
            path.name if relative else str(path),
            "-f",
            "--cache-dir",
            cache.name if relative else str(cache),
            *flags,
        ]
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command, env=full_env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path
            )
        mount = Mount(path, process, cache, log_path)
        mounts.append(mount)
        wait_for(
            lambda: os.path.ismount(path) or process.poll() is not None,
            MOUNT_TIMEOUT_S,
            "the mount",
        )
        assert os.path.ismount(path), mount.log()
        return mount

    yield make
    for mount in mounts:
        unmount(mount)
