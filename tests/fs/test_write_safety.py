"""No byte lost: what the mount does with a file's bytes when the upload, the journal or the
disk fails, when the portal refuses a file for good, and when an open file is deleted or
renamed. PortalFS called directly, against a real portal server."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
import subprocess
import threading
from pathlib import Path

import pytest
import requests

from portalfs.client import errors
from portalfs.config import HttpConfig, MountConfig
from portalfs.fs.factory import build_portalfs
from portalfs.write.journal import Journal
from tests.fs.test_portalfs import oserror, read_file, write_file
from tests.portal_fixtures import TEST_HTTP, clients, start_portal


def listed(portal, folder: str = "") -> dict[str, int]:
    """Name -> size of the files the portal lists in `folder`, asked afresh."""
    with requests.post(
        f"{portal.api_url}/api/portals/{portal.portal_id}/files",
        json={"prefix": folder},
        headers={"x-token": portal.token},
        timeout=10,
    ) as resp:
        return {f["name"]: f.get("size", 0) for f in resp.json()["files"] if f["type"] == "file"}


def upload_fails(portal, call, *args) -> None:
    """`call(*args)` with the upload link answering 503 to every try of one upload."""
    portal.server.app.state.faults.fail_next("upload_link", 503, times=3)
    with pytest.raises(errors.UnavailableError):
        call(*args)


@pytest.fixture
def small_portal(tmp_path):
    """(server, PortalFS) of a portal whose server takes files of 1000 bytes at most."""
    small = start_portal(tmp_path / "server", max_file_bytes=1000)
    fs = build_portalfs(small.member, MountConfig(cache_dir=str(tmp_path / "c")), TEST_HTTP)
    yield small, fs
    fs.close()
    small.server.stop()


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs, to be filled up; unmounted after the test."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def no_room_for_records(monkeypatch):
    """The journal's record cannot be written: what ext4 answers a new xattr when the inode
    has no room left for it and the disk no free block (tmpfs keeps xattrs apart from its
    size limit, so filling it is not enough)."""

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "setxattr", full)


def fill(folder: Path) -> None:
    """Take every free byte of the file system `folder` is on."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


def test_a_full_journal_disk_still_uploads_the_file(portal, tiny_disk, no_room_for_records):
    fs = build_portalfs(portal.member, MountConfig(cache_dir=str(tiny_disk)), TEST_HTTP)
    fh = fs.create("/safe.bin")
    fs.write(fh, 0, b"s" * 65536)
    fill(tiny_disk)  # the spool has its bytes; the journal's record finds no room
    fs.flush(fh)  # before: the record's ENOSPC failed close() with no upload tried
    fs.release(fh)
    assert listed(portal) == {"safe.bin": 65536}
    assert read_file(fs, "/safe.bin") == b"s" * 65536


def test_with_the_disk_full_and_the_server_down_close_fails_with_enospc_and_keeps_the_bytes(
    portal, tiny_disk, no_room_for_records, caplog
):
    fs = build_portalfs(portal.member, MountConfig(cache_dir=str(tiny_disk)), TEST_HTTP)
    fh = fs.create("/precious.bin")
    fs.write(fh, 0, b"p" * 65536)
    fill(tiny_disk)
    portal.server.stop()
    oserror(errno.ENOSPC, fs.flush, fh)  # the real cause: the bytes are nowhere else
    oserror(errno.ENOSPC, fs.fsync, fh)  # and again: nothing was stored since
    fs.release(fh)  # before: the spool was deleted here, and the bytes with it
    (kept,) = Journal(tiny_disk / "unsent").orphans  # found and reported at the next start
    assert "destination was never recorded" in caplog.text
    assert kept.read_bytes() == b"p" * 65536
    assert "record cannot be written" in caplog.text


def test_a_second_fsync_after_a_failed_upload_tries_again(make_fs, portal):
    fs = make_fs()
    fh = fs.create("/again.txt")
    fs.write(fh, 0, b"again")
    portal.server.app.state.faults.fail_next("upload_link", 503, times=6)
    with pytest.raises(errors.UnavailableError):
        fs.fsync(fh)
    with pytest.raises(errors.UnavailableError):
        fs.fsync(fh)  # before: 0, with the bytes only in the journal
    fs.fsync(fh)  # the server answers again: stored now
    assert listed(portal) == {"again.txt": 5}
    assert list(fs.journal.entries()) == []
    fs.release(fh)


