"""Through a real FUSE mount: what cp, ls, find, md5sum, dd, touch and shells see."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .conftest import MOUNT_TIMEOUT_S, wait_for

pytestmark = pytest.mark.timeout(120)


def make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "flowers/daisy.jpg": os.urandom(300_000),
        "flowers/tulip one.jpg": os.urandom(1000),
        "flowers/deep/ünïcødé 名前.txt": "pétale\n".encode(),
        "notes and docs/readme.txt": b"hello\n",
        "empty.txt": b"",
        "big.bin": os.urandom(3 * 1024 * 1024 + 5),
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def run(*cmd: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)


def test_cp_r_ls_find_md5sum(mount_portal, portal, tmp_path):
    src = tmp_path / "src"
    files = make_tree(src)
    m = mount_portal()
    assert run("cp", "-r", str(src), str(m.path / "data")).returncode == 0
    listing = run("ls", "-lR", str(m.path)).stdout
    assert "daisy.jpg" in listing and "ünïcødé 名前.txt" in listing
    found = run("find", str(m.path), "-type", "f").stdout.splitlines()
    assert sorted(found) == sorted(str(m.path / "data" / rel) for rel in files)
    sums = run("md5sum", *found).stdout
    for rel, data in files.items():
        assert f"{hashlib.md5(data).hexdigest()}  {m.path / 'data' / rel}" in sums
    # A second mount sees the same, so the bytes really reached the portal.
    other = mount_portal()
    assert run("diff", "-r", str(src), str(other.path / "data")).returncode == 0


def test_second_copy_of_the_same_tree_makes_no_put(mount_portal, portal, tmp_path):
    src = tmp_path / "src"
    make_tree(src)
    m = mount_portal()
    run("cp", "-r", str(src), str(m.path / "data"))
    puts = portal.puts()
    assert run("cp", "-r", str(src) + "/.", str(m.path / "data")).returncode == 0
    assert portal.puts() == puts


def test_overwrite_with_new_bytes(mount_portal):
    m = mount_portal()
    (m.path / "f.txt").write_bytes(b"old content")
    (m.path / "f.txt").write_bytes(b"new")
    assert (m.path / "f.txt").read_bytes() == b"new"
    assert mount_portal().path.joinpath("f.txt").read_bytes() == b"new"


def test_write_only_mount_lists_and_writes_but_refuses_reads_and_deletes(mount_portal):
    m = mount_portal(member=False)
    (m.path / "w.txt").write_bytes(b"data")
    assert [p.name for p in m.path.iterdir()] == ["w.txt"]
    assert (m.path / "w.txt").stat().st_size == 4
    result = run("cat", str(m.path / "w.txt"))
    assert result.returncode != 0 and "Permission denied" in result.stderr
    result = run("rm", str(m.path / "w.txt"))
    assert result.returncode != 0 and "Operation not permitted" in result.stderr
    assert (m.path / "w.txt").exists()


def test_read_only_mount(mount_portal):
    mount_portal().path.joinpath("r.txt").write_bytes(b"r")
    m = mount_portal("--read-only")
    assert (m.path / "r.txt").read_bytes() == b"r"
    for action in (lambda: (m.path / "x").write_bytes(b"x"), lambda: (m.path / "d").mkdir()):
        with pytest.raises(OSError) as info:
            action()
        assert info.value.errno == errno.EROFS


def test_dd_conv_notrunc_edits_in_place(mount_portal):
    m = mount_portal()
    (m.path / "d.bin").write_bytes(b"0123456789")
    result = run(
        "dd", "if=/dev/zero", f"of={m.path / 'd.bin'}", "bs=1", "count=2", "seek=4", "conv=notrunc"
    )
    assert result.returncode == 0, result.stderr
    assert (m.path / "d.bin").read_bytes() == b"0123\0\0" + b"6789"


def test_shell_redirection_and_touch_upload_once(mount_portal, portal):
    m = mount_portal()
    puts = portal.puts()
    assert run("sh", "-c", f"echo hello > '{m.path / 'r.txt'}'").returncode == 0
    assert portal.puts() == puts + 1
    assert (m.path / "r.txt").read_bytes() == b"hello\n"
    assert run("touch", str(m.path / "t")).returncode == 0
    wait_for(lambda: portal.puts() == puts + 2, 10, "the upload of the touched file")
    assert (m.path / "t").stat().st_size == 0
    assert run("touch", str(m.path / "r.txt")).returncode == 0  # existing: nothing to send
    assert portal.puts() == puts + 2


def test_mkdir_p_and_rmdir(mount_portal):
    m = mount_portal()
    assert run("mkdir", "-p", str(m.path / "a/b/c")).returncode == 0
    assert (m.path / "a/b/c").is_dir()
    (m.path / "a/b/c").rmdir()
    assert not (m.path / "a/b/c").exists()
    (m.path / "a/b/f.txt").write_bytes(b"f")
    with pytest.raises(OSError) as info:
        (m.path / "a/b").rmdir()
    assert info.value.errno == errno.ENOTEMPTY


def test_unsupported_operations_say_so(mount_portal):
    m = mount_portal()
    (m.path / "f").write_bytes(b"f")
    for action, code in [
        (lambda: os.symlink("f", m.path / "s"), errno.EPERM),
        (lambda: os.link(m.path / "f", m.path / "h"), errno.EPERM),
        (lambda: os.setxattr(m.path / "f", "user.x", b"1"), errno.ENOTSUP),
    ]:
        with pytest.raises(OSError) as info:
            action()
        assert info.value.errno == code


def test_df_and_statvfs_report_room(mount_portal):
    m = mount_portal()
    assert os.statvfs(m.path).f_bavail * os.statvfs(m.path).f_frsize > 2**40
    assert run("df", str(m.path)).returncode == 0


def test_read_after_write_whatever_the_ttl(mount_portal):
    m = mount_portal("--metadata-ttl", "3600")
    assert list(m.path.iterdir()) == []
    (m.path / "n.txt").write_bytes(b"now")
    assert (m.path / "n.txt").stat().st_size == 3
    assert (m.path / "n.txt").read_bytes() == b"now"


def test_32_writers_and_8_readers_byte_exact(mount_portal, tmp_path):
    m = mount_portal()
    blobs = {f"w{i}.bin": os.urandom(200_000 + i * 1000) for i in range(32)}

    def write(item):
        (m.path / item[0]).write_bytes(item[1])

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(write, blobs.items()))
    names = list(blobs)
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda n: (m.path / n).read_bytes(), names * 2))
    assert got == [blobs[n] for n in names * 2]


def test_failed_upload_fails_close_and_keeps_the_data(mount_portal, portal):
    m = mount_portal()
    (m.path / "warmup").write_bytes(b"w")
    portal.server.stop()
    with pytest.raises(OSError) as info:
        (m.path / "lost.txt").write_bytes(b"precious bytes")
    assert info.value.errno == errno.EIO
    kept = list((m.cache_dir / "unsent").glob("*.data"))
    assert [p.read_bytes() for p in kept] == [b"precious bytes"]
    assert "kept in" in m.log()


def test_sigterm_unmounts_cleanly(mount_portal):
    m = mount_portal()
    (m.path / "x").write_bytes(b"x")
    m.process.send_signal(signal.SIGTERM)
    assert m.process.wait(timeout=MOUNT_TIMEOUT_S) == 0
    assert not os.path.ismount(m.path)


def test_mount_errors_are_clear_before_mounting(portal, tmp_path):
    target = tmp_path / "m"
    target.mkdir()
    env = {**os.environ, **portal.env(), "EI_PORTAL_TOKEN": "0" * 64, "HOME": str(tmp_path)}
    result = run(sys.executable, "-m", "portalfs", "mount", str(target), "-f", env=env)
    assert result.returncode == 3 and "401" in result.stderr
    assert not os.path.ismount(target)
    (target / "busy").write_text("x")
    env["EI_PORTAL_TOKEN"] = portal.token
    result = run(sys.executable, "-m", "portalfs", "mount", str(target), "-f", env=env)
    assert result.returncode == 2 and "not empty" in result.stderr


def test_token_in_a_link_does_not_stay_in_the_process_arguments(portal, tmp_path):
    target = tmp_path / "m"
    target.mkdir()
    link = f"{portal.server.url}/portals/{portal.portal_id}?token={portal.token}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EI_")}
    env["HOME"] = str(tmp_path)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "portalfs",
            "mount",
            link,
            str(target),
            "-f",
            "--cache-dir",
            str(tmp_path / "c"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: os.path.ismount(target), MOUNT_TIMEOUT_S, "the mount")
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes()
        assert portal.token.encode() not in cmdline
        assert portal.token not in Path("/proc/self/mountinfo").read_text()
    finally:
        # Retried: something walking the temp folder (another test run's clean-up) can hold
        # the fresh mount busy for a moment.
        wait_for(
            lambda: (
                not os.path.ismount(target) or run("fusermount3", "-u", str(target)).returncode == 0
            ),
            MOUNT_TIMEOUT_S,
            "the unmount",
        )
        process.wait(timeout=MOUNT_TIMEOUT_S)


def test_unmount_command(mount_portal):
    m = mount_portal()
    result = run(sys.executable, "-m", "portalfs", "unmount", str(m.path))
    assert result.returncode == 0, result.stderr
    assert m.process.wait(timeout=MOUNT_TIMEOUT_S) == 0
    assert shutil.which("fusermount3")


def test_a_stalled_upload_does_not_block_ls_or_stat_elsewhere(mount_portal, portal):
    from tests.faults import Hold

    m = mount_portal("--metadata-ttl", "0")
    (m.path / "other").mkdir()
    (m.path / "other/f.txt").write_bytes(b"f")
    hold = Hold()
    portal.server.app.state.faults.add("storage_put", hold)
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit((m.path / "slow.bin").write_bytes, b"s" * 100_000)
        assert hold.held.wait(10), "the PUT did not reach the server"
        for _ in range(5):  # while the PUT is held: they must not wait for it
            assert [p.name for p in (m.path / "other").iterdir()] == ["f.txt"]
            assert (m.path / "other/f.txt").stat().st_size == 1
        # Done before the PUT was let go (had they waited for it, the hold would have run
        # out first): an event, not a time limit.
        assert not hold.timed_out and not slow.done()
        hold.release.set()
        slow.result(timeout=30)
    assert not hold.timed_out
    assert (m.path / "slow.bin").read_bytes() == b"s" * 100_000


def _restart(portal):
    from portalfs.server.config import ServerConfig
    from portalfs.server.runner import run_in_thread

    config = portal.server.config
    return run_in_thread(ServerConfig(data_dir=config.data_dir, port=config.port))


def test_unsent_file_is_sent_automatically_when_the_server_is_back(mount_portal, portal):
    m = mount_portal("--resend-interval", "0.2", "-v")  # -v: resends are logged at INFO
    (m.path / "warm").write_bytes(b"w")
    portal.server.stop()
    with pytest.raises(OSError):
        (m.path / "late.txt").write_bytes(b"late but safe")
    back = _restart(portal)
    try:
        wait_for(lambda: not list((m.cache_dir / "unsent").glob("*.data")), 20, "the resend")
        assert "from the journal of unsent files" in m.log()
        assert (mount_portal().path / "late.txt").read_bytes() == b"late but safe"
    finally:
        back.stop()


def test_full_spool_disk_fails_writes_sends_nothing_partial_and_recovers(
    mount_portal, portal, tmp_path
):
    small = tmp_path / "small-cache"
    small.mkdir()
    result = run("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(small))
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        m = mount_portal("--cache-dir", str(small))
        puts = portal.puts()
        with pytest.raises(OSError) as info:
            (m.path / "huge.bin").write_bytes(os.urandom(12 * 1024 * 1024))
        assert info.value.errno == errno.ENOSPC
        assert portal.puts() == puts
        assert not (mount_portal().path / "huge.bin").exists()
        (m.path / "small.txt").write_bytes(b"still fine")
        assert (m.path / "small.txt").read_bytes() == b"still fine"
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)


def test_rsync_inplace_works(mount_portal, tmp_path):
    src = tmp_path / "rs"
    src.mkdir()
    (src / "a.txt").write_bytes(b"one\n")
    m = mount_portal()
    assert run("rsync", "-r", "--inplace", f"{src}/", f"{m.path}/rs/").returncode == 0
    (src / "a.txt").write_bytes(b"one\ntwo\n")
    assert run("rsync", "-r", "--inplace", f"{src}/", f"{m.path}/rs/").returncode == 0
    assert (m.path / "rs/a.txt").read_bytes() == b"one\ntwo\n"
    plain = run("rsync", "-r", f"{src}/", f"{m.path}/plain/")
    assert plain.returncode != 0 and "Operation not permitted" in plain.stderr


def test_rsync_archive_mode_into_a_token_only_mount(mount_portal, portal, tmp_path):
    # -a sets modes, owners and times: accepted and ignored, so rsync exits 0.
    src = tmp_path / "archive"
    (src / "sub").mkdir(parents=True)
    (src / "run.sh").write_bytes(b"#!/bin/sh\n")
    (src / "run.sh").chmod(0o750)
    (src / "sub" / "data.bin").write_bytes(os.urandom(5000))
    m = mount_portal(member=False)
    first = run("rsync", "-a", "--inplace", f"{src}/", f"{m.path}/archive/")
    assert first.returncode == 0, first.stderr
    assert run("cp", "-a", str(src), str(m.path / "copied")).returncode == 0
    os.chmod(m.path / "archive" / "run.sh", 0o700)
    mode = (m.path / "archive" / "run.sh").stat().st_mode & 0o777
    assert mode == 0o200  # what the mount shows did not change
    # Again: with a token only nothing can be read back to compare, so sizes decide.
    puts = portal.puts()
    again = run("rsync", "-a", "--inplace", "--size-only", f"{src}/", f"{m.path}/archive/")
    assert again.returncode == 0, again.stderr
    assert portal.puts() == puts


def test_rm_r_of_a_portal_folder_with_allow_delete(mount_portal):
    m = mount_portal()
    (m.path / "p/q").mkdir(parents=True)
    (m.path / "p/q/f.txt").write_bytes(b"f")
    other = mount_portal("--allow-delete")
    result = run("rm", "-r", str(other.path / "p"))
    assert result.returncode == 0, result.stderr
    assert list(other.path.iterdir()) == []


def test_mount_and_unmount_say_what_is_wrong(portal, tmp_path):
    env = {**os.environ, **portal.env(), "HOME": str(tmp_path)}
    missing = run(sys.executable, "-m", "portalfs", "mount", str(tmp_path / "nope"), env=env)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    (tmp_path / "plain").mkdir()
    result = run(sys.executable, "-m", "portalfs", "unmount", str(tmp_path / "plain"), env=env)
    assert result.returncode == 2 and "not mounted" in result.stderr


def test_relative_mountpoint_and_cache_dir_work(mount_portal, portal):
    # The daemon runs from another directory than the shell that started it.
    mount = mount_portal("--metadata-ttl", "0", member=False, relative=True)
    puts = portal.puts()
    (mount.path / "made").mkdir()
    (mount.path / "made" / "f.txt").write_bytes(b"relative")
    assert portal.puts() == puts + 1
    # release() follows close() asynchronously; then the spool file goes.
    wait_for(lambda: not any((mount.cache_dir / "spool").iterdir()), 10, "the spool to empty")


def test_many_small_files_reuse_connections(mount_portal, portal, tmp_path):
    # Each request on a new TCP connection costs both ends a connection set-up: once
    # 2 connections a file, because libfuse's threads lost per-thread sessions.
    src = tmp_path / "small"
    src.mkdir()
    for i in range(100):
        (src / f"f{i}").write_bytes(os.urandom(100))
    m = mount_portal(member=False)
    metrics = portal.server.app.state.metrics
    before = metrics.connections
    assert run("cp", "-r", str(src), str(m.path / "small")).returncode == 0
    assert metrics.connections - before <= 4


def test_the_first_listing_reuses_the_connection_of_the_credential_check(mount_portal, portal):
    # Before the mount comes up, `portalfs mount` checks the credentials (portal info). The
    # mount goes on with that connection, so its first request pays no connection set-up:
    # one round trip less for the first ls (more on https, with the TLS handshake).
    metrics = portal.server.app.state.metrics
    before = metrics.connections, metrics.count("GET", "portal_info")
    m = mount_portal()
    assert run("ls", str(m.path)).returncode == 0
    assert metrics.count("GET", "portal_info") == before[1] + 1
    assert metrics.connections == before[0] + 1


def test_ls_lr_gets_attributes_with_the_listing(mount_portal, tmp_path):
    # READDIRPLUS answered with attributes: the kernel needs no LOOKUP per listed file.
    src = tmp_path / "tree"
    for d in range(3):
        (src / f"d{d}").mkdir(parents=True)
        for i in range(40):
            (src / f"d{d}" / f"f{i}").write_bytes(b"x" * i)
    writer = mount_portal(member=False)
    assert run("cp", "-r", str(src), str(writer.path / "tree")).returncode == 0
    m = mount_portal("-o", "debug")
    logged = len(m.log())
    listing = run("ls", "-lR", str(m.path / "tree")).stdout
    assert listing.count("\n-") == 120 and " 39 " in listing
    requests = m.log()[logged:]
    assert requests.count("opcode: READDIRPLUS") >= 4
    assert requests.count("opcode: LOOKUP") <= 5  # "tree" and its 3 folders, not 120 files


def test_concurrent_listings_of_different_folders_stay_apart(mount_portal, tmp_path):
    # Each open directory keeps its own listing between pages (once, all shared one).
    src = tmp_path / "two"
    expected = {}
    for folder, count in (("a", 5), ("b", 200)):  # a's last, empty page is past b's first
        (src / folder).mkdir(parents=True)
        expected[folder] = sorted(f"{folder}{i:03}" for i in range(count))
        for name in expected[folder]:
            (src / folder / name).write_bytes(b"x")  # not empty: stored by close()
    writer = mount_portal(member=False)
    assert run("cp", "-r", str(src), str(writer.path / "two")).returncode == 0
    m = mount_portal()

    def lister(folder: str) -> list[list[str]]:
        return [sorted(os.listdir(m.path / "two" / folder)) for _ in range(20)]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lister, ["a", "b", "a", "b"]))
    for folder, listings in zip(["a", "b", "a", "b"], results, strict=True):
        for listing in listings:
            assert listing == expected[folder], (folder, len(listing), listing[:3])


def test_one_mount_per_cache_folder(mount_portal, portal, tmp_path):
    # Spool and journal are not made to be shared: a second mount on them is refused.
    first = mount_portal(member=False)
    target = tmp_path / "second"
    target.mkdir()
    env = {**os.environ, **portal.env(), "HOME": str(tmp_path)}
    command = [sys.executable, "-m", "portalfs", "mount", str(target), "-f"]
    result = run(*command, "--cache-dir", str(first.cache_dir), env=env)
    assert result.returncode == 2 and "--cache-dir" in result.stderr
    assert not os.path.ismount(target)
    recover = run(
        sys.executable, "-m", "portalfs", "recover", "--cache-dir", str(first.cache_dir), env=env
    )
    assert recover.returncode == 2 and "another portalfs mount" in recover.stderr


def test_files_left_in_an_old_default_cache_folder_are_pointed_out(portal, tmp_path):
    from portalfs.cli_mount import default_cache_dir

    env = {**os.environ, **portal.env(), "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path)}
    env.pop("EI_JWT_TOKEN", None)
    name = default_cache_dir(portal.writer).name  # portal-1-<hash>-token
    old = tmp_path / "portalfs" / name.rsplit("-", 1)[0] / "unsent"
    old.mkdir(parents=True)
    (old / "00-x.json").write_text("{}")
    target = tmp_path / "m"
    target.mkdir()
    result = run(sys.executable, "-m", "portalfs", "mount", str(target), env=env)
    try:
        assert result.returncode == 0, result.stderr
        assert f"portalfs recover --cache-dir {old.parent}" in result.stderr
    finally:
        run("fusermount3", "-u", str(target))


def test_ls_lr_lists_folders_ahead_and_still_lists_each_folder_once(mount_portal, portal, tmp_path):
    # ls -R walks into /tree's 12 subfolders: after the first, the next ones are listed in
    # the background (ListAhead). Each folder still costs one request, whoever made it.
    src = tmp_path / "tree"
    for d in range(12):
        (src / f"d{d:02}").mkdir(parents=True)
        (src / f"d{d:02}" / "f").write_bytes(b"x")
    writer = mount_portal(member=False)
    assert run("cp", "-r", str(src), str(writer.path / "tree")).returncode == 0
    m = mount_portal("--debug")
    metrics = portal.server.app.state.metrics
    before = metrics.count("POST", "list_files")
    listing = run("ls", "-lR", str(m.path / "tree")).stdout
    assert listing.count("\n-") == 12
    assert metrics.count("POST", "list_files") - before == 1 + 1 + 12  # /, /tree, 12 folders
    assert "folders of /tree ahead of the walk" in m.log()
