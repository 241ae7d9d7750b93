"""The harness of the server fuzz: a server with three portals and their callers, a raw
HTTP sender, the checks every response must pass (no 5xx, the {success, error} envelope,
documented statuses, no success without the right) and the walk of the storage after a run.
Decides nothing about what to send (hostile.py and test_fuzz.py do)."""

from __future__ import annotations

import http.client
import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt as pyjwt

from portalfs.server.api import names
from portalfs.server.state.store import Portal
from portalfs.server.storage.s3 import parse_s3_url
from tests.conftest import HTTP_TIMEOUT_S, PortalServer, md5_hex

log = logging.getLogger(__name__)

# Route names (as in api.py, blobs.py, page.py) by method and path template.
ROUTES = {
    ("POST", "/v1/api-login"): "api_login",
    ("GET", "/v1/api/portals/{portal_id}"): "portal_info",
    ("POST", "/v1/api/portals/{portal_id}/files"): "list_files",
    ("POST", "/v1/api/portals/{portal_id}/upload-link"): "upload_link",
    ("POST", "/v1/api/portals/{portal_id}/files/download"): "download_link",
    ("GET", "/v1/api/portals/{portal_id}/files/view"): "view_file",
    ("POST", "/v1/api/portals/{portal_id}/files/delete"): "delete_file",
    ("POST", "/v1/api/portals/{portal_id}/files/rename"): "rename_file",
    ("GET", "/portals/{portal_id}"): "portal_page",
    ("PUT", "/storage/{key}"): "storage_put",
    ("GET", "/storage/{key}"): "storage_get",
}
UPLOAD_ROUTES = {"portal_info", "list_files", "upload_link"}
MEMBER_ROUTES = {"download_link", "view_file", "delete_file", "rename_file"}
# Every status the API answers without a fault injected; 5xx is never expected here.
API_STATUSES = {200, 400, 401, 403, 404, 405, 409, 413, 429}  # 429: failed logins throttled
STORAGE_STATUSES = {200, 206, 400, 403, 404, 405, 409, 411, 416}
# What a data folder holds besides objects/ and tmp/.
DATA_FILES = {"state.json", "state.lock", "bootstrap.json"}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    @classmethod
    def of(cls, resp: Any) -> Reply:
        """From a requests or a schemathesis response (whose header values are lists)."""
        headers = {k.lower(): v[0] if isinstance(v, list) else v for k, v in resp.headers.items()}
        return cls(resp.status_code, headers, resp.content)