def test_a_failed_upload_is_not_copied_until_the_file_changes(make_fs, portal):
    fs = make_fs()
    fh = fs.create("/cow.txt")
    fs.write(fh, 0, b"first")
    upload_fails(portal, fs.flush, fh)
    (entry,) = fs.journal.entries()
    assert entry.data_path.stat().st_nlink == 2  # shares the spool's bytes: no copy yet
    fs.write(fh, 0, b"SECOND")  # the journal's version gets bytes of its own first
    assert entry.data_path.read_bytes() == b"first"
    fs.flush(fh)
    fs.release(fh)
    assert read_file(fs, "/cow.txt") == b"SECOND" and list(fs.journal.entries()) == []


def test_a_skip_is_decided_on_what_the_portal_holds_now_not_on_a_cached_listing(make_fs, portal):
    fs = make_fs(metadata_ttl_s=3600)
    write_file(fs, "/same.txt", b"same bytes")
    fs.readdir("/")  # the listing, with its ETag, is cached for an hour
    other = make_fs(allow_delete=True)
    other.unlink("/same.txt")  # deleted elsewhere
    puts = portal.puts()
    write_file(fs, "/same.txt", b"same bytes")  # before: skipped, and nothing was stored
    assert portal.puts() == puts + 1
    assert listed(portal) == {"same.txt": 10}


def test_a_write_past_the_size_limit_is_efbig_at_once(make_fs, portal):
    fs = make_fs(max_file_bytes=1000)
    fh = fs.create("/big.bin")
    fs.write(fh, 0, b"x" * 1000)
    oserror(errno.EFBIG, fs.write, fh, 1000, b"y")
    oserror(errno.EFBIG, fs.truncate, "/big.bin", 1001, fh)
    fs.release(fh)
    assert listed(portal) == {"big.bin": 1000}


def test_a_file_the_portal_refuses_for_good_is_set_aside_not_retried(small_portal, caplog):
    small, fs = small_portal
    fh = fs.create("/too-big.bin")
    fs.write(fh, 0, b"z" * 2000)
    with pytest.raises(errors.RejectedError):
        fs.flush(fh)
    fs.release(fh)  # no second try: the portal's answer will not change
    asked = small.server.app.state.metrics.count("POST", "upload_link")
    assert fs.resender.send_all() == (0, 0) and asked == 1
    (refused,) = fs.journal.refused()
    assert refused.portal_path == "too-big.bin" and refused.data_path.stat().st_size == 2000
    assert "refused too-big.bin for good" in caplog.text
    warned = [r for r in caplog.records if "for good" in r.getMessage()]
    assert warned and all(r.levelno == logging.WARNING for r in warned)


def test_an_open_file_deleted_is_not_uploaded_again_on_close(make_fs, portal):
    fs = make_fs(allow_delete=True)
    fh = fs.create("/gone.txt")
    fs.write(fh, 0, b"first")
    fs.flush(fh)
    fs.write(fh, 5, b" and more")
    fs.unlink("/gone.txt")
    fs.flush(fh)
    fs.release(fh)  # before: re-uploaded under the deleted name
    assert listed(portal) == {}
    oserror(errno.ENOENT, fs.getattr, "/gone.txt")


def test_an_open_file_renamed_is_uploaded_under_its_new_name_only(make_fs, portal):
    fs = make_fs(allow_delete=True)
    fh = fs.create("/draft.tmp")
    fs.write(fh, 0, b"draft")
    fs.rename("/draft.tmp", "/final.txt")  # never stored yet: before, ENOENT from the portal
    fs.write(fh, 5, b" done")
    fs.release(fh)
    assert listed(portal) == {"final.txt": 10}
    assert read_file(fs, "/final.txt") == b"draft done"


def test_an_open_stored_file_renamed_keeps_its_later_changes(make_fs, portal):
    fs = make_fs(allow_delete=True)
    fh = fs.create("/a.txt")
    fs.write(fh, 0, b"one")
    fs.flush(fh)
    fs.rename("/a.txt", "/b.txt")
    fs.write(fh, 3, b" two")
    fs.release(fh)  # before: uploaded as a.txt again, beside the renamed b.txt
    assert listed(portal) == {"b.txt": 7}
    assert read_file(fs, "/b.txt") == b"one two"


