"""Member operations on files: download link, view, delete, rename (both backends)."""

from __future__ import annotations

import requests

from tests.conftest import md5_hex


def paths(server, prefix: str = "") -> list[str]:
    return [f["path"] for f in server.list_all(prefix)]


def member_call(server, route: str, body: dict) -> requests.Response:
    return server.call("POST", route, body, jwt=server.member_jwt())


def test_download_round_trip(any_server):
    any_server.upload("flowers/daisy.jpg", b"\x00\xffjpeg")
    assert any_server.download("flowers/daisy.jpg") == b"\x00\xffjpeg"


def test_download_of_a_missing_file_is_404(any_server):
    resp = member_call(any_server, "files/download", {"path": "missing.txt"})
    assert resp.status_code == 404
    assert resp.json() == {"success": False, "error": "file not found: 'missing.txt'"}


def test_download_of_a_folder_is_400(any_server):
    any_server.upload("dir/a.txt", b"x")
    resp = member_call(any_server, "files/download", {"path": "dir/"})
    assert resp.status_code == 400


def test_delete(any_server):
    any_server.upload("a.txt", b"a")
    any_server.upload("b.txt", b"b")
    assert member_call(any_server, "files/delete", {"path": "a.txt"}).json() == {"success": True}
    assert paths(any_server) == ["b.txt"]


def test_delete_of_a_missing_file_is_404(any_server):
    resp = member_call(any_server, "files/delete", {"path": "nope.txt"})
    assert resp.status_code == 404


def test_rename_moves_content_and_keeps_the_etag(any_server):
    any_server.upload("old/name.txt", b"content")
    body = {"oldPath": "old/name.txt", "newPath": "new/place/name2.txt"}
    assert member_call(any_server, "files/rename", body).json() == {"success": True}
    assert paths(any_server) == ["new/"]
    [moved] = any_server.list_all("new/place/")
    assert (moved["path"], moved["ETag"]) == ("new/place/name2.txt", md5_hex(b"content"))
    assert any_server.download("new/place/name2.txt") == b"content"


def test_rename_replaces_an_existing_target(any_server):
    any_server.upload("a.txt", b"a")
    any_server.upload("b.txt", b"b")
    assert member_call(any_server, "files/rename", {"oldPath": "a.txt", "newPath": "b.txt"}).ok
    assert paths(any_server) == ["b.txt"]
    assert any_server.download("b.txt") == b"a"


def test_rename_onto_itself_is_a_no_op(any_server):
    any_server.upload("a.txt", b"a")
    assert member_call(any_server, "files/rename", {"oldPath": "a.txt", "newPath": "a.txt"}).ok
    assert any_server.download("a.txt") == b"a"


def test_rename_of_a_missing_file_is_404(any_server):
    resp = member_call(any_server, "files/rename", {"oldPath": "x.txt", "newPath": "y.txt"})
    assert resp.status_code == 404
    assert paths(any_server) == []


def test_rename_into_a_file_is_409(any_server):
    any_server.upload("a.txt", b"a")
    any_server.upload("f", b"f")
    resp = member_call(any_server, "files/rename", {"oldPath": "a.txt", "newPath": "f/a.txt"})
    assert resp.status_code == 409
    assert paths(any_server) == ["a.txt", "f"]


def test_rename_checks_both_names(server):
    server.upload("a.txt", b"a")
    resp = member_call(server, "files/rename", {"oldPath": "a.txt", "newPath": "../a.txt"})
    assert resp.status_code == 400
    assert "newPath" in resp.json()["error"]


def test_view_redirects_to_the_content(any_server):
    any_server.upload("v.txt", b"view me")
    resp = any_server.call(
        "GET",
        "files/view",
        params={"path": "v.txt"},
        jwt=any_server.member_jwt(),
        allow_redirects=False,
    )
    assert resp.status_code == 302
    assert requests.get(resp.headers["Location"], timeout=10).content == b"view me"


def test_view_of_a_missing_file_is_404(server):
    resp = server.call("GET", "files/view", params={"path": "no.txt"}, jwt=server.member_jwt())
    assert resp.status_code == 404


def test_view_without_path_is_400(server):
    resp = server.call("GET", "files/view", jwt=server.member_jwt())
    assert resp.status_code == 400
    assert "path" in resp.json()["error"]
