"""PortalFS called directly: the behaviour SEMANTICS.md promises, without a mount."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from portalfs.client import errors
from tests.faults import Hold


def write_file(fs, path, data, chunk=65536):
    fh = fs.create(path)
    try:
        for off in range(0, len(data), chunk):
            fs.write(fh, off, data[off : off + chunk])
        fs.flush(fh)
    finally:
        fs.release(fh)


def read_file(fs, path):
    fh = fs.open(path, os.O_RDONLY)
    try:
        size = fs.getattr(path).size
        return fs.read(fh, 0, size + 10)
    finally:
        fs.release(fh)


def oserror(code, call, *args):
    with pytest.raises(OSError) as info:
        call(*args)
    assert info.value.errno == code, info.value


def test_write_then_read_back_and_stat(make_fs):
    fs = make_fs()
    data = os.urandom(3 * 1024 * 1024 + 7)
    write_file(fs, "/a.bin", data)
    attr = fs.getattr("/a.bin")
    assert stat.S_ISREG(attr.mode) and attr.size == len(data)
    assert read_file(fs, "/a.bin") == data
    assert [name for name, _ in fs.readdir("/")] == ["a.bin"]


def test_read_after_write_ignores_ttl(make_fs, portal):
    fs = make_fs(metadata_ttl_s=3600)
    assert fs.readdir("/") == []  # cached empty listing, for an hour
    write_file(fs, "/new.txt", b"hello")
    assert fs.getattr("/new.txt").size == 5
    assert [n for n, _ in fs.readdir("/")] == ["new.txt"]
    assert read_file(fs, "/new.txt") == b"hello"


def test_same_content_is_not_uploaded_again(make_fs, portal):
    fs = make_fs()
    write_file(fs, "/d.txt", b"same")
    puts = portal.puts()
    write_file(fs, "/d.txt", b"same")
    assert portal.puts() == puts
    write_file(fs, "/d.txt", b"different")
    assert portal.puts() == puts + 1


def test_write_only_mount_refuses_reads_but_lists_and_writes(make_fs):
    fs = make_fs(member=False)
    write_file(fs, "/w.txt", b"data")
    attr = fs.getattr("/w.txt")
    assert attr.mode & 0o777 == 0o200
    oserror(errno.EACCES, fs.open, "/w.txt", os.O_RDONLY)
    oserror(errno.EACCES, fs.open, "/w.txt", os.O_WRONLY)  # in place needs the old bytes
    fh = fs.open("/w.txt", os.O_WRONLY | os.O_TRUNC)  # replacing does not
    fs.write(fh, 0, b"new")
    fs.flush(fh)
    fs.release(fh)
    assert fs.getattr("/w.txt").size == 3


def test_read_only_mount_refuses_changes(make_fs):
    fs = make_fs(read_only=True)
    oserror(errno.EROFS, fs.create, "/x")
    oserror(errno.EROFS, fs.mkdir, "/d")


def test_in_place_edit_copies_down_first(make_fs):
    fs = make_fs()
    write_file(fs, "/e.txt", b"0123456789")
    fh = fs.open("/e.txt", os.O_WRONLY)
    fs.write(fh, 3, b"xy")
    fs.flush(fh)
    fs.release(fh)
    assert read_file(fs, "/e.txt") == b"012xy56789"


def test_truncate_by_path(make_fs):
    fs = make_fs()
    write_file(fs, "/t.txt", b"0123456789")
    fs.truncate("/t.txt", 4)
    assert read_file(fs, "/t.txt") == b"0123"
    fs.truncate("/t.txt", 0)
    assert fs.getattr("/t.txt").size == 0


def test_mkdir_is_local_until_a_file_lands_and_rmdir_of_empty_works(make_fs):
    fs = make_fs()
    fs.mkdir("/d")
    fs.mkdir("/d/e")
    assert stat.S_ISDIR(fs.getattr("/d/e").mode)
    oserror(errno.EEXIST, fs.mkdir, "/d")
    oserror(errno.ENOTEMPTY, fs.rmdir, "/d")
    fs.rmdir("/d/e")
    oserror(errno.ENOENT, fs.getattr, "/d/e")
    write_file(fs, "/d/f.txt", b"f")
    assert [n for n, _ in fs.readdir("/d")] == ["f.txt"]


def test_delete_and_rename_are_refused_unless_allowed(make_fs):
    fs = make_fs()
    write_file(fs, "/k.txt", b"k")
    oserror(errno.EPERM, fs.unlink, "/k.txt")
    oserror(errno.EPERM, fs.rename, "/k.txt", "/l.txt")
    fs2 = make_fs(allow_delete=True)
    fs2.rename("/k.txt", "/l.txt")
    assert [n for n, _ in fs2.readdir("/")] == ["l.txt"]
    fs2.unlink("/l.txt")
    oserror(errno.ENOENT, fs2.getattr, "/l.txt")
    fs3 = make_fs(member=False, allow_delete=True)
    write_file(fs3, "/m.txt", b"m")
    oserror(errno.EPERM, fs3.unlink, "/m.txt")


def test_names_the_portal_cannot_store_are_refused_locally(make_fs, portal):
    fs = make_fs()
    with pytest.raises(errors.NameTooLongError):
        fs.create("/" + "n" * 256)
    with pytest.raises(errors.InvalidNameError):
        fs.create("/bad\x01name")


def test_failed_upload_fails_flush_and_keeps_the_bytes(make_fs, portal, tmp_path):
    fs = make_fs()
    fh = fs.create("/lost.txt")
    fs.write(fh, 0, b"precious")
    portal.server.stop()
    with pytest.raises(errors.UnavailableError):
        fs.flush(fh)
    fs.release(fh)
    (entry,) = list(fs.journal.entries())
    assert entry.portal_path == "lost.txt"
    assert entry.data_path.read_bytes() == b"precious"
    assert entry.md5 == hashlib.md5(b"precious").hexdigest()


def test_concurrent_writers_of_different_files(make_fs):
    fs = make_fs()
    blobs = {f"/c{i}.bin": os.urandom(100_000 + i) for i in range(16)}
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda item: write_file(fs, *item), blobs.items()))
    reader = make_fs()
    for path, data in blobs.items():
        assert read_file(reader, path) == data


def test_created_file_without_writes_uploads_on_release(make_fs, portal):
    fs = make_fs()
    fh = fs.create("/touched")
    fs.flush(fh)  # what close() of a dup'd descriptor does: nothing to send yet
    puts = portal.puts()
    fs.release(fh)
    assert portal.puts() == puts + 1
    assert make_fs().getattr("/touched").size == 0


def test_statfs_reports_room(make_fs):
    assert make_fs().statfs()["f_bavail"] > 2**30


def test_a_file_being_written_shows_its_current_size(make_fs):
    fs = make_fs()
    fh = fs.create("/growing")
    fs.write(fh, 0, b"x" * 1000)
    assert fs.getattr("/growing").size == 1000
    assert ("growing", fs.getattr("/growing")) in fs.readdir("/")
    fs.write(fh, 1000, b"y" * 24)
    assert fs.getattr("/growing").size == 1024
    fs.release(fh)


def test_a_file_replaced_during_a_read_is_estale_not_mixed(make_fs, portal, tmp_path):
    from portalfs.fuse.errno_map import errno_for

    writer, reader = make_fs(), make_fs(block_bytes=4096, readahead_blocks=0, cache_bytes=8192)
    write_file(writer, "/v.bin", b"a" * 20_000)
    fh = reader.open("/v.bin", os.O_RDONLY)
    assert reader.read(fh, 0, 4096) == b"a" * 4096
    write_file(writer, "/v.bin", b"b" * 20_000)
    with pytest.raises(errors.ConflictError) as info:
        reader.read(fh, 8192, 4096)
    assert errno_for(info.value) == errno.ESTALE
    reader.release(fh)
    fh = reader.open("/v.bin", os.O_RDONLY)  # a new open sees the new version
    assert reader.read(fh, 8192, 10) == b"b" * 10
    reader.release(fh)


def test_reads_after_the_read_ahead_finished_send_no_second_get(make_fs, portal, wait_until):
    from portalfs.cache.blocks import BlockKey

    fs = make_fs(block_bytes=4096, readahead_blocks=8)
    data = os.urandom(5 * 4096 + 1)
    write_file(fs, "/s.bin", data)
    gets = portal.server.app.state.metrics.count("GET", "storage_get")
    fh = fs.open("/s.bin", os.O_RDONLY)
    assert fs.read(fh, 0, 4096) == data[:4096]
    etag = fs.metadata.lookup("/s.bin").etag
    last = BlockKey("s.bin", etag, 5)
    wait_until(lambda: fs.reader.blocks.get(last) is not None, what="the read-ahead")
    for offset in range(4096, len(data), 4096):  # each read continues the last
        assert fs.read(fh, offset, 4096) == data[offset : offset + 4096]
    wait_until(lambda: not _streaming(), what="read-ahead threads to end")  # GETs are final
    assert portal.server.app.state.metrics.count("GET", "storage_get") == gets + 1
    fs.release(fh)


def test_read_ahead_requests_answered_out_of_order_share_one_get(make_fs, portal, wait_until):
    fs = make_fs(block_bytes=4096, readahead_blocks=8, kernel_readahead_kb=8)
    data = os.urandom(6 * 4096)
    write_file(fs, "/o.bin", data)
    gets = portal.server.app.state.metrics.count("GET", "storage_get")
    fh = fs.open("/o.bin", os.O_RDONLY)
    # The kernel sends one read-ahead window as several requests, and its threads may
    # answer the second before the first.
    assert fs.read(fh, 4096, 4096) == data[4096:8192]
    assert fs.read(fh, 0, 4096) == data[:4096]
    for offset in range(8192, len(data), 4096):
        assert fs.read(fh, offset, 4096) == data[offset : offset + 4096]
    wait_until(lambda: not _streaming(), what="read-ahead threads to end")  # GETs are final
    assert portal.server.app.state.metrics.count("GET", "storage_get") == gets + 1
    fs.release(fh)


def test_files_read_at_once_share_the_cache_and_keep_one_get_each(make_fs, portal, wait_until):
    # Four sequential readers with read-ahead windows of 8 blocks, and room for 8 blocks in
    # all: a window's blocks must not push out those another reader has yet to take.
    fs = make_fs(block_bytes=4096, readahead_blocks=8, cache_bytes=8 * 4096, kernel_readahead_kb=8)
    files = {f"/c{i}.bin": os.urandom(24 * 4096) for i in range(4)}
    for name, data in files.items():
        write_file(fs, name, data)
    gets = portal.server.app.state.metrics.count("GET", "storage_get")
    handles = {name: fs.open(name, os.O_RDONLY) for name in files}
    for offset in range(0, 24 * 4096, 4096):
        for name, fh in handles.items():
            assert fs.read(fh, offset, 4096) == files[name][offset : offset + 4096]
            assert fs.reader.blocks.bytes_held <= 8 * 4096
    wait_until(lambda: not _streaming(), what="read-ahead threads to end")  # GETs are final
    assert portal.server.app.state.metrics.count("GET", "storage_get") == gets + 4
    for fh in handles.values():
        fs.release(fh)


def _streaming() -> bool:
    return any(t.name == "stream" for t in threading.enumerate())


def test_a_jump_past_the_read_ahead_window_is_fetched_not_streamed_to(make_fs, wait_until):
    from portalfs.cache.blocks import BlockKey

    fs = make_fs(block_bytes=4096, readahead_blocks=2, kernel_readahead_kb=8)
    data = os.urandom(64 * 4096)
    write_file(fs, "/j.bin", data)
    fh = fs.open("/j.bin", os.O_RDONLY)
    assert fs.read(fh, 0, 4096) == data[:4096]  # a stream with a window of 2 blocks
    at = 60 * 4096
    assert fs.read(fh, at, 100) == data[at : at + 100]
    assert fs.read(fh, at + 100, 100) == data[at + 100 : at + 200]  # the same block again
    wait_until(lambda: not _streaming(), what="the stream to end")
    etag = fs.metadata.lookup("/j.bin").etag
    # Neither read made the stream download the 59 blocks in between.
    between = [BlockKey("j.bin", etag, i) for i in range(1, 60)]
    assert sum(fs.reader.blocks.get(key) is not None for key in between) <= 4
    fs.release(fh)


def test_a_reader_going_backwards_does_not_restart_the_stream_each_block(make_fs, monkeypatch):
    from portalfs.fs import reader

    started: list[int] = []
    init = reader._Stream.__init__

    def counted(stream, *args, **kwargs) -> None:
        init(stream, *args, **kwargs)
        started.append(stream.first)

    monkeypatch.setattr(reader._Stream, "__init__", counted)
    fs = make_fs(block_bytes=4096, readahead_blocks=4, kernel_readahead_kb=8)
    data = os.urandom(32 * 4096)
    write_file(fs, "/b.bin", data)
    fh = fs.open("/b.bin", os.O_RDONLY)
    for index in range(31, 15, -1):  # tac: the last block first, then each one before
        offset = index * 4096
        assert fs.read(fh, offset, 4096) == data[offset : offset + 4096]
    # Each block is one ranged GET; a new stream to the end of the file for each (what it
    # was) downloaded the blocks already read again.
    assert len(started) <= 1
    fs.release(fh)


def test_unsent_files_are_sent_once_the_server_is_back(make_fs, portal):
    from portalfs.server.config import ServerConfig
    from portalfs.server.runner import run_in_thread

    fs = make_fs()
    config = portal.server.config
    portal.server.stop()
    fh = fs.create("/later.txt")
    fs.write(fh, 0, b"kept for later")
    with pytest.raises(errors.UnavailableError):
        fs.flush(fh)
    fs.release(fh)
    assert fs.resender.send_all() == (0, 1)
    back = run_in_thread(ServerConfig(data_dir=config.data_dir, port=config.port))
    try:
        assert fs.resender.send_all() == (1, 0)
        assert list(fs.journal.entries()) == []
        assert read_file(make_fs(), "/later.txt") == b"kept for later"
    finally:
        back.stop()


def test_with_the_server_down_the_last_listings_still_answer(make_fs, portal):
    fs = make_fs(metadata_ttl_s=0)  # every listing is stale at once: each call tries
    fs.mkdir("/dir")
    write_file(fs, "/dir/a.txt", b"here")
    assert [n for n, _ in fs.readdir("/dir")] == ["a.txt"]
    portal.server.stop()
    assert [n for n, _ in fs.readdir("/dir")] == ["a.txt"]  # was EIO
    assert fs.getattr("/dir/a.txt").size == 4
    fh = fs.create("/dir/b.txt")  # the folder is known, so the file can be written
    fs.write(fh, 0, b"later")
    with pytest.raises(errors.UnavailableError):
        fs.flush(fh)  # and is kept for when the server is back
    fs.release(fh)
    assert [u.portal_path for u in fs.journal.entries()] == ["dir/b.txt"]


def test_after_a_resend_putting_back_the_old_bytes_is_uploaded(make_fs, portal):
    # The resender stores B; the mount must then compare with B, not with the A it wrote
    # before, or a close() of A would be skipped and the portal would keep B.
    fs = make_fs()
    write_file(fs, "/x.txt", b"A")
    portal.server.app.state.faults.fail_next("upload_link", 503, times=3)
    with pytest.raises(errors.UnavailableError):
        write_file(fs, "/x.txt", b"B")
    assert fs.resender.send_all() == (1, 0)
    write_file(fs, "/x.txt", b"A")
    assert read_file(make_fs(), "/x.txt") == b"A"


def test_a_newer_upload_supersedes_an_unsent_older_version(make_fs, portal):
    fs = make_fs()
    portal.server.app.state.faults.fail_next("upload_link", 503, times=3)
    with pytest.raises(errors.UnavailableError):
        write_file(fs, "/v.txt", b"old")
    assert len(list(fs.journal.entries())) == 1
    write_file(fs, "/v.txt", b"new")
    assert list(fs.journal.entries()) == []  # the old version will never overwrite the new
    assert read_file(fs, "/v.txt") == b"new"


def test_a_resent_old_version_never_lands_after_a_newer_one(make_fs, portal):
    fs = make_fs()
    portal.server.app.state.faults.fail_next("upload_link", 503, times=3)
    with pytest.raises(errors.UnavailableError):
        write_file(fs, "/race.txt", b"old")
    held = Hold()
    portal.server.app.state.faults.add("storage_put", held)
    with ThreadPoolExecutor(2) as pool:
        resend = pool.submit(fs.resender.send_all)  # its PUT of "old" is held
        assert held.held.wait(10)
        newer = pool.submit(write_file, fs, "/race.txt", b"new")
        held.release.set()
        assert resend.result(10) == (1, 0)
        newer.result(10)
    assert read_file(make_fs(), "/race.txt") == b"new"
    assert list(fs.journal.entries()) == []


def test_a_failed_write_is_never_uploaded(make_fs, portal, monkeypatch):
    fs = make_fs()
    fh = fs.create("/holey.bin")
    fs.write(fh, 0, b"a" * 100)

    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    oserror(errno.ENOSPC, fs.write, fh, 100, b"b" * 100)
    monkeypatch.undo()
    puts = portal.puts()
    oserror(errno.ENOSPC, fs.flush, fh)
    fs.release(fh)
    assert portal.puts() == puts
    oserror(errno.ENOENT, make_fs().getattr, "/holey.bin")


def test_cache_spool_and_journal_folders_are_private(make_fs, portal):
    fs = make_fs()
    folders = (fs.spool_dir.parent, fs.spool_dir, fs.journal.directory, fs.journal.refused_dir)
    for folder in folders:
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    fh = fs.create("/private.txt")
    fs.write(fh, 0, b"kept")
    portal.server.app.state.faults.fail_next("upload_link", 503, times=3)
    with pytest.raises(errors.UnavailableError):
        fs.flush(fh)
    fs.release(fh)
    files = [p for folder in folders[1:] for p in folder.iterdir()]
    assert files and all(p.stat().st_mode & 0o777 == 0o600 for p in files), files


def test_rmdir_of_a_portal_folder_emptied_by_deletes(make_fs):
    fs = make_fs(allow_delete=True)
    fs.mkdir("/p")
    fs.mkdir("/p/q")
    write_file(fs, "/p/q/f.txt", b"f")
    fresh = make_fs(allow_delete=True)  # sees p/q only as portal folders
    assert [name for name, _ in fresh.readdir("/p")] == ["q"]  # as rm -r looks first
    fresh.unlink("/p/q/f.txt")
    fresh.rmdir("/p/q")
    oserror(errno.ENOENT, fresh.getattr, "/p/q")
    fresh.rmdir("/p")
    assert fresh.readdir("/") == []


def test_a_folder_of_10000_files_over_40_pages_lists_each_once(tmp_path):
    from portalfs.config import MountConfig
    from portalfs.fs.factory import build_portalfs
    from tests.portal_fixtures import TEST_HTTP, start_portal

    portal = start_portal(tmp_path / "server", page_size=250)
    try:
        folder = tmp_path / "server" / "objects" / "portal-1" / "many"
        folder.mkdir(parents=True)
        names = [f"f{i:05}" for i in range(10_000)]
        for name in names:  # straight into the store: 10,000 uploads would take a minute
            (folder / name).write_bytes(b"")
        fs = build_portalfs(portal.member, MountConfig(cache_dir=str(tmp_path / "c")), TEST_HTTP)
        try:
            before = portal.server.app.state.metrics.count("POST", "list_files")
            listed = [name for name, _ in fs.readdir("/many")]
            requests = portal.server.app.state.metrics.count("POST", "list_files") - before
        finally:
            fs.close()
    finally:
        portal.server.stop()
    assert sorted(listed) == names  # each exactly once, none missing
    assert requests == 40 + 1  # the pages, and the root listing that finds "many"


def test_a_walk_lists_the_next_folders_while_its_own_listing_is_still_on_its_way(make_fs):
    writer = make_fs()
    writer.mkdir("/top")
    for name in ("d00", "d01", "d02"):
        writer.mkdir(f"/top/{name}")
        write_file(writer, f"/top/{name}/f.txt", b"x")
    fs = make_fs(list_ahead_folders=4)
    fetch, sibling_asked = fs.metadata._fetch, threading.Event()

    def fetch_in_turn(folder):
        if folder == "/top/d01":
            sibling_asked.set()
        if folder == "/top/d00":
            # Over a WAN this listing takes a round trip; the walk's next one need not wait.
            assert sibling_asked.wait(10), "d01 was not asked for until d00 had arrived"
        return fetch(folder)

    fs.metadata._fetch = fetch_in_turn
    fs.readdir("/top")
    assert [name for name, _ in fs.readdir("/top/d00")] == ["f.txt"]


def test_a_name_missing_from_a_fresh_listing_is_enoent_without_a_request(make_fs, portal):
    fs = make_fs(metadata_ttl_s=3600)
    fs.mkdir("/d")
    write_file(fs, "/d/f.txt", b"x")
    fs.readdir("/")
    fs.readdir("/d")  # both folders listed, fresh for an hour
    metrics = portal.server.app.state.metrics
    before = sum(metrics.snapshot().values())
    for missing in ("/nope", "/d/nope", "/d/f.txt.tmp"):
        oserror(errno.ENOENT, fs.getattr, missing)
        oserror(errno.ENOENT, fs.open, missing, os.O_RDONLY)
    assert sum(metrics.snapshot().values()) == before


def test_member_files_are_rw_r__r__and_read_only_ones_r__r__r__(make_fs):
    write_file(make_fs(), "/m.txt", b"m")
    assert make_fs().getattr("/m.txt").mode == stat.S_IFREG | 0o644
    assert make_fs(read_only=True).getattr("/m.txt").mode == stat.S_IFREG | 0o444
    assert make_fs(member=False).getattr("/m.txt").mode == stat.S_IFREG | 0o200


def test_chmod_chown_and_utimens_are_accepted_unless_read_only(make_fs):
    fs = make_fs()
    write_file(fs, "/c.txt", b"c")
    fs.chmod("/c.txt", 0o600)
    fs.chown("/c.txt", 1, 1)
    fs.utimens("/c.txt", (0, 0))
    assert fs.getattr("/c.txt").mode == stat.S_IFREG | 0o644  # accepted, nothing changed
    read_only = make_fs(read_only=True)
    for change, args in ((read_only.chmod, (0o600,)), (read_only.chown, (1, 1))):
        oserror(errno.EROFS, change, "/c.txt", *args)
        oserror(errno.ENOENT, change, "/missing", *args)
    oserror(errno.EROFS, read_only.utimens, "/c.txt", None)
    oserror(errno.EROFS, read_only.utimens, "/", None)
    oserror(errno.ENOENT, fs.chmod, "/missing", 0o600)


def test_a_file_just_written_shows_its_close_time_until_the_next_listing(make_fs):
    fs = make_fs(metadata_ttl_s=3600)
    before = time.time_ns()
    write_file(fs, "/now.txt", b"now")
    assert before <= fs.getattr("/now.txt").mtime_ns <= time.time_ns()
    listed = make_fs().getattr("/now.txt").mtime_ns  # another mount: the listing's addedDate
    added_ms = round(listed / 10**6)  # addedDate has milliseconds; parsing keeps ~100 ns
    assert abs(listed - added_ms * 10**6) < 10**3 and before // 10**6 <= added_ms