def test_a_deleted_file_is_not_brought_back_by_its_unsent_version(make_fs, portal):
    fs = make_fs(allow_delete=True)
    upload_fails(portal, write_file, fs, "/zombie.txt", b"unsent")
    assert fs.getattr("/zombie.txt").size == 6  # listed while it waits to be sent
    assert [name for name, _ in fs.readdir("/")] == ["zombie.txt"]
    fs.unlink("/zombie.txt")  # before: the portal's 404 made it ENOENT
    assert fs.resender.send_all() == (0, 0)
    assert listed(portal) == {}


def test_the_resender_survives_an_unexpected_failure_and_says_so(portal, tmp_path, caplog):
    fs = build_portalfs(
        portal.member, MountConfig(cache_dir=str(tmp_path / "c"), resend_interval_s=0.05), TEST_HTTP
    )
    source = tmp_path / "bytes"
    source.write_bytes(b"later")
    fs.journal.record(source, "later.txt", 5, hashlib.md5(b"later").hexdigest())
    calls = []
    real_upload = fs.uploader.upload

    def upload_once_broken(request):
        calls.append(request)
        if len(calls) == 1:
            raise ValueError("a bug")
        return real_upload(request)

    fs.uploader.upload = upload_once_broken
    done = threading.Event()
    fs.resender.on_sent = lambda entry: done.set()
    fs.start_background()
    try:
        assert done.wait(10), "the resend thread died"  # before: it did, silently
    finally:
        fs.close()
    (logged,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "resending unsent files failed" in logged.getMessage() and "a bug" in caplog.text


def test_with_the_server_down_further_uploads_fail_at_once(portal, tmp_path, caplog):
    http = HttpConfig(**{**TEST_HTTP.__dict__, "probe_interval_s": 3600.0})
    fs = build_portalfs(portal.member, MountConfig(cache_dir=str(tmp_path / "c")), http)
    write_file(fs, "/first.txt", b"1")  # the folder is listed, so files can be created
    portal.server.stop()
    for i in range(30):
        with pytest.raises(errors.UnavailableError):
            write_file(fs, f"/f{i}.txt", b"x")
    # One request found the server gone (with its retries); the other 29 failed at once.
    assert fs.portal.transport.reachability.fast_failures == 29
    assert len(fs.journal.entries()) == 30  # each kept for when it is back
    assert caplog.text.count("is unreachable") == 1
    sent, unsent = fs.resender.send_all()  # what `portalfs recover` does
    assert (sent, unsent) == (0, 30)
    assert fs.portal.transport.reachability.fast_failures == 59
    fs.close()


def test_files_can_be_made_in_a_new_folder_while_the_server_is_down(make_fs, portal):
    fs = make_fs()
    fs.readdir("/")
    lists = portal.server.app.state.metrics.count("POST", "list_files")
    fs.mkdir("/fresh")
    oserror(errno.ENOENT, fs.getattr, "/fresh/a.txt")  # what the kernel asks before create
    assert portal.server.app.state.metrics.count("POST", "list_files") == lists  # known empty
    portal.server.stop()
    fs.mkdir("/offline")
    oserror(errno.ENOENT, fs.getattr, "/offline/b.txt")  # before: EIO, and cp gave up on it
    with pytest.raises(errors.UnavailableError):
        write_file(fs, "/offline/b.txt", b"kept")
    assert [e.portal_path for e in fs.journal.entries()] == ["offline/b.txt"]


def test_a_file_waiting_in_the_journal_reads_back_its_bytes(make_fs, portal):
    fs = make_fs()
    upload_fails(portal, write_file, fs, "/waiting.txt", b"not sent yet")
    fh = fs.open("/waiting.txt", os.O_RDONLY)
    assert fs.resender.send_all() == (1, 0)  # sent while open: still readable
    assert fs.read(fh, 0, 100) == b"not sent yet"  # before: EIO, no ETag to read by
    fs.release(fh)
    assert read_file(fs, "/waiting.txt") == b"not sent yet"


# ------------------------------------------------------------ found by a hostile review


def test_a_failed_rm_keeps_the_unsent_version(make_fs, portal):
    fs = make_fs(allow_delete=True)
    write_file(fs, "/doc.txt", b"v1 stored")
    upload_fails(portal, write_file, fs, "/doc.txt", b"v2 newest, only local")
    portal.server.app.state.faults.fail_next("delete_file", 503, times=3)
    with pytest.raises(errors.PortalError):
        fs.unlink("/doc.txt")  # the rm failed: as far as the user knows, nothing changed
    (entry,) = fs.journal.entries()  # before: v2 was dropped before the delete was tried
    assert entry.data_path.read_bytes() == b"v2 newest, only local"


def test_refused_bytes_are_not_changed_by_later_writes_and_fsync_fails_again(small_portal):
    _, fs = small_portal
    fh = fs.create("/big.bin")
    fs.write(fh, 0, b"z" * 2000)
    with pytest.raises(errors.RejectedError):
        fs.fsync(fh)
    with pytest.raises(errors.RejectedError):
        fs.fsync(fh)  # before: 0, with nothing stored
    (refused,) = fs.journal.refused()
    fs.truncate("/big.bin", 0, fh)  # the application starts over, smaller
    fs.write(fh, 0, b"small")
    fs.release(fh)
    # Before: refused/ held the live spool's bytes, b"small", under a record of 2000.
    assert refused.data_path.read_bytes() == b"z" * 2000


def test_writing_to_an_unlinked_open_file_whose_upload_failed_works(make_fs, portal):
    fs = make_fs(allow_delete=True)
    fh = fs.create("/tmpfile")
    fs.write(fh, 0, b"one")
    upload_fails(portal, fs.flush, fh)
    fs.unlink("/tmpfile")
    fs.write(fh, 3, b"two")  # before: FileNotFoundError from the dropped journal entry
    assert fs.read(fh, 0, 10) == b"onetwo"
    fs.release(fh)
    assert listed(portal) == {}


def test_a_failed_upload_changed_again_keeps_its_record_for_the_next_start(make_fs, portal):
    fs = make_fs()
    fh = fs.create("/cow2.txt")
    fs.write(fh, 0, b"first")
    upload_fails(portal, fs.flush, fh)
    (entry,) = fs.journal.entries()
    fs.write(fh, 0, b"SECOND")  # the entry gets bytes of its own: a copy, with its record
    restarted = Journal(entry.data_path.parent)  # as if the mount were killed now
    assert [(e.portal_path, e.data_path.read_bytes()) for e in restarted.entries()] == [
        ("cow2.txt", b"first")
    ]  # before: the copy had no record, and "first" became an orphan
    fs.release(fh)


def test_bytes_kept_without_a_record_never_carry_an_earlier_uploads_record(
    portal, tmp_path, monkeypatch
):
    cache = tmp_path / "c"
    fs = build_portalfs(portal.member, MountConfig(cache_dir=str(cache)), TEST_HTTP)
    fh = fs.create("/f.txt")
    fs.write(fh, 0, b"old")
    fs.flush(fh)  # stored: its record stays on the spool's inode as an xattr
    fs.write(fh, 0, b"NEW")  # same size, other bytes
    portal.server.stop()

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "setxattr", full)
    with pytest.raises(OSError):
        fs.flush(fh)
    fs.release(fh)  # the spool goes into the journal; no record can be written
    monkeypatch.undo()
    restarted = Journal(cache / "unsent")
    # Before: the old record named the new bytes, and the resender "skipped" and dropped them.
    assert restarted.entries() == [] and len(restarted.orphans) == 1
    assert restarted.orphans[0].read_bytes() == b"NEW"


