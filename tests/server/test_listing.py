"""Listing one folder level: entry format, S3 key order, paging, onlyFetchFolders, prefixes."""

from __future__ import annotations

import base64
import hashlib
import re
import uuid

import pytest

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def test_file_and_folder_entries(any_server):
    any_server.upload("flowers/daisy.jpg", b"daisy")
    any_server.upload("readme.txt", b"hello")
    root = any_server.list_all()
    assert [(f["name"], f["path"], f["type"]) for f in root] == [
        ("flowers", "flowers/", "folder"),
        ("readme.txt", "readme.txt", "file"),
    ]
    assert set(root[0]) == {"name", "path", "type"}
    [daisy] = any_server.list_all("flowers/")
    assert daisy["name"] == "daisy.jpg"
    assert daisy["path"] == "flowers/daisy.jpg"
    assert daisy["size"] == 5
    assert daisy["ETag"] == hashlib.md5(b"daisy").hexdigest()
    assert ISO_UTC.fullmatch(daisy["addedDate"]), daisy["addedDate"]


def test_prefix_without_trailing_slash_is_the_folder(any_server):
    any_server.upload("a/b/c.txt", b"x")
    assert [f["path"] for f in any_server.list_all("a/b")] == ["a/b/c.txt"]
    assert [f["path"] for f in any_server.list_all("a")] == ["a/b/"]


def test_missing_folder_lists_empty(any_server):
    assert any_server.list_page("nothing/here/") == {"success": True, "files": []}


@pytest.fixture
def paged_server(start_server, request):
    """A server with page size 3, on the backend the test asks for."""
    if request.param == "s3":
        bucket = request.getfixturevalue("aws_env").bucket
        return start_server(page_size=3, storage_url=f"s3://{bucket}/{uuid.uuid4().hex}")
    return start_server(page_size=3)


@pytest.mark.parametrize("paged_server", ["local", "s3"], indirect=True)
def test_paging_returns_every_entry_once_in_order(paged_server):
    # Folders and files interleave in S3 key order ("a-" < "a/" < "a0" in bytes).
    paths = ["a-file", "a/inner", "a0", "b", "c/x", "c/y", "d.txt", "e/f/g", "f/1", "z", "é.txt"]
    for path in paths:
        paged_server.upload(path, path.encode())
    want = ["a-file", "a/", "a0", "b", "c/", "d.txt", "e/", "f/", "z", "é.txt"]
    pages, token = [], None
    while True:
        page = paged_server.list_page("", token)
        pages.append([f["path"] for f in page["files"]])
        token = page.get("continuationToken")
        if token is None:
            break
    assert [p for page in pages for p in page] == want
    assert [len(p) for p in pages] == [3, 3, 3, 1]
    assert want == sorted(want, key=lambda p: p.encode())


@pytest.mark.parametrize("paged_server", ["local", "s3"], indirect=True)
def test_only_fetch_folders(paged_server):
    for path in ["a.txt", "b/1", "c.txt", "d/1", "e/1", "f.txt", "g/1", "h/1"]:
        paged_server.upload(path, b"x")
    folders = paged_server.list_all("", onlyFetchFolders=True)
    assert [f["path"] for f in folders] == ["b/", "d/", "e/", "g/", "h/"]
    assert {f["type"] for f in folders} == {"folder"}


def test_garbage_continuation_tokens_are_400(any_server):
    any_server.upload("a.txt", b"x")
    for garbage in ["garbage", "!!!!", base64.urlsafe_b64encode(b"hello\nworld").decode()]:
        resp = any_server.call("POST", "files", {"prefix": "", "continuationToken": garbage})
        assert resp.status_code == 400, garbage
        assert "continuationToken" in resp.json()["error"]


def test_token_of_another_folder_is_400(start_server):
    server = start_server(page_size=1)
    for path in ["a/1", "a/2", "b/1", "b/2"]:
        server.upload(path, b"x")
    token = server.list_page("a/")["continuationToken"]
    resp = server.call("POST", "files", {"prefix": "b/", "continuationToken": token})
    assert resp.status_code == 400
    assert "another folder" in resp.json()["error"]


def test_empty_continuation_token_means_first_page(server):
    server.upload("a.txt", b"x")
    assert len(server.list_page("", "")["files"]) == 1


@pytest.mark.parametrize(
    "prefix, message",
    [("/", "relative"), ("a//", "empty segment"), ("../", "'..'"), ("a\x00/", "control")],
)
def test_bad_prefixes_are_400(server, prefix, message):
    resp = server.call("POST", "files", {"prefix": prefix})
    assert resp.status_code == 400
    assert message in resp.json()["error"]


def test_deleting_the_last_file_removes_the_folder(any_server):
    any_server.upload("only/child.txt", b"x")
    jwt = any_server.member_jwt()
    assert any_server.call("POST", "files/delete", {"path": "only/child.txt"}, jwt=jwt).ok
    assert any_server.list_all() == []
