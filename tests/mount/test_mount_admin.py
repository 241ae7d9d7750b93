"""Through a real FUSE mount: who may enter it, how the kernel sees it, and clearing a mount
whose process was killed."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import MOUNT_TIMEOUT_S, Mount, unmount, wait_for

pytestmark = pytest.mark.timeout(120)

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def portalfs(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "portalfs", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=MOUNT_TIMEOUT_S * 2,
    )


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A folder other users can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="portalfs-public-"))
    path.chmod(0o755)
    yield path
    for child in path.iterdir():
        subprocess.run(["fusermount3", "-uz", str(child)], check=False, capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def mount_env(portal, tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EI_")}
    env.update(portal.env(member=True), HOME=str(tmp_path))
    env.pop("XDG_CONFIG_HOME", None)
    return env


def start(path: Path, cache: Path, env: dict, *flags: str) -> Mount:
    """`portalfs mount -f` at `path`, waited for until it is mounted."""
    with contextlib.suppress(FileExistsError):  # a dead mount there fails exist_ok's stat
        path.mkdir()
    log_path = cache.with_suffix(".log")
    command = [sys.executable, "-m", "portalfs", "mount", str(path), "-f", "--cache-dir"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*command, str(cache), *flags], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    mount = Mount(path, process, cache, log_path)
    wait_for(lambda: live(path) or process.poll() is not None, MOUNT_TIMEOUT_S, "the mount")
    assert live(path), mount.log()
    return mount


def live(path: Path) -> bool:
    """A mount whose process answers (a killed one's stays mounted, but fails statvfs)."""
    try:
        return os.path.ismount(path) and os.statvfs(path) is not None
    except OSError:
        return False


def killed(path: Path, cache: Path, env: dict) -> Mount:
    """A mount at `path` whose process was killed with SIGKILL: the kernel keeps it."""
    # TTL 0: every stat() reaches the dead mount, as any does once its TTL has passed.
    mount = start(path, cache, env, "--metadata-ttl", "0")
    mount.process.send_signal(signal.SIGKILL)
    mount.process.wait()
    return mount


def mount_options(path: Path) -> set[str]:
    """The per-mount options the kernel shows for `path` (field 6 of mountinfo)."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == str(path):
            return set(fields[5].split(","))
    raise AssertionError(f"{path} is not in /proc/self/mountinfo")


def test_allow_other_given_as_o_still_checks_permissions(public_dir, tmp_path, mount_env):
    # -o allow_other used to skip default_permissions: nobody's rm then deleted the
    # portal file with the mounter's login.
    flags = ("--allow-delete", "-o", "allow_other")
    mount = start(public_dir / "mnt", tmp_path / "cache", mount_env, *flags)
    try:
        (mount.path / "kept.txt").write_bytes(b"mine\n")
        as_nobody = subprocess.run(
            [*NOBODY, "rm", "-f", str(mount.path / "kept.txt")], capture_output=True, text=True
        )
        assert as_nobody.returncode != 0 and "Permission denied" in as_nobody.stderr
        assert (mount.path / "kept.txt").read_bytes() == b"mine\n"
        # Reading what the mode allows still works for the other user.
        read = subprocess.run([*NOBODY, "cat", str(mount.path / "kept.txt")], capture_output=True)
        assert read.returncode == 0 and read.stdout == b"mine\n"
    finally:
        unmount(mount)


def test_default_permissions_cannot_be_switched_off(public_dir, tmp_path, mount_env):
    (public_dir / "mnt").mkdir()
    done = portalfs(
        "mount", str(public_dir / "mnt"), "-f", "--cache-dir", str(tmp_path / "cache"),
        "-o", "allow_other,default_permissions=0", env=mount_env,
    )  # fmt: skip
    assert done.returncode == 2 and "default_permissions takes no value" in done.stderr
    assert not os.path.ismount(public_dir / "mnt")


def test_read_only_mount_is_ro_for_the_kernel(tmp_path, mount_env):
    mount = start(tmp_path / "mnt", tmp_path / "cache", mount_env, "--read-only")
    try:
        assert "ro" in mount_options(mount.path)
    finally:
        unmount(mount)
    writable = start(tmp_path / "mnt", tmp_path / "cache", mount_env)
    try:
        assert "rw" in mount_options(writable.path)
    finally:
        unmount(writable)


def test_a_killed_mount_is_cleared_by_unmount_and_by_a_new_mount(tmp_path, mount_env):
    mnt, cache = tmp_path / "mnt", tmp_path / "cache"
    try:
        killed(mnt, cache, mount_env)
        with pytest.raises(OSError) as dead:
            os.statvfs(mnt)
        assert dead.value.errno == errno.ENOTCONN
        # Was: "... does not exist".
        done = portalfs("unmount", str(mnt), env=mount_env)
        assert done.returncode == 0, done.stderr
        assert mnt.is_dir() and not os.path.ismount(mnt)

        killed(mnt, cache, mount_env)
        # Was: "Transport endpoint is not connected", and no hint.
        again = start(mnt, cache, mount_env)
        assert "unmounted what a killed mount left" in again.log()
        (mnt / "after.txt").write_bytes(b"works\n")
        assert (mnt / "after.txt").read_bytes() == b"works\n"
        unmount(again)
    finally:
        subprocess.run(["fusermount3", "-uz", str(mnt)], check=False, capture_output=True)


def test_a_daemon_mounts_log_is_private(tmp_path, mount_env):
    # The new-user trial found mount.log created 0644 in the 0700 cache folder.
    mnt, cache = tmp_path / "mnt", tmp_path / "cache"
    mnt.mkdir()
    done = portalfs("mount", str(mnt), "--cache-dir", str(cache), env=mount_env)
    try:
        assert done.returncode == 0, done.stderr
        assert stat.S_IMODE((cache / "mount.log").stat().st_mode) == 0o600
    finally:
        assert portalfs("unmount", str(mnt), env=mount_env).returncode == 0