def test_a_storage_refusal_of_the_put_is_tried_again_not_set_aside(make_fs, portal):
    fs = make_fs()
    portal.server.app.state.faults.fail_next("storage_put", 400)
    with pytest.raises(errors.RejectedError):
        write_file(fs, "/put.txt", b"put me")  # S3 answers 400 to a PUT that timed out
    assert [e.portal_path for e in fs.journal.entries()] == ["put.txt"]
    assert fs.journal.refused() == []  # before: set aside for good
    assert fs.resender.send_all() == (1, 0)


def test_folders_made_here_are_forgotten_once_a_file_lands_in_them(make_fs):
    fs = make_fs()
    for n in range(50):
        fs.mkdir(f"/d{n}")
        fs.mkdir(f"/d{n}/e")
        write_file(fs, f"/d{n}/e/f.txt", b"x")
    assert fs._local_dirs == set()  # before: 100 folders kept for the mount's whole life
    assert [n for n, _ in fs.readdir("/d7")] == ["e"]  # still shown, by the metadata cache
    assert {n for n, _ in fs.readdir("/")} == {f"d{n}" for n in range(50)}


def test_files_still_open_when_the_mount_ends_leave_no_spool_and_lose_nothing(make_fs, portal):
    # After a lazy unmount (SIGTERM) the kernel may end the mount without releasing its
    # last files (a newcomer trial saw a 20 MB spool stay after SIGTERM).
    fs = make_fs()
    stored = fs.create("/stored.txt")
    fs.write(stored, 0, b"stored")
    fs.flush(stored)
    pending = fs.create("/pending.txt")
    fs.write(pending, 0, b"not flushed yet")
    fs.close()  # no release came for either
    assert list(fs.spool_dir.iterdir()) == []
    (entry,) = fs.journal.entries()  # the bytes no close() stored wait for the next mount
    assert (entry.portal_path, entry.data_path.read_bytes()) == ("pending.txt", b"not flushed yet")


