"""The journal of unsent files through a real mount: what a killed mount leaves behind is
cleaned at the next start, and nothing a close() kept is lost."""

from __future__ import annotations

import contextlib
import os
import subprocess

from tests.faults import Delay
from tests.mount.conftest import wait_for
from tests.portal_fixtures import clients


def test_a_killed_mounts_spool_is_cleaned_at_the_next_start_and_nothing_unsent_is_lost(
    mount_portal, portal
):
    m = mount_portal()
    portal.server.app.state.faults.add("storage_put", Delay(30.0))
    # One file closed, its upload stalled (journaled: a link to its spool); one still open.
    closing = subprocess.Popen(
        ["cp", "/dev/stdin", str(m.path / "closed.bin")], stdin=subprocess.PIPE
    )
    closing.stdin.write(b"c" * 300_000)
    closing.stdin.close()
    open_writer = open(m.path / "open.bin", "wb")  # noqa: SIM115 - killed with the mount
    open_writer.write(b"o" * 200_000)
    open_writer.flush()
    wait_for(lambda: any((m.cache_dir / "unsent").glob("*.data")), 10, "the journal entry")
    spool = m.cache_dir / "spool"
    assert len(list(spool.iterdir())) == 2  # both spools, 500 KB, before the kill
    m.process.kill()
    m.process.wait(10)
    subprocess.run(["fusermount3", "-uz", str(m.path)], check=False)
    closing.kill()
    portal.server.app.state.faults.clear()
    later = mount_portal("--cache-dir", str(m.cache_dir))
    # Before: both spool files stayed for good (and the journal's link kept the first's
    # bytes on disk even after it was sent).
    assert list(spool.iterdir()) == []
    wait_for(lambda: not list((m.cache_dir / "unsent").iterdir()), 20, "the resend")
    assert (later.path / "closed.bin").read_bytes() == b"c" * 300_000
    assert not (later.path / "open.bin").exists()  # never closed: never promised
    with contextlib.suppress(OSError):  # its mount is gone
        open_writer.close()


def test_rm_of_a_file_still_open_removes_it_and_nothing_is_stored_under_another_name(
    mount_portal, portal
):
    m = mount_portal("--allow-delete")
    (m.path / "d").mkdir()
    (m.path / "d" / "keep.txt").write_bytes(b"keep")
    with open(m.path / "d" / "draft.txt", "wb") as f:
        f.write(b"first")
        f.flush()
        os.fsync(f.fileno())  # stored once
        os.unlink(m.path / "d" / "draft.txt")
        # Before: the kernel renamed it to .fuse_hidden..., which the portal then listed
        # (and kept for good when the mount died before the close).
        assert sorted(os.listdir(m.path / "d")) == ["keep.txt"]
        f.write(b" and more")
    client, _ = clients(portal.member)
    assert [e.name for e in client.iter_folder("d")] == ["keep.txt"]
