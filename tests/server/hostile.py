"""Hypothesis strategies for hostile input to the portal server: portal paths, credentials,
portal ids, continuation tokens, raw request lines and bodies, tampered signed URLs.
Strategies only: nothing here sends a request or knows a real secret."""

from __future__ import annotations

import json
from typing import TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

from hypothesis import strategies as st

from portalfs.server.storage.base import wrap_token

T = TypeVar("T")

# Few letters, so that names collide: a file "a" and a folder "a/" fight over one name.
PLAIN_SEGMENTS = ["a", "b", "c"]
# Files a test puts into every portal before a run; portal_paths() makes these names often,
# so that download, view, rename and delete find something.
SEED_FILES = ["a/b", "a/c", "b", "c/a/b"]
HOSTILE_SEGMENTS = [
    "..",
    ".",
    "",
    "...",
    " ",
    "~",
    "%2e%2e",
    "..%2f",
    "%00",
    "a\x00b",
    "\x7f",
    "\t",
    "..\\..\\x",
    "portal-2",
    "objects",
    "tmp",
    "put-x",
    "\ufeff",
    "\ud800",  # a lone surrogate: JSON can carry it, UTF-8 cannot
    "x" * 255,  # the longest name allowed
    "x" * 256,
    "é" * 128,  # 256 bytes in 128 characters
]
HOSTILE_NAMES = [
    "",
    "/",
    "//",
    "/etc/passwd",
    "../portal-2/x",
    "a/../../portal-2/x",
    "a/../../../tmp/x",
    "./a",
    "a/",
    "a//b",
    "C:\\x",
    "\\\\server\\share",
    "a" * 1024,
    "/".join(["x" * 255] * 4),  # 1023 bytes: valid, but a key once the portal's prefix is on
    "a" * 1025,
    "a/" * 512 + "b",
]
# Field names in request bodies and queries that carry a portal path.
NAME_FIELDS = ("prefix", "fileName", "path", "oldPath", "newPath")


def chance(draw: st.DrawFn, percent: int) -> bool:
    """True about `percent` times in 100. Not st.booleans() or st.one_of: Hypothesis steers
    those towards the branch with the most unexplored examples, here the rare, hostile one."""
    return draw(st.integers(0, 99)) < percent


def mostly(common: st.SearchStrategy[T], rare: st.SearchStrategy[T], percent: int = 75):
    """`common` about `percent` times in 100, else `rare`."""

    @st.composite
    def pick(draw: st.DrawFn) -> T:
        return draw(common if chance(draw, percent) else rare)

    return pick()


def portal_paths() -> st.SearchStrategy[str]:
    """Paths a client might send: plain ones that collide (40%), dot segments
    aimed at the other portals and the data folder, known-hostile names, and random
    mixtures of hostile segments, text and slashes."""
    plain = mostly(
        st.sampled_from(SEED_FILES),
        st.lists(st.sampled_from(PLAIN_SEGMENTS), min_size=1, max_size=3).map("/".join),
        percent=40,
    )
    dots = st.sampled_from(["..", ".", "..", "a", "b", "portal-2", "portal-1", "objects"])
    climbing = _joined(st.lists(dots, min_size=2, max_size=5))
    segment = st.sampled_from(PLAIN_SEGMENTS + HOSTILE_SEGMENTS) | st.text(max_size=12)
    hostile = st.one_of(st.sampled_from(HOSTILE_NAMES), _joined(st.lists(segment, max_size=4)))
    return mostly(plain, mostly(climbing, hostile, percent=50), percent=40)


def _joined(segments: st.SearchStrategy[list[str]]) -> st.SearchStrategy[str]:
    """Segments joined by "/", sometimes with a leading or trailing one."""
    ends = st.sampled_from(["", "", "/"])
    return st.builds(lambda lead, parts, end: lead + "/".join(parts) + end, ends, segments, ends)


def utf8(text: str) -> bool:
    """False for text with a lone surrogate, which no URL can carry (JSON can)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def header_text() -> st.SearchStrategy[str]:
    """Values an HTTP client can put in a header: visible Latin-1, no space or control."""
    chars = st.characters(codec="latin-1", categories=["L", "M", "N", "P", "S"])
    return st.text(chars, max_size=80) | st.just("x" * 1000)


# Callers, as labels the test turns into headers. Most requests carry valid credentials,
# so that they get past authorization into the routes' own logic.
VALID_CALLERS = [
    "member",  # the target portal's token and the JWT of a member of its organization
    "token",  # the token alone: an external party
    "jwt",  # the member's JWT alone
]
OTHER_CALLERS = [
    "other-token",  # another portal's token
    "outsider",  # the JWT of a user of another organization
    "expired-jwt",  # with the portal's own token
    "unknown-user-jwt",  # signed by the server, for a user that does not exist
    "garbage-token",
    "garbage-jwt",  # header_text(), or a JWT signed with another key
    "none",
]


def callers() -> st.SearchStrategy[str]:
    return mostly(st.sampled_from(VALID_CALLERS), st.sampled_from(OTHER_CALLERS), percent=70)


def portal_ids(known: list[int]) -> st.SearchStrategy[int]:
    """Mostly the server's own portals, sometimes any integer at all."""
    return mostly(st.sampled_from(known), st.integers(), percent=85)


def continuation_tokens(prefixes: list[str]) -> st.SearchStrategy[str]:
    """Garbage, and well-formed tokens forged for a listing (the tokens are not signed)."""
    forged = st.builds(wrap_token, st.sampled_from(prefixes), st.text(max_size=40))
    return st.text(max_size=60) | forged


