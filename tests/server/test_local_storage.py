"""The local backend's own duties: md5 in xattrs (and without them), files an admin drops
in, temp-file hygiene, and never serving anything outside the tree or not a plain file."""

from __future__ import annotations

import errno
import os
import threading

import pytest
import requests

from portalfs.server.storage import local, md5s
from portalfs.server.storage.base import InvalidKey
from tests.conftest import md5_hex


def etags(server, prefix: str = "") -> dict[str, str | None]:
    """path -> ETag of each file of one folder (None: listed without one)."""
    return {f["path"]: f.get("ETag") for f in server.list_all(prefix) if f["type"] == "file"}


def hashed_in_the_background(server) -> None:
    """Waits until the server's background hasher has nothing left to do."""
    assert server.app.state.services.storage.hasher.wait_idle(30)


@pytest.fixture
def hashes(monkeypatch) -> list[str]:
    """Names of the files whose md5 the server computed by reading them, each noted with
    the name of the thread that read it ("name@thread")."""
    computed: list[str] = []
    real = md5s._hash_file

    def counting(f, path):
        computed.append(f"{path.name}@{threading.current_thread().name}")
        return real(f, path)

    monkeypatch.setattr(md5s, "_hash_file", counting)
    return computed


def test_upload_stores_md5_in_an_xattr(server, hashes):
    server.upload("a.txt", b"abc")
    path = server.data_dir / "objects" / "portal-1" / "a.txt"
    md5, size, mtime_ns = os.getxattr(path, local.MD5_XATTR).decode().split()
    assert (md5, int(size), int(mtime_ns)) == (md5_hex(b"abc"), 3, path.stat().st_mtime_ns)
    assert etags(server) == {"a.txt": md5_hex(b"abc")}
    assert hashes == []


def test_dropped_in_files_are_hashed_once_in_the_background_never_by_a_request(server, hashes):
    folder = server.data_dir / "objects" / "portal-1" / "dropped"
    folder.mkdir(parents=True)
    for n in range(20):
        (folder / f"f{n:02}.bin").write_bytes(b"by hand %d" % n)
    # Listed at once, without ETags (optional in the API): no request reads the files.
    first = etags(server, "dropped/")
    assert len(first) == 20 and set(first.values()) == {None}
    for _ in range(4):
        etags(server, "dropped/")
    hashed_in_the_background(server)
    expected = {f"dropped/f{n:02}.bin": md5_hex(b"by hand %d" % n) for n in range(20)}
    assert etags(server, "dropped/") == expected
    assert sorted(hashes) == [f"f{n:02}.bin@portalfs-md5" for n in range(20)]  # once each
    assert os.getxattr(folder / "f00.bin", local.MD5_XATTR)


def test_a_dropped_in_file_is_read_and_linked_without_being_hashed_on_the_request(server, hashes):
    (server.data_dir / "objects" / "portal-1").mkdir(parents=True, exist_ok=True)
    (server.data_dir / "objects" / "portal-1" / "d.bin").write_bytes(b"dropped")
    assert "ETag" not in server.upload_link("d.bin", b"other").json()
    # Served with or without an ETag, depending on whether the hasher has it yet.
    assert server.download("d.bin") == b"dropped"
    hashed_in_the_background(server)
    assert hashes == ["d.bin@portalfs-md5"]
    assert server.upload_link("d.bin", b"other").json()["ETag"] == md5_hex(b"dropped")


def test_file_edited_in_place_gets_a_fresh_etag(server):
    server.upload("e.txt", b"before")
    path = server.data_dir / "objects" / "portal-1" / "e.txt"
    path.write_bytes(b"after!")  # same size, new mtime: the xattr no longer matches
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert etags(server) == {"e.txt": None}  # never the old one
    hashed_in_the_background(server)
    assert etags(server) == {"e.txt": md5_hex(b"after!")}
    assert server.download("e.txt") == b"after!"


def test_a_folder_is_read_once_for_all_its_pages_until_it_changes(start_server, monkeypatch):
    server = start_server(page_size=10)
    for n in range(25):
        server.upload(f"f{n:02}.txt", b"x")
    folder = server.data_dir / "objects" / "portal-1"
    scans: list[str] = []
    real_scandir = os.scandir

    def counting(path):
        scans.append(os.fspath(path))
        return real_scandir(path)

    def settled() -> None:
        # As if the folder last changed a second ago: a scan of a folder changed within the
        # last clock tick is not kept (a change in the same tick would not move its mtime).
        past = folder.stat().st_mtime_ns - 10**9
        os.utime(folder, ns=(past, past))

    monkeypatch.setattr(os, "scandir", counting)
    settled()
    assert len(server.list_all()) == 25  # 3 pages
    assert len(server.list_all()) == 25
    assert scans.count(os.fspath(folder)) == 1
    (folder / "by-hand.txt").write_bytes(b"placed by other means")  # moves the mtime
    settled()
    assert len(server.list_all()) == 26
    server.upload("f99.txt", b"y")
    settled()
    assert len(server.list_all()) == 27
    assert scans.count(os.fspath(folder)) == 3


