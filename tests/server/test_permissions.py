"""Who may do what: every operation for every kind of caller, as the API doc's table says."""

from __future__ import annotations

import time

import jwt
import pytest
import requests

OPS = {
    # name: (method, route, body, query)
    "info": ("GET", "", None, None),
    "list": ("POST", "files", {"prefix": ""}, None),
    "upload-link": (
        "POST",
        "upload-link",
        {"fileName": "b.txt", "fileSize": 1, "fileHash": "0" * 32},
        None,
    ),
    "view": ("GET", "files/view", None, {"path": "a.txt"}),
    "download": ("POST", "files/download", {"path": "a.txt"}, None),
    "rename": ("POST", "files/rename", {"oldPath": "a.txt", "newPath": "c.txt"}, None),
    "delete": ("POST", "files/delete", {"path": "c.txt"}, None),
}
UPLOAD_OPS = {"info", "list", "upload-link"}
OK = {op: (302 if op == "view" else 200) for op in OPS}


def expected(upload: int | None, member: int | None) -> dict[str, int]:
    """The status of each op: OK where allowed, else `upload`/`member` for the op's kind."""
    return {op: (upload if op in UPLOAD_OPS else member) or OK[op] for op in OPS}


def credentials(server, caller: str) -> dict:
    """The headers `caller` sends, as keyword arguments of PortalServer.call."""
    token = server.portal_token

    def expired() -> str:
        return server.app.state.services.issuer.issue(1, now=time.time() - 2 * 86400)

    make = {
        "nothing": lambda: {"token": None},
        "token": lambda: {"token": token},
        "token+member": lambda: {"token": token, "jwt": server.member_jwt()},
        "member": lambda: {"token": None, "jwt": server.member_jwt()},
        "token+outsider": lambda: {"token": token, "jwt": server.add_outsider()["jwt"]},
        "outsider": lambda: {"token": None, "jwt": server.add_outsider()["jwt"]},
        "expired": lambda: {"token": None, "jwt": expired()},
        "token+expired": lambda: {"token": token, "jwt": expired()},
        "forged-jwt": lambda: {"token": token, "jwt": server.member_jwt()[:-4] + "AAAA"},
        "wrong-token": lambda: {"token": "0" * 64},
        "portal-2-token": lambda: {"token": server.add_portal()["token"]},
    }
    return make[caller]()


TABLE = {
    "nothing": expected(401, 401),
    "token": expected(None, 403),
    "token+member": expected(None, None),
    "member": expected(None, None),
    "token+outsider": expected(None, 403),
    "outsider": expected(403, 403),
    "expired": expected(401, 401),
    "token+expired": expected(401, 401),
    "forged-jwt": expected(401, 401),
    "wrong-token": expected(401, 401),
    "portal-2-token": expected(401, 401),
}


@pytest.mark.parametrize("caller", list(TABLE))
def test_permission_table(server, caller):
    server.upload("a.txt", b"content")
    creds = credentials(server, caller)
    seen = {}
    for op, (method, route, body, query) in OPS.items():
        resp = server.call(method, route, body, params=query, allow_redirects=False, **creds)
        seen[op] = resp.status_code
        if resp.status_code >= 400:
            assert resp.json()["success"] is False
            assert resp.json()["error"]
    assert seen == TABLE[caller]


def test_member_changes_really_happen(server):
    server.upload("a.txt", b"content")
    jwt = server.member_jwt()
    assert server.call("POST", "files/rename", {"oldPath": "a.txt", "newPath": "c.txt"}, jwt=jwt).ok
    assert [f["path"] for f in server.list_all()] == ["c.txt"]
    assert server.call("POST", "files/delete", {"path": "c.txt"}, jwt=jwt).ok
    assert server.list_all() == []


def test_refused_changes_leave_files_alone(server):
    server.upload("a.txt", b"content")
    server.call("POST", "files/delete", {"path": "a.txt"})
    server.call("POST", "files/rename", {"oldPath": "a.txt", "newPath": "b.txt"})
    assert [f["path"] for f in server.list_all()] == ["a.txt"]


def test_portal_token_opens_only_its_own_portal(server, second_portal):
    own = server.call(
        "POST", "files", {"prefix": ""}, token=second_portal["token"], portal_id=second_portal["id"]
    )
    assert own.status_code == 200
    other = server.call("POST", "files", {"prefix": ""}, portal_id=second_portal["id"])
    assert other.status_code == 401
    assert "invalid portal token" in other.json()["error"]


