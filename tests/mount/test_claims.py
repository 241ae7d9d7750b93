"""Real mounts checking SEMANTICS.md claims: attributes from the listing, permissions, a
read-only mount refusing every change, and SIGTERM with a file still being written."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
from datetime import UTC, datetime

import pytest
import requests

from tests.portal_fixtures import clients

from .conftest import MOUNT_TIMEOUT_S, wait_for

ADDED = datetime(2001, 2, 3, 4, 5, 6, 789000, tzinfo=UTC)


def listed(portal, name: str) -> dict:
    """The raw listing entry of `name` at the portal's top, as the API sends it."""
    resp = requests.post(
        f"{portal.api_url}/api/portals/{portal.portal_id}/files",
        json={"prefix": ""},
        headers={"x-token": portal.token},
        timeout=10,
    )
    return next(f for f in resp.json()["files"] if f["name"] == name)


def test_stat_shows_the_listed_added_date_and_the_mounting_or_given_owner(
    mount_portal, portal, tmp_path
):
    # Straight into the local store with a past time, so the date can only come from it.
    stored = tmp_path / "server" / "objects" / f"portal-{portal.portal_id}" / "dated.txt"
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_bytes(b"dated")
    os.utime(stored, ns=(int(ADDED.timestamp()) * 10**9 + 789 * 10**6,) * 2)
    added = listed(portal, "dated.txt")["addedDate"]
    assert added == "2001-02-03T04:05:06.789Z"
    given = mount_portal("--uid", "1234", "--gid", "2345").path / "dated.txt"
    st = given.stat()
    assert (st.st_uid, st.st_gid) == (1234, 2345)
    assert round(st.st_mtime_ns, -6) == int(ADDED.timestamp() * 1000) * 10**6
    st = (mount_portal().path / "dated.txt").stat()
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
    assert round(st.st_mtime_ns, -6) == int(ADDED.timestamp() * 1000) * 10**6


def test_member_files_are_rw_r__r__(mount_portal):
    m = mount_portal()
    (m.path / "m.txt").write_bytes(b"m")
    assert stat.filemode((m.path / "m.txt").stat().st_mode) == "-rw-r--r--"


def test_read_only_mount_refuses_chmod_chown_and_touch(mount_portal):
    mount_portal().path.joinpath("r.txt").write_bytes(b"r")
    m = mount_portal("--read-only")
    f = m.path / "r.txt"
    assert stat.filemode(f.stat().st_mode) == "-r--r--r--"
    for change in (lambda: f.chmod(0o600), lambda: os.chown(f, 1, 1), lambda: os.utime(f)):
        with pytest.raises(OSError) as info:
            change()
        assert info.value.errno == errno.EROFS
    touch = subprocess.run(["touch", str(f)], capture_output=True, text=True, timeout=30)
    assert touch.returncode != 0 and "Read-only file system" in touch.stderr


# Writes half, says "open", waits for a line on stdin, writes the rest and closes.
WRITER = """
import sys
with open(sys.argv[1], "wb") as f:
    f.write(b"a" * 1_000_000)
    f.flush()
    print("open", flush=True)
    sys.stdin.readline()
    f.write(b"b" * 1_000_000)
print("closed", flush=True)
"""


def test_sigterm_lets_a_file_being_written_finish_and_upload(mount_portal, portal):
    m = mount_portal()
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(m.path / "big.bin")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline() == "open\n"
        m.process.send_signal(signal.SIGTERM)
        wait_for(lambda: not os.path.ismount(m.path), MOUNT_TIMEOUT_S, "the lazy unmount")
        assert m.process.poll() is None  # still serving the open file
        out, _ = writer.communicate("go\n", timeout=MOUNT_TIMEOUT_S)
    finally:
        writer.kill()
    assert writer.returncode == 0 and out == "closed\n"
    assert m.process.wait(timeout=MOUNT_TIMEOUT_S) == 0
    client, _ = clients(portal.member)
    body = requests.get(client.download_link("big.bin"), timeout=10).content
    assert body == b"a" * 1_000_000 + b"b" * 1_000_000
    # Nothing left behind: the kernel may end a lazily unmounted mount without releasing
    # its last file (found by a newcomer trial: a 20 MB spool stayed after every SIGTERM).
    assert list((m.cache_dir / "spool").iterdir()) == []
    assert list((m.cache_dir / "unsent").iterdir()) == []