def test_without_xattrs_md5_is_kept_in_memory(server, hashes, monkeypatch):
    def unsupported(*args, **kwargs):
        raise OSError(errno.ENOTSUP, "xattrs unsupported")

    monkeypatch.setattr(os, "setxattr", unsupported)
    monkeypatch.setattr(os, "getxattr", unsupported)
    server.upload("n.txt", b"no xattr")
    assert etags(server) == {"n.txt": md5_hex(b"no xattr")}
    assert server.upload_link("n.txt", b"x").json()["ETag"] == md5_hex(b"no xattr")
    assert hashes == []  # known from the upload itself
    (server.data_dir / "objects" / "portal-1" / "m.txt").write_bytes(b"dropped")
    etags(server)
    hashed_in_the_background(server)
    assert etags(server)["m.txt"] == md5_hex(b"dropped")
    assert etags(server)["m.txt"] == md5_hex(b"dropped")
    assert hashes == ["m.txt@portalfs-md5"]


def test_unfinished_temp_files_are_removed_at_start(start_server):
    first = start_server()
    first.handle.stop()
    leftover = first.data_dir / "tmp" / "put-crashed"
    leftover.write_bytes(b"half an upload")
    start_server(data_dir=first.data_dir)
    assert not leftover.exists()


def test_symlinks_and_special_files_are_neither_listed_nor_served(server, tmp_path):
    server.upload("real.txt", b"real")
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"secret")
    portal_dir = server.data_dir / "objects" / "portal-1"
    (portal_dir / "link.txt").symlink_to(outside)
    (portal_dir / "linkdir").symlink_to(tmp_path, target_is_directory=True)
    os.mkfifo(portal_dir / "fifo")
    assert [f["path"] for f in server.list_all()] == ["real.txt"]
    resp = server.call("POST", "files/download", {"path": "link.txt"}, jwt=server.member_jwt())
    assert resp.status_code == 404
    signer = server.app.state.services.signer
    direct = requests.get(signer.url("GET", "portal-1/link.txt"), timeout=10)
    assert direct.status_code == 404
    through_link = server.upload_link("linkdir/evil.txt", b"evil")
    assert through_link.status_code == 400
    assert "escapes" in through_link.json()["error"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside.txt"]


def test_storage_paths_cannot_escape_the_objects_folder(server):
    storage = server.app.state.services.storage
    with pytest.raises(InvalidKey, match="escapes"):
        storage.path_for("portal-1/../../state.json")
    assert storage.path_for("portal-1/a/b") == storage.root / "portal-1" / "a" / "b"


def test_a_symlinked_folder_at_any_depth_is_refused_unless_it_stays_inside(server, tmp_path):
    storage = server.app.state.services.storage
    deep = storage.root / "portal-1" / "a" / "b"
    deep.mkdir(parents=True)
    (deep / "out").symlink_to(tmp_path, target_is_directory=True)
    (deep / "in").symlink_to(storage.root / "portal-1" / "a", target_is_directory=True)
    with pytest.raises(InvalidKey, match="escapes"):
        storage.path_for("portal-1/a/b/out/c/evil.txt")
    assert storage.path_for("portal-1/a/b/in/ok.txt") == deep / "in" / "ok.txt"
    assert storage.path_for("portal-1/new/folder/x") == storage.root / "portal-1/new/folder/x"


def test_a_listing_never_reads_a_symlinked_folder_that_leads_out(server, tmp_path):
    (tmp_path / "outside.txt").write_bytes(b"secret")
    portal_dir = server.data_dir / "objects" / "portal-1"
    portal_dir.mkdir(parents=True, exist_ok=True)
    (portal_dir / "linkdir").symlink_to(tmp_path, target_is_directory=True)
    resp = server.call("POST", "files", {"prefix": "linkdir/"})
    assert resp.status_code == 400 and "escapes" in resp.json()["error"]
    storage = server.app.state.services.storage
    (portal_dir / "inside").symlink_to(portal_dir, target_is_directory=True)
    server.upload("a.txt", b"a")
    entries, _ = storage.list_page("portal-1/inside/", None, 10, False)
    assert [e.key for e in entries] == ["portal-1/inside/a.txt"]


def test_the_objects_root_itself_can_be_listed(server):
    # A portal whose prefix is "" (a hand-made state file) lists the whole folder, as on S3.
    server.upload("a.txt", b"a")
    entries, _ = server.app.state.services.storage.list_page("", None, 10, False)
    assert [e.key for e in entries] == ["portal-1/"]


def test_even_a_validly_signed_escaping_key_is_refused(server):
    # Only validated keys are ever signed; this checks the second line of defence.
    signer = server.app.state.services.signer
    url = signer.url("GET", "portal-1/../../state.json").replace("..", "%2e%2e")
    resp = requests.get(url, timeout=10)
    assert resp.status_code == 400
    assert "escapes" in resp.json()["error"]


@pytest.mark.parametrize("key", ["portal-1/a\0b", "portal-1/" + "x" * 256])
def test_even_a_validly_signed_key_the_file_system_cannot_hold_is_400(server, key):
    # Found by tests/server/test_fuzz.py: names.py keeps such keys from being signed, but
    # the storage answered one with a 500 (ValueError / ENAMETOOLONG) instead of refusing.
    signer = server.app.state.services.signer
    put = requests.put(signer.url("PUT", key, 1, md5_hex(b"x")), data=b"x", timeout=10)
    get = requests.get(signer.url("GET", key), timeout=10)
    assert (put.status_code, get.status_code) == (400, 400)
    assert "file system can hold" in put.json()["error"]
    assert list((server.data_dir / "tmp").iterdir()) == []