@dataclass
class Target:
    """A server under fuzz: portals 1 and 2 in the bootstrap organization, portal 3 in
    another; a member of each organization; what each portal was asked to store."""

    server: PortalServer
    portals: dict[int, Portal]
    jwt_orgs: dict[str, int] = field(repr=False)  # a valid JWT of each organization: its id
    bad_jwts: dict[str, str] = field(repr=False)  # caller label -> a JWT the server refuses
    # Names a portal's callers got an upload link for, or renamed a file to: the only
    # names that may be stored under its prefix.
    requested: dict[int, set[str]] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    by_route: Counter[tuple[str, int]] = field(default_factory=Counter)

    @classmethod
    def build(cls, server: PortalServer, seed_files: tuple[str, ...] = ()) -> Target:
        """Adds portals 2 and 3 and a user of portal 3's organization to `server`, and
        stores the files named `seed_files` in each portal."""
        other = server.add_outsider()
        server.add_portal("Second portal")
        server.add_portal("Other organization's portal", org_id=other["organization_id"])
        services = server.app.state.services
        portals = {p.id: p for p in services.state.portals()}
        orgs = {
            server.member_jwt(): portals[server.portal_id].org_id,
            other["jwt"]: other["organization_id"],
        }
        bad = {
            "expired-jwt": services.issuer.issue(1, now=time.time() - 10**6),
            "unknown-user-jwt": services.issuer.issue(999),
            "forged-jwt": pyjwt.encode(
                {"sub": "1", "exp": 2**40}, "not the server's key, though long enough", "HS256"
            ),
        }
        target = cls(server, portals, orgs, bad, {pid: set() for pid in portals})
        for portal_id in portals:
            for name in seed_files:
                target.seed(portal_id, name)
        return target

    def seed(self, portal_id: int, name: str) -> None:
        """Stores a file named `name` in the portal, through the API."""
        body = {"fileName": name, "fileSize": 4, "fileHash": md5_hex(b"seed")}
        headers = self.headers("member", portal_id, "")
        link = self.server.call(
            "POST", "upload-link", body, token=None, headers=headers, portal_id=portal_id
        )
        assert link.status_code == 200, link.text
        assert send_url("PUT", link.json()["url"], b"seed").status == 200
        self.requested[portal_id].add(name)

    @property
    def port(self) -> int:
        return self.server.handle.port

    def headers(self, caller: str, portal_id: object, garbage: str) -> dict[str, str]:
        """The headers `caller` (a label of hostile.VALID_CALLERS or OTHER_CALLERS) sends
        to portal `portal_id`: a "member" is one of that portal's organization, an
        "outsider" one of another."""
        own = self.portals[self.server.portal_id]
        if isinstance(portal_id, int) and portal_id in self.portals:
            own = self.portals[portal_id]
        other = next(p for p in self.portals.values() if p.id != own.id)
        member = next(jwt for jwt, org in self.jwt_orgs.items() if org == own.org_id)
        outsider = next(jwt for jwt, org in self.jwt_orgs.items() if org != own.org_id)
        return {
            "token": {"x-token": own.token},
            "member": {"x-token": own.token, "x-jwt-token": member},
            "jwt": {"x-jwt-token": member},
            "other-token": {"x-token": other.token},
            "outsider": {"x-jwt-token": outsider},
            "expired-jwt": {"x-token": own.token, "x-jwt-token": self.bad_jwts["expired-jwt"]},
            "unknown-user-jwt": {"x-jwt-token": self.bad_jwts["unknown-user-jwt"]},
            "garbage-token": {"x-token": garbage},
            "garbage-jwt": {"x-jwt-token": garbage or self.bad_jwts["forged-jwt"]},
            "none": {},
        }[caller]

    def rights(self, headers: dict[str, str], portal_id: Any) -> set[str]:
        """What these headers may do on `portal_id`, by the API doc's table: an upper bound
        (a wrong JWT next to a right token still gets "upload" here)."""
        portal = self.portals.get(portal_id) if isinstance(portal_id, int) else None
        if portal is None:
            return set()
        token, jwt = headers.get("x-token"), headers.get("x-jwt-token")
        if token and token != portal.token:
            return set()
        if jwt and self.jwt_orgs.get(jwt) == portal.org_id:
            return {"upload", "member"}
        return {"upload"} if token else set()

    def note(
        self, route: str, reply: Reply, rights: set[str] | None = None, head: bool = False
    ) -> None:
        """Counts and checks one reply; with `rights`, also that a success was allowed."""
        self.statuses[reply.status] += 1
        self.by_route[(route, reply.status)] += 1
        check_reply(route, reply, head)
        if rights is not None and 200 <= reply.status < 400:
            if route in UPLOAD_ROUTES:
                assert "upload" in rights, f"{route} succeeded without the right to"
            if route in MEMBER_ROUTES:
                assert "member" in rights, f"{route} succeeded for a non-member"

    def summary(self) -> str:
        """The figures of a run, for the log: requests, 5xx, statuses."""
        fives = sum(n for status, n in self.statuses.items() if status >= 500)
        return f"{self.statuses.total()} requests, {fives} 5xx, statuses {dict(self.statuses)}"

    def server_5xx(self) -> int:
        """5xx answers the server itself counted, for requests of any client."""
        snapshot = self.server.app.state.metrics.snapshot()
        return sum(n for (_, _, status), n in snapshot.items() if status >= 500)


def check_reply(route: str, reply: Reply, head: bool = False) -> None:
    """No 5xx; a documented status; the envelope on every answer but a redirect, the portal
    page and stored bytes. `route` is a name of ROUTES, or "api", "storage" or "unmatched"
    for a raw request; `head` for a HEAD request, whose answer has no body."""
    assert reply.status < 500, f"{route}: {reply.status} {reply.body[:300]!r}"
    storage = route.startswith("storage")
    allowed = STORAGE_STATUSES if storage else API_STATUSES | {302}
    assert reply.status in allowed, f"{route}: undocumented status {reply.status}"
    kind = reply.headers.get("content-type", "")
    if reply.status == 302:
        assert route in ("view_file", "api") and reply.headers.get("location"), route
    elif kind.startswith("text/html"):
        assert route == "portal_page" and reply.status in (200, 404), (route, reply.status)
    elif storage and reply.status in (200, 206, 416):
        pass  # the bytes, or nothing, as S3 answers
    elif not head:
        check_envelope(route, reply)


