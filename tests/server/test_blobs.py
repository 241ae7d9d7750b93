"""Signed storage URLs: tampering and expiry (403), Range GETs, ETag and other headers."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

import pytest
import requests

from tests.conftest import md5_hex

DATA = bytes(range(100))


@pytest.fixture
def hundred(any_server):
    """any_server holding a 100-byte file, and its download URL."""
    any_server.upload("data.bin", DATA)
    return any_server, any_server.download_url("data.bin")


@pytest.mark.parametrize(
    "header, status, body, content_range",
    [
        ("bytes=10-19", 206, DATA[10:20], "bytes 10-19/100"),
        ("bytes=90-", 206, DATA[90:], "bytes 90-99/100"),
        ("bytes=-5", 206, DATA[-5:], "bytes 95-99/100"),
        ("bytes=-500", 206, DATA, "bytes 0-99/100"),
        ("bytes=95-200", 206, DATA[95:], "bytes 95-99/100"),
        ("bytes=0-0", 206, DATA[:1], "bytes 0-0/100"),
    ],
)
def test_ranges(hundred, header, status, body, content_range):
    _, url = hundred
    resp = requests.get(url, headers={"Range": header}, timeout=10)
    assert resp.status_code == status
    assert resp.content == body
    assert resp.headers["Content-Range"] == content_range
    assert resp.headers["Content-Length"] == str(len(body))


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=200-300"])
def test_unsatisfiable_range_is_416(hundred, header):
    _, url = hundred
    resp = requests.get(url, headers={"Range": header}, timeout=10)
    assert resp.status_code == 416


def test_local_416_names_the_size(server):
    server.upload("data.bin", DATA)
    resp = requests.get(server.download_url("data.bin"), headers={"Range": "bytes=-0"}, timeout=10)
    assert resp.status_code == 416
    assert resp.headers["Content-Range"] == "bytes */100"


@pytest.mark.parametrize("header", ["items=0-1", "bytes=5-2", "bytes=0-1,5-6", "bytes=x-"])
def test_unsupported_range_headers_get_the_whole_file(server, header):
    server.upload("data.bin", DATA)
    resp = requests.get(server.download_url("data.bin"), headers={"Range": header}, timeout=10)
    assert (resp.status_code, resp.content) == (200, DATA)


def test_full_get_headers(hundred):
    _, url = hundred
    resp = requests.get(url, timeout=10)
    assert resp.status_code == 200
    assert resp.content == DATA
    assert resp.headers["ETag"] == f'"{md5_hex(DATA)}"'
    assert resp.headers["Content-Length"] == "100"
    assert resp.headers["Accept-Ranges"] == "bytes"
    age = time.time() - parsedate_to_datetime(resp.headers["Last-Modified"]).timestamp()
    assert -5 < age < 120


def test_empty_file(any_server):
    any_server.upload("empty", b"")
    assert any_server.download("empty") == b""
    assert any_server.list_all()[0]["ETag"] == md5_hex(b"")


def _replace_query(url: str, name: str, value: str) -> str:
    head, query = url.split("?")
    parts = [p if not p.startswith(name + "=") else f"{name}={value}" for p in query.split("&")]
    return head + "?" + "&".join(parts)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda u: _replace_query(u, "signature", "0" * 64),
        lambda u: _replace_query(u, "signature", "é"),
        lambda u: _replace_query(u, "expires", "9999999999"),
        lambda u: u.replace("data.bin", "other.bin"),
        lambda u: u.replace("/portal-1/", "/portal-2/"),
        lambda u: u.split("?")[0],
    ],
)
def test_tampered_get_urls_are_403(server, tamper):
    server.upload("data.bin", DATA)
    server.upload("other.bin", b"secret")
    resp = requests.get(tamper(server.download_url("data.bin")), timeout=10)
    assert resp.status_code == 403
    assert resp.json()["success"] is False


def test_get_url_cannot_be_used_to_put(server):
    server.upload("data.bin", DATA)
    resp = requests.put(server.download_url("data.bin"), data=b"x", timeout=10)
    assert resp.status_code == 403
    assert server.download("data.bin") == DATA


def test_expired_urls_are_403(server):
    server.upload("data.bin", DATA)
    signer = server.app.state.services.signer
    past = int(time.time()) - 1
    get = requests.get(signer.url("GET", "portal-1/data.bin", expires=past), timeout=10)
    assert get.status_code == 403
    assert "expired" in get.json()["error"]
    put_url = signer.url("PUT", "portal-1/data.bin", size=1, md5=md5_hex(b"x"), expires=past)
    put = requests.put(put_url, data=b"x", timeout=10)
    assert put.status_code == 403
    assert server.download("data.bin") == DATA


def test_links_expire_after_the_configured_ttl(start_server, wait_until):
    server = start_server(link_ttl_s=2)  # whole seconds: valid for 1-2 s
    server.upload("data.bin", DATA)
    url = server.download_url("data.bin")
    assert requests.get(url, timeout=10).status_code == 200
    wait_until(lambda: requests.get(url, timeout=10).status_code == 403, timeout_s=6)


def test_missing_object_is_404(server):
    server.upload("data.bin", DATA)
    url = server.download_url("data.bin")
    assert server.call("POST", "files/delete", {"path": "data.bin"}, jwt=server.member_jwt()).ok
    resp = requests.get(url, timeout=10)
    assert resp.status_code == 404
