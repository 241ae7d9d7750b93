"""The client library against a real portal server: endpoints, dedup, transfers, typed errors."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import socket
from dataclasses import replace
from urllib.parse import urlsplit

import pytest

from portalfs.client import errors
from portalfs.hashing import file_md5
from portalfs.write.upload import Outcome, Uploader, UploadRequest
from tests.portal_fixtures import clients, start_portal


def upload(portal, creds, tmp_path, name, data, known_etag=None):
    src = tmp_path / hashlib.md5(name.encode()).hexdigest()
    src.write_bytes(data)
    client, storage = clients(creds)
    req = UploadRequest(src, name, len(data), file_md5(src), known_etag)
    return Uploader(client, storage).upload(req)


def test_upload_list_download_round_trip(portal, tmp_path):
    data = bytes(range(256)) * 4000
    assert upload(portal, portal.writer, tmp_path, "flowers/daisy.jpg", data) == Outcome.UPLOADED
    client, storage = clients(portal.member)
    (folder,) = list(client.iter_folder(""))
    assert folder.is_folder and folder.name.rstrip("/") == "flowers"
    (file,) = list(client.iter_folder("flowers"))
    assert (file.name, file.size, file.md5) == (
        "daisy.jpg",
        len(data),
        hashlib.md5(data).hexdigest(),
    )
    url = client.download_link("flowers/daisy.jpg")
    out = tmp_path / "out"
    with open(out, "wb") as f:
        assert storage.download_to(url, f) == hashlib.md5(data).hexdigest()
    assert out.read_bytes() == data


def test_same_bytes_same_name_are_skipped_without_a_put(portal, tmp_path):
    upload(portal, portal.writer, tmp_path, "a.bin", b"x" * 1000)
    puts = portal.puts()
    assert upload(portal, portal.writer, tmp_path, "a.bin", b"x" * 1000) == Outcome.SKIPPED
    assert portal.puts() == puts
    assert upload(portal, portal.writer, tmp_path, "a.bin", b"y" * 1000) == Outcome.UPLOADED
    assert portal.puts() == puts + 1


def test_known_etag_skips_without_any_request(portal, tmp_path):
    md5 = hashlib.md5(b"z").hexdigest()
    before = sum(portal.server.app.state.metrics.snapshot().values())
    assert (
        upload(portal, portal.writer, tmp_path, "z", b"z", known_etag=f'"{md5}"') == Outcome.SKIPPED
    )
    assert sum(portal.server.app.state.metrics.snapshot().values()) == before


def test_empty_file_uploads(portal, tmp_path):
    assert upload(portal, portal.writer, tmp_path, "empty", b"") == Outcome.UPLOADED
    client, _ = clients(portal.writer)
    (entry,) = list(client.iter_folder(""))
    assert entry.size == 0


def test_range_reads(portal, tmp_path):
    data = bytes(range(256)) * 100
    upload(portal, portal.writer, tmp_path, "r.bin", data)
    client, storage = clients(portal.member)
    url = client.download_link("r.bin")
    got = storage.get_range(url, 1000, 500)
    assert got.data == data[1000:1500]
    assert storage.get_range(url, len(data) - 10, 100).data == data[-10:]


def test_range_read_of_a_replaced_object_is_a_conflict(portal, tmp_path):
    upload(portal, portal.writer, tmp_path, "c.bin", b"a" * 5000)
    client, storage = clients(portal.member)
    url = client.download_link("c.bin")
    etag = storage.get_range(url, 0, 10).etag
    upload(portal, portal.writer, tmp_path, "c.bin", b"b" * 5000)
    with pytest.raises(errors.ConflictError):
        storage.get_range(client.download_link("c.bin"), 10, 10, etag)


def test_paging_lists_every_entry_once(tmp_path):
    p = start_portal(tmp_path / "server", page_size=3)
    try:
        for i in range(7):
            upload(p, p.writer, tmp_path, f"f{i}.txt", str(i).encode())
        for i in range(3):
            upload(p, p.writer, tmp_path, f"d{i}/x", b"x")
        client, _ = clients(p.writer)
        names = [e.name.rstrip("/") for e in client.iter_folder("")]
        assert sorted(names) == sorted([f"f{i}.txt" for i in range(7)] + ["d0", "d1", "d2"])
        assert len(names) == 10
        listings = p.server.app.state.metrics.count("POST", "list_files")
        assert listings == 4  # ceil(10 / 3) pages
    finally:
        p.server.stop()


def test_token_only_cannot_read_delete_or_rename(portal, tmp_path):
    upload(portal, portal.writer, tmp_path, "secret.txt", b"s")
    client, _ = clients(portal.writer)
    for call in (
        lambda: client.download_link("secret.txt"),
        lambda: client.delete("secret.txt"),
        lambda: client.rename("secret.txt", "other.txt"),
    ):
        with pytest.raises((errors.AuthError, errors.AccessDeniedError)):
            call()


def test_member_can_delete_and_rename(portal, tmp_path):
    upload(portal, portal.writer, tmp_path, "a.txt", b"a")
    client, _ = clients(portal.member)
    client.rename("a.txt", "b/c.txt")
    assert [e.name for e in client.iter_folder("b")] == ["c.txt"]
    client.delete("b/c.txt")
    assert list(client.iter_folder("b")) == []


def test_wrong_token_is_an_auth_error(portal):
    client, _ = clients(replace(portal.writer, portal_token="0" * 64))
    with pytest.raises(errors.AuthError):
        client.info()


def test_expired_or_wrong_password_login(portal):
    client, _ = clients(portal.writer)
    with pytest.raises((errors.AuthError, errors.RejectedError)):
        client.login(portal.username, "wrong password")


def test_info(portal):
    client, _ = clients(portal.writer)
    info = client.info()
    assert info.name and info.organization_id >= 1


def test_unreachable_server_is_unavailable(portal):
    client, _ = clients(replace(portal.writer, api_url="http://127.0.0.1:9/v1"))
    with pytest.raises(errors.UnavailableError):
        client.info()


def test_server_refuses_bad_names_client_refuses_first(portal):
    client, _ = clients(portal.writer)
    with pytest.raises(errors.InvalidNameError):
        client.upload_link("../escape", 1, "0" * 32)


def _server_end_nodelay(client_end: socket.socket) -> int:
    """TCP_NODELAY on the server's socket of `client_end`'s connection: the server runs in
    this process, so its end is among our open descriptors."""
    for name in os.listdir("/proc/self/fd"):
        try:
            sock = socket.socket(fileno=os.dup(int(name)))
        except OSError:
            continue  # not a socket (or gone meanwhile)
        with sock, contextlib.suppress(OSError):
            if sock.getpeername() == client_end.getsockname():
                return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    raise AssertionError("the server's end of the connection was not found")


def test_kept_alive_requests_are_not_held_back_by_nagle(portal):
    # With Nagle on at the server each answer on a reused connection waits ~40 ms for a
    # delayed ACK of its headers. Checked on the socket itself, not on a time limit.
    url = urlsplit(portal.api_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        for _ in range(2):  # the second on the kept-alive connection
            conn.request("GET", f"{url.path}/api/portals/{portal.portal_id}")
            conn.getresponse().read()
        assert _server_end_nodelay(conn.sock) == 1
    finally:
        conn.close()
