"""fio with checksummed blocks through a member mount: random writes verified while the
files are open, and again from the portal on a fresh mount (scripts/setup installs fio)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

JOBS = 4


def fio(directory: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [
        "fio",
        "--name=verify",
        f"--directory={directory}",
        "--rw=randwrite",
        "--bs=4k",
        "--size=4M",
        f"--numjobs={JOBS}",
        "--verify=crc32c",
        "--verify_fatal=1",
        "--group_reporting",
        "--verify_state_save=0",  # else a failed verify leaves state files in the cwd
        *extra,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=90)


def test_fio_verify_crc32c_four_jobs(mount_portal):
    writer = mount_portal()
    (writer.path / "fio").mkdir()
    first = fio(writer.path / "fio")
    assert first.returncode == 0 and "err= 0" in first.stdout, first.stdout + first.stderr
    assert "verify" in first.stdout

    # Read back from the portal itself: a new mount has no page cache and no spool.
    reader = mount_portal()
    again = fio(reader.path / "fio", "--verify_only")
    assert again.returncode == 0 and "err= 0" in again.stdout, again.stdout + again.stderr

    # And the check can fail: one changed block is caught.
    victim = reader.path / "fio" / "verify.2.0"
    with open(victim, "r+b") as f:
        f.seek(1024 * 1024)
        f.write(b"\0" * 4096)
    third = mount_portal()
    broken = fio(third.path / "fio", "--verify_only")
    assert broken.returncode != 0
    assert "verify" in (broken.stdout + broken.stderr).lower()