def test_member_reaches_every_portal_of_the_organization(server, second_portal):
    resp = server.call(
        "POST",
        "files",
        {"prefix": ""},
        token=None,
        jwt=server.member_jwt(),
        portal_id=second_portal["id"],
    )
    assert resp.status_code == 200


def test_missing_portal_is_404(server):
    resp = server.call("GET", "", portal_id=999)
    assert resp.status_code == 404
    assert resp.json() == {"success": False, "error": "portal 999 not found"}


def test_expired_jwt_says_so(server):
    expired = server.app.state.services.issuer.issue(1, now=time.time() - 2 * 86400)
    resp = server.call("POST", "files", {"prefix": ""}, jwt=expired)
    assert resp.status_code == 401
    assert "expired" in resp.json()["error"]


def test_jwt_cookie_is_accepted_on_the_view_route(server):
    # A browser opening a file by link: a GET that changes nothing.
    server.upload("seen.txt", b"seen")
    view = f"{server.api_url}/api/portals/{server.portal_id}/files/view"
    resp = requests.get(
        view,
        params={"path": "seen.txt"},
        cookies={"jwt": server.member_jwt()},
        allow_redirects=False,
        timeout=10,
    )
    assert resp.status_code == 302  # authorised: to the signed download URL


# What a page on another site can make a browser send with its cookie and no preflight:
# a form (urlencoded, multipart, text/plain) or a fetch of a Blob, which has no content type.
CROSS_SITE_BODIES = [
    (None, b'{"path": "victim.txt", "oldPath": "victim.txt", "newPath": "moved.txt"}'),
    ("text/plain", b'{"path": "victim.txt", "oldPath": "victim.txt", "newPath": "moved.txt"}'),
    ("application/x-www-form-urlencoded", b"path=victim.txt&oldPath=victim.txt&newPath=m.txt"),
    ("multipart/form-data; boundary=b", b'--b\r\nContent-Disposition: form-data; name="path"'),
]


@pytest.mark.parametrize("route", ["files/delete", "files/rename", "files/download"])
@pytest.mark.parametrize("content_type, body", CROSS_SITE_BODIES)
def test_a_cross_site_request_with_the_jwt_cookie_changes_nothing(
    server, route, content_type, body
):
    server.upload("victim.txt", b"v")
    headers = {"content-type": content_type} if content_type else {}
    url = f"{server.api_url}/api/portals/{server.portal_id}/{route}"
    resp = requests.post(
        url, data=body, headers=headers, cookies={"jwt": server.member_jwt()}, timeout=10
    )
    assert resp.status_code in (400, 401), resp.text
    assert [f["path"] for f in server.list_all()] == ["victim.txt"]


def test_the_jwt_cookie_alone_does_not_authorise_a_post(server):
    server.upload("victim.txt", b"v")
    resp = server.call(
        "POST",
        "files/delete",
        {"path": "victim.txt"},
        token=None,
        cookies={"jwt": server.member_jwt()},
    )
    assert resp.status_code == 401
    assert "x-jwt-token" in resp.json()["error"]
    assert [f["path"] for f in server.list_all()] == ["victim.txt"]


def test_a_post_body_without_a_json_content_type_is_refused(server):
    # Header credentials, the body a valid JSON delete, but no content type: refused too.
    server.upload("victim.txt", b"v")
    headers = {"x-jwt-token": server.member_jwt()}
    url = f"{server.api_url}/api/portals/{server.portal_id}/files/delete"
    resp = requests.post(url, data=b'{"path": "victim.txt"}', headers=headers, timeout=10)
    assert resp.status_code == 400
    assert "content-type: application/json" in resp.json()["error"]
    assert [f["path"] for f in server.list_all()] == ["victim.txt"]


def test_login_rejects_a_wrong_password_and_an_unknown_user(server):
    for username, password in [(server.bootstrap["username"], "wrong"), ("nobody", "x")]:
        body = {"username": username, "password": password}
        resp = requests.post(f"{server.api_url}/api-login", json=body, timeout=10)
        assert resp.status_code == 401
        assert resp.json() == {"success": False, "error": "invalid username or password"}


def test_login_returns_a_jwt_for_the_user(server):
    token = server.login()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "1"
    assert claims["exp"] - claims["iat"] == 86400