def test_an_unsent_file_opened_to_append_starts_from_all_its_bytes(make_fs, portal):
    fs = make_fs()
    data = os.urandom(300_000)
    upload_fails(portal, write_file, fs, "/grow.bin", data)
    fh = fs.open("/grow.bin", os.O_WRONLY)  # no O_TRUNC: the unsent bytes are copied in
    fs.write(fh, len(data), b"tail")
    fs.flush(fh)
    fs.release(fh)
    assert read_file(fs, "/grow.bin") == data + b"tail"


def test_a_folder_holding_a_file_being_written_is_shown_when_the_portal_has_none(make_fs, portal):
    fs = make_fs(metadata_ttl_s=0)  # every look asks the portal afresh
    fs.mkdir("/z")
    fh = fs.create("/z/draft.txt")  # being written, not in the portal yet
    write_file(fs, "/z/a.txt", b"a")  # a file lands: /z is the portal's folder now
    clients(portal.member)[0].delete("z/a.txt")  # and goes again, elsewhere
    assert [n for n, _ in fs.readdir("/")] == ["z"]  # found by the model test
    assert [n for n, _ in fs.readdir("/z")] == ["draft.txt"]
    assert stat.S_ISDIR(fs.getattr("/z").mode)
    fs.release(fh)


def test_a_folder_above_a_folder_made_here_is_shown_when_the_portal_has_none(make_fs, portal):
    fs = make_fs(metadata_ttl_s=0)
    fs.mkdir("/x")
    fs.mkdir("/x/y")
    write_file(fs, "/x/a.txt", b"a")  # /x is the portal's now; /x/y is still only here
    clients(portal.member)[0].delete("x/a.txt")
    assert [n for n, _ in fs.readdir("/")] == ["x"]  # found by the model test
    assert [n for n, _ in fs.readdir("/x")] == ["y"]


def test_a_file_stored_in_a_folder_the_cached_listing_lacks_shows_that_folder(make_fs, portal):
    fs = make_fs(metadata_ttl_s=3600)
    fs.mkdir("/x")
    write_file(fs, "/x/b.txt", b"b")
    fh = fs.create("/x/a.txt")
    fs.write(fh, 0, b"a")
    clients(portal.member)[0].delete("x/b.txt")  # elsewhere: /x is empty in the portal
    fs.metadata.invalidate("/")
    fs.readdir("/")  # a fresh listing of / without x, kept for an hour
    fs.flush(fh)  # /x/a.txt stored: x exists again (found by the model test: it stayed hidden)
    fs.release(fh)
    assert [n for n, _ in fs.readdir("/")] == ["x"]


def test_a_file_not_stored_yet_renamed_over_a_stored_one_replaces_it_at_once(make_fs, portal):
    fs = make_fs(allow_delete=True)
    fs.mkdir("/x")
    write_file(fs, "/x/a", b"old")
    fh = fs.create("/b.txt")
    fs.write(fh, 0, b"new")
    fs.rename("/b.txt", "/x/a")  # over the stored /x/a
    fs.rename("/x/a", "/a")  # and on, before it was ever stored
    fs.release(fh)
    # Before: the old /x/a stayed in the portal (found by the model test).
    assert listed(portal) == {"a": 3} and listed(portal, "x/") == {}
