"""upload-link and the local backend's PUT: input checks, md5/size enforcement, atomic
replacement, interrupted uploads, ETags for skipping, file/folder conflicts."""

from __future__ import annotations

import hashlib
import logging
import socket
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import md5_hex


def stored(server) -> list[str]:
    """Every file under the local backend's objects folder, relative to it."""
    root = server.data_dir / "objects"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def temp_files(server) -> list[str]:
    return [p.name for p in (server.data_dir / "tmp").iterdir()]


@pytest.mark.parametrize(
    "name, message",
    [
        ("", "empty"),
        ("/abs.txt", "relative"),
        ("dir/", "folder"),
        ("a//b", "empty segment"),
        ("./a", "'.'"),
        ("a/../b", "'..'"),
        ("a\x00b", "control character U+0000"),
        ("a\nb", "control character U+000A"),
        ("x" * 1025, "1025 bytes"),
        ("é" * 513, "1026 bytes"),
        ("x" * 256, "longer than 255"),
        ("\ud800", "UTF-8"),
    ],
)
def test_bad_file_names_are_400_with_a_reason(server, name, message):
    resp = server.call(
        "POST", "upload-link", {"fileName": name, "fileSize": 1, "fileHash": "0" * 32}
    )
    assert resp.status_code == 400
    assert resp.json()["success"] is False
    assert message in resp.json()["error"]


@pytest.mark.parametrize(
    "body, message",
    [
        ({"fileSize": -1}, "negative"),
        ({"fileSize": 5 * 1024**3 + 1}, "limit"),
        ({"fileSize": "12"}, "fileSize"),
        ({"fileSize": 1.5}, "fileSize"),
        ({"fileSize": True}, "fileSize"),
        ({"fileHash": "abc"}, "32 hex"),
        ({"fileHash": "g" * 32}, "32 hex"),
        ({"fileHash": None}, "fileHash"),
        ({"fileName": 7}, "fileName"),
    ],
)
def test_bad_sizes_and_hashes_are_400(server, body, message):
    full = {"fileName": "a.txt", "fileSize": 1, "fileHash": "0" * 32} | body
    resp = server.call("POST", "upload-link", full)
    assert resp.status_code == 400
    assert message in resp.json()["error"]


def test_missing_fields_are_400(server):
    resp = server.call("POST", "upload-link", {"fileName": "a.txt"})
    assert resp.status_code == 400
    assert "fileSize" in resp.json()["error"] and "fileHash" in resp.json()["error"]


def test_upper_case_hash_is_accepted(server):
    data = b"upper"
    body = {"fileName": "u.txt", "fileSize": len(data), "fileHash": md5_hex(data).upper()}
    link = server.call("POST", "upload-link", body)
    assert requests.put(link.json()["url"], data=data, timeout=10).status_code == 200
    assert server.download("u.txt") == data


def test_upload_link_reports_the_stored_etag(any_server):
    data = b"first version"
    assert "ETag" not in any_server.upload_link("f.txt", data).json()
    any_server.upload("f.txt", data)
    assert any_server.upload_link("f.txt", data).json()["ETag"] == md5_hex(data)
    assert any_server.upload_link("f.txt", b"other").json()["ETag"] == md5_hex(data)


def test_overwrite_replaces_content_and_etag(any_server):
    any_server.upload("f.txt", b"one")
    any_server.upload("f.txt", b"two!")
    [entry] = any_server.list_all()
    assert (entry["size"], entry["ETag"]) == (4, md5_hex(b"two!"))
    assert any_server.download("f.txt") == b"two!"


def test_put_response_carries_the_etag(any_server):
    link = any_server.upload_link("e.txt", b"etag").json()["url"]
    put = requests.put(link, data=b"etag", timeout=10)
    assert put.status_code == 200
    assert put.headers["ETag"] == f'"{md5_hex(b"etag")}"'


def test_body_with_other_md5_is_rejected_and_nothing_replaced(server):
    server.upload("f.txt", b"original")
    link = server.upload_link("f.txt", b"declared").json()["url"]
    put = requests.put(link, data=b"tampered", timeout=10)  # same size, other bytes
    assert put.status_code == 400
    assert "md5" in put.json()["error"]
    assert server.download("f.txt") == b"original"
    assert temp_files(server) == []


def test_body_of_other_size_is_rejected(server):
    link = server.upload_link("f.txt", b"declared").json()["url"]
    put = requests.put(link, data=b"much longer body", timeout=10)
    assert put.status_code == 400
    assert "Content-Length" in put.json()["error"]
    assert stored(server) == [] and temp_files(server) == []


def test_chunked_put_without_length_is_411(server):
    link = server.upload_link("f.txt", b"data").json()["url"]
    put = requests.put(link, data=iter([b"da", b"ta"]), timeout=10)
    assert put.status_code == 411
    assert stored(server) == []


def test_signed_size_and_md5_cannot_be_edited(server):
    link = server.upload_link("f.txt", b"data").json()["url"]
    forged = link.replace("size=4", "size=5").replace(md5_hex(b"data"), md5_hex(b"data!"))
    put = requests.put(forged, data=b"data!", timeout=10)
    assert put.status_code == 403
    assert stored(server) == []


def test_interrupted_put_keeps_the_old_version_and_no_temp_file(server, wait_until, caplog):
    server.upload("big.bin", b"old")
    new = bytes(range(256)) * 4096  # 1 MiB
    url = urlsplit(server.upload_link("big.bin", new).json()["url"])
    request = (
        f"PUT {url.path}?{url.query} HTTP/1.1\r\nHost: {url.netloc}\r\n"
        f"Content-Length: {len(new)}\r\n\r\n"
    ).encode()
    metrics = server.app.state.metrics
    before = metrics.count("PUT", "storage_put")
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall(request + new[: len(new) // 2])
    wait_until(lambda: metrics.count("PUT", "storage_put") == before + 1, what="the cut PUT")
    assert server.download("big.bin") == b"old"
    assert temp_files(server) == []
    assert stored(server) == ["portal-1/big.bin"]
    # A client going away is not a server error.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_file_where_a_folder_is_needed_is_409(any_server):
    any_server.upload("a", b"file")
    resp = any_server.upload_link("a/b.txt", b"x")
    assert resp.status_code == 409
    assert "'a' is a file" in resp.json()["error"]


def test_file_over_a_folder_is_409(any_server):
    any_server.upload("a/b.txt", b"x")
    resp = any_server.upload_link("a", b"file")
    assert resp.status_code == 409
    assert "is a folder" in resp.json()["error"]


def test_large_upload_streams_and_hashes(server):
    data = hashlib.sha256(b"seed").digest() * (3 * 1024 * 1024 // 32 + 7)  # ~3 MiB, odd size
    server.upload("large.bin", data)
    assert server.download("large.bin") == data
    assert server.list_all()[0]["ETag"] == md5_hex(data)


def test_names_with_spaces_and_unicode_round_trip(any_server):
    path = "fleurs d'été/ümlaut #1 ?&=%.txt"
    any_server.upload(path, b"unicode")
    assert any_server.download(path) == b"unicode"
    assert [f["path"] for f in any_server.list_all("fleurs d'été/")] == [path]