def check_envelope(route: str, reply: Reply) -> None:
    try:
        doc = json.loads(reply.body)
    except ValueError:
        raise AssertionError(f"{route}: {reply.status} is not JSON: {reply.body[:200]!r}") from None
    assert isinstance(doc, dict) and isinstance(doc.get("success"), bool), (route, doc)
    assert doc["success"] is (200 <= reply.status < 300), (route, reply.status, doc)
    if not doc["success"]:
        assert isinstance(doc.get("error"), str) and doc["error"], (route, doc)


def send_url(method: str, url: str, body: bytes = b"") -> Reply:
    """`method` on `url` exactly as written: unlike requests, which removes "." and ".."
    segments from a URL's path before sending it."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return send_raw(parts.port or 80, method, target, {}, body, host=parts.hostname)


def send_raw(
    port: int,
    method: str,
    target: str,
    headers: dict[str, str],
    body: bytes = b"",
    chunked: bool = False,
    host: str = "127.0.0.1",
) -> Reply:
    """One request with `target` sent byte for byte (http.client does not normalise it)."""
    conn = http.client.HTTPConnection(host, port, timeout=HTTP_TIMEOUT_S)
    try:
        conn.putrequest(method, target, skip_host=False, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        if chunked:
            conn.putheader("transfer-encoding", "chunked")
            conn.endheaders()
            for start in range(0, len(body), 4096):
                piece = body[start : start + 4096]
                conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            conn.send(b"0\r\n\r\n")
        else:
            conn.putheader("content-length", str(len(body)))
            conn.endheaders(body)
        resp = conn.getresponse()
        reply_headers = {k.lower(): v for k, v in resp.getheaders()}
        return Reply(resp.status, reply_headers, b"" if method == "HEAD" else resp.read())
    finally:
        conn.close()


def stored_keys(server: PortalServer, s3_client: Any = None) -> list[str]:
    """Every object key the server's storage holds, relative to its storage root."""
    if s3_client is None:
        root = server.data_dir / "objects"
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())
    bucket, base = parse_s3_url(server.handle.config.storage_url)
    return sorted(k.removeprefix(base) for k in bucket_keys(s3_client, bucket, base))


def other_keys(server: PortalServer, s3_client: Any) -> list[str]:
    """Keys in the (shared) test bucket outside this server's own prefix."""
    bucket, base = parse_s3_url(server.handle.config.storage_url)
    return [k for k in bucket_keys(s3_client, bucket) if not k.startswith(base)]


def bucket_keys(client: Any, bucket: str, prefix: str = "") -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def check_storage(target: Target, s3_client: Any = None) -> list[str]:
    """Every stored object is a valid name under the prefix of a portal that asked for it;
    on the local backend, nothing else is in the data folder, no temp file is left and no
    folder is empty. Returns the keys."""
    keys = stored_keys(target.server, s3_client)
    allowed = {
        p.prefix + name for pid, p in target.portals.items() for name in target.requested[pid]
    }
    outside = [k for k in keys if k not in allowed]
    assert not outside, f"stored outside any portal's requested names: {outside[:10]}"
    for key in keys:
        portal = next(p for p in target.portals.values() if key.startswith(p.prefix))
        names.file_path(key.removeprefix(portal.prefix))
    if s3_client is None:
        check_data_folder(target.server.data_dir)
    log.info("storage walk: %d objects, 0 outside their portal", len(keys))
    return keys


def check_data_folder(data_dir: Path) -> None:
    """Nothing but state, objects and tmp in the data folder; tmp empty; no symlink and no
    empty folder under objects."""
    assert {p.name for p in data_dir.iterdir()} <= DATA_FILES | {"objects", "tmp"}
    assert list((data_dir / "tmp").iterdir()) == [], "temp files left behind"
    for folder, dirs, files in os.walk(data_dir / "objects"):
        for name in dirs + files:
            assert not os.path.islink(os.path.join(folder, name)), f"symlink {name!r}"
        if Path(folder) != data_dir / "objects" and Path(folder).parent != data_dir / "objects":
            assert dirs or files, f"empty folder {folder!r} left behind"