def json_bodies() -> st.SearchStrategy[bytes]:
    """Bytes that are, or nearly are, the JSON the routes take."""
    scalar = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    fields = st.sampled_from((*NAME_FIELDS, "fileSize", "fileHash", "username", "password"))
    objects = st.dictionaries(fields, scalar | portal_paths(), max_size=4).map(json.dumps)
    nested = st.integers(1, 5000).map(lambda n: "[" * n + "]" * n)
    return st.one_of(
        objects.map(str.encode),
        st.binary(max_size=200),
        objects.map(lambda s: s.encode()[:-1]),  # cut short
        objects.map(lambda s: s.encode("utf-16")),
        st.just(b'{"prefix": "\xff\xfe"}'),  # invalid UTF-8 inside a string
        nested.map(str.encode),
    )


CONTENT_TYPES = [
    "application/json",
    "application/json; charset=latin-1",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/octet-stream",
    "",
    "garbage/\xe9",
]

# Raw request lines: the method each target is meant for, and the target with holes for a
# portal id and an escape, sent byte for byte (no client-side normalisation), so invalid
# percent-escapes and dot segments reach the server as written.
TARGETS = [
    ("POST", "/v1/api-login"),
    ("GET", "/v1/api/portals/{id}"),
    ("POST", "/v1/api/portals/{id}/files"),
    ("POST", "/v1/api/portals/{id}/upload-link"),
    ("POST", "/v1/api/portals/{id}/files/download"),
    ("POST", "/v1/api/portals/{id}/files/delete"),
    ("POST", "/v1/api/portals/{id}/files/rename"),
    ("GET", "/v1/api/portals/{id}/files/view?path={escape}"),
    ("GET", "/portals/{id}?token={escape}"),
    ("PUT", "/storage/{escape}"),
    ("GET", "/storage/portal-1/{escape}?expires=1&signature={escape}"),
    ("POST", "/v1/{escape}"),
    ("GET", "/{escape}"),
    ("POST", "/v1/api/portals/{id}/{escape}"),
]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
ESCAPES = ["%ff", "%fe%ff", "%c0%af", "%00", "%2e%2e", "%2f", "%", "%zz", "..", "%e9", "%ed%a0%80"]


def escapes() -> st.SearchStrategy[str]:
    """Bits of a URL path: percent-escapes (many of them invalid), dots and slashes."""
    return st.lists(st.sampled_from([*ESCAPES, "a", "/", "."]), max_size=6).map("".join)


def raw_targets() -> st.SearchStrategy[tuple[str, str]]:
    """(method, target): targets with odd portal ids and invalid UTF-8 percent-escapes,
    mostly with the method the route takes."""
    ids = st.sampled_from(["1", "2", "-1", "0", "1e3", "0x1", "%31", "99999999999999999999999"])

    @st.composite
    def one(draw: st.DrawFn) -> tuple[str, str]:
        method, template = draw(st.sampled_from(TARGETS))
        method = draw(mostly(st.just(method), st.sampled_from(METHODS)))
        portal_id = draw(mostly(ids, escapes()))
        return method, template.format(id=portal_id, escape=draw(escapes()))

    return one()


def tampered_urls(url: str) -> st.SearchStrategy[str]:
    """`url` (a signed storage URL) with its key, signature, expiry or signed fields
    changed, dropped, duplicated or re-encoded; sometimes unchanged."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    base = f"{parts.scheme}://{parts.netloc}"

    def rebuild(path: str, pairs: list[tuple[str, str]]) -> str:
        return f"{base}{path}?{urlencode(pairs)}"

    def with_value(name: str, value: str) -> list[tuple[str, str]]:
        return [(k, value if k == name else v) for k, v in query]

    names = st.sampled_from([k for k, _ in query])
    values = st.text(max_size=70) | st.sampled_from(["", "0", "-1", "²", "9" * 30])
    return st.one_of(
        st.just(url),
        st.builds(lambda n, v: rebuild(parts.path, with_value(n, v)), names, values),
        names.map(lambda n: rebuild(parts.path, [(k, v) for k, v in query if k != n])),
        st.builds(lambda n, v: rebuild(parts.path, [*query, (n, v)]), names, values),
        st.builds(lambda n, v: rebuild(parts.path, [(n, v), *query]), names, values),
        st.builds(lambda p: rebuild(p, query), tampered_storage_paths(parts.path)),
    )


def tampered_storage_paths(path: str) -> st.SearchStrategy[str]:
    """Another spelling or another key for the storage path `path` ("/storage/<key>")."""
    key = path.removeprefix("/storage/")
    edits = st.sampled_from(
        [
            f"/storage/{key}/",
            f"/storage//{key}",
            f"/storage/./{key}",
            f"/storage/../storage/{key}",
            f"/storage/{key.replace('portal-1', 'portal-2')}",
            f"/storage/portal-1/../{key}",
            f"/storage/{key.replace('/', '%2f')}",
            f"/storage/{key.replace('a', '%61')}",
            f"/storage/{key.upper()}",
            "/storage/../state.json",
            "/storage/%2e%2e/state.json",
            "/storage/%2e%2e%2fstate.json",
            "/storage//etc/passwd",
            f"/storage/{key}%00",
        ]
    )
    return edits | escapes().map(lambda escape: f"/storage/{escape}")
