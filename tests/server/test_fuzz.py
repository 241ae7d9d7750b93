"""Fuzz of every server route on a real loopback server: schemathesis cases from the app's
own OpenAPI document (both backends), raw requests, tampered signed storage URLs. No 5xx,
the envelope with documented statuses, no success without the right, and nothing stored
outside the portal that asked. Seeded; PORTALFS_FUZZ_EXAMPLES=N for a longer run."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import HTTP_TIMEOUT_S, md5_hex
from tests.server import hostile
from tests.server.fuzzing import (
    ROUTES,
    Reply,
    Target,
    check_storage,
    other_keys,
    send_raw,
    send_url,
)

log = logging.getLogger(__name__)

LONG_RUN = int(os.environ.get("PORTALFS_FUZZ_EXAMPLES", "0"))


def fuzz_settings(ci_examples: int) -> settings:
    # derandomize: CI replays the same examples every time; the state a run builds up on
    # the server (files, folders) is part of what is fuzzed, so no example database.
    return settings(
        max_examples=LONG_RUN or ci_examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _openapi_cases(server) -> st.SearchStrategy:
    schema = schemathesis.openapi.from_dict(server.app.openapi())
    positive = schema.as_strategy(schemathesis.GenerationMode.POSITIVE)
    # Mostly valid requests, which get past validation into the routes' own checks.
    return hostile.mostly(positive, schema.as_strategy(schemathesis.GenerationMode.NEGATIVE))


def test_every_route_of_the_openapi_document(any_server, request):
    target = Target.build(any_server, tuple(hostile.SEED_FILES))
    s3 = _s3_client(any_server, request)
    outside_before = other_keys(any_server, s3) if s3 else None
    session = requests.Session()
    paths = hostile.portal_paths()
    tokens = hostile.continuation_tokens(["", "a/", "portal-1/"])

    @fuzz_settings(ci_examples=300 if s3 else 500)
    @given(case=_openapi_cases(any_server), caller=hostile.callers(), data=st.data())
    def one(case, caller, data):
        route = ROUTES[(case.method.upper(), case.path)]
        portal_id, content = _overlay(case, data, target, paths, tokens)
        headers = target.headers(caller, portal_id, data.draw(hostile.header_text()))
        resp = case.call(
            base_url=any_server.handle.url,
            session=session,
            headers=headers,
            allow_redirects=False,
            timeout=HTTP_TIMEOUT_S,
        )
        target.note(route, Reply.of(resp), target.rights(headers, portal_id))
        if resp.status_code == 200:
            _follow(route, case.body, resp, content, target, portal_id)

    one()
    log.info("openapi fuzz: %s", target.summary())
    log.info("by route: %s", sorted(target.by_route.items()))
    assert target.server_5xx() == 0
    check_storage(target, s3)
    assert (other_keys(any_server, s3) if s3 else None) == outside_before


def _s3_client(server, request) -> object | None:
    """The test's own client of the moto bucket when `server` is on S3, else None."""
    on_s3 = server.handle.config.storage_url is not None
    return request.getfixturevalue("aws_env").client if on_s3 else None


def _overlay(case, data, target: Target, paths, tokens) -> tuple[object, bytes]:
    """Points most cases at a real portal and some at hostile names; returns the portal id
    and the content an upload link's size and hash were made to match."""
    params = case.path_parameters or {}
    if isinstance(params.get("portal_id"), int) and hostile.chance(data.draw, 90):
        params["portal_id"] = data.draw(hostile.portal_ids(sorted(target.portals)))
    holders = [case.body if isinstance(case.body, dict) else {}, case.query or {}]
    for holder, names in zip(holders, [paths, paths.filter(hostile.utf8)], strict=True):
        for field in [f for f in hostile.NAME_FIELDS if f in holder]:  # a fixed order
            if hostile.chance(data.draw, 75):
                holder[field] = data.draw(names)
        if "continuationToken" in holder and hostile.chance(data.draw, 50):
            holder["continuationToken"] = data.draw(tokens)
    page = "token" in (case.query or {}) and params.get("portal_id") in target.portals
    if page and hostile.chance(data.draw, 50):  # the portal page's link, right or wrong
        case.query["token"] = target.portals[params["portal_id"]].token
    body, content = holders[0], b""
    if {"fileSize", "fileHash"} <= body.keys() and hostile.chance(data.draw, 75):
        # A size and hash that match some content, so that the upload can really happen.
        content = data.draw(st.binary(max_size=64))
        body["fileSize"], body["fileHash"] = len(content), md5_hex(content)
    return params.get("portal_id"), content


def _follow(route: str, body: dict, resp, content: bytes, target: Target, portal_id) -> None:
    """Completes what a success started: PUTs the bytes to an upload link; records which
    names a portal asked to store."""
    if route == "upload_link":
        target.requested[portal_id].add(body["fileName"])
        url = resp.json()["url"]
        put = send_url("PUT", url, content)
        if url.startswith(target.server.handle.url):  # ours, not S3's
            target.note("storage_put", put)
    elif route == "rename_file":
        target.requested[portal_id].add(body["newPath"])


# Operations that take a portal path, as (route, method, API route, body fields); writes
# are listed twice, as they are the ones that could put something outside a portal.
NAMED_OPERATIONS = [
    ("upload_link", "POST", "upload-link", ("fileName",)),
    ("upload_link", "POST", "upload-link", ("fileName",)),
    ("rename_file", "POST", "files/rename", ("oldPath", "newPath")),
    ("rename_file", "POST", "files/rename", ("oldPath", "newPath")),
    ("delete_file", "POST", "files/delete", ("path",)),
    ("download_link", "POST", "files/download", ("path",)),
    ("list_files", "POST", "files", ("prefix",)),
    ("view_file", "GET", "files/view", ("path",)),
]


def test_hostile_names_stay_in_their_portal(any_server, request):
    target = Target.build(any_server, tuple(hostile.SEED_FILES))
    s3 = _s3_client(any_server, request)
    outside_before = other_keys(any_server, s3) if s3 else None
    session = requests.Session()

    @fuzz_settings(ci_examples=300 if s3 else 600)
    @given(
        operation=st.sampled_from(NAMED_OPERATIONS),
        portal_id=hostile.portal_ids(sorted(target.portals)),
        caller=hostile.callers(),
        paths=st.tuples(hostile.portal_paths(), hostile.portal_paths()),
        content=st.binary(max_size=32),
    )
    def one(operation, portal_id, caller, paths, content):
        route, method, api_route, fields = operation
        body = dict(zip(fields, paths, strict=False))
        if route == "upload_link":
            body |= {"fileSize": len(content), "fileHash": md5_hex(content)}
        headers = target.headers(caller, portal_id, "")
        # Not PortalServer.call, which would send portal id 0 to portal 1.
        url = f"{any_server.api_url}/api/portals/{portal_id}/{api_route}"
        if method == "GET":
            # Encoded here: a lone surrogate becomes the invalid UTF-8 %ED%A0%80, which
            # requests would refuse to encode.
            url += "?" + urlencode(body, errors="surrogatepass")
        json_body = body if method == "POST" else None
        resp = session.request(
            method,
            url,
            json=json_body,
            headers=headers,
            allow_redirects=False,
            timeout=HTTP_TIMEOUT_S,
        )
        target.note(route, Reply.of(resp), target.rights(headers, portal_id))
        if resp.status_code == 200:
            _follow(route, body, resp, content, target, portal_id)

    one()
    log.info("hostile name fuzz: %s", target.summary())
    log.info("by route: %s", sorted(target.by_route.items()))
    assert target.server_5xx() == 0
    check_storage(target, s3)
    assert (other_keys(any_server, s3) if s3 else None) == outside_before


def test_raw_requests(start_server):
    # A small JSON limit makes "too large" cheap to reach.
    target = Target.build(start_server(max_json_bytes=4096))

    @fuzz_settings(ci_examples=400)
    @given(
        request=hostile.raw_targets(),
        caller=hostile.callers(),
        garbage=hostile.header_text(),
        content_type=st.sampled_from(hostile.CONTENT_TYPES),
        body=hostile.json_bodies() | st.integers(4000, 6000).map(lambda n: b"[" + b"1," * n),
        chunked=st.booleans(),
    )
    def one(request, caller, garbage, content_type, body, chunked):
        method, raw_target = request
        headers = target.headers(caller, 1, garbage)
        if content_type:
            headers["content-type"] = content_type
        reply = send_raw(target.port, method, raw_target, headers, body, chunked)
        target.note(_family(raw_target), reply, head=method == "HEAD")

    one()
    log.info("raw fuzz: %s", target.summary())
    log.info("by route: %s", sorted(target.by_route.items()))
    assert target.server_5xx() == 0
    check_storage(target)


def _family(raw_target: str) -> str:
    if raw_target.startswith("/storage/"):
        return "storage"
    if raw_target.startswith("/portals/"):
        return "portal_page"
    return "api" if raw_target.startswith("/v1/") else "unmatched"


def test_tampered_storage_urls(server):
    target = Target.build(server)
    server.upload("a/b.bin", b"stored")
    target.requested[1] |= {"a/b.bin", "t/new.bin"}
    signer = server.app.state.services.signer
    content = b"new content"
    past = int(time.time()) - 1
    links = [  # (method, signed URL, whether it is still valid)
        ("PUT", server.upload_link("t/new.bin", content).json()["url"], True),
        ("GET", server.download_url("a/b.bin"), True),
        (
            "PUT",
            signer.url("PUT", "portal-1/t/new.bin", len(content), md5_hex(content), past),
            False,
        ),
        ("GET", signer.url("GET", "portal-1/a/b.bin", expires=past), False),
    ]
    tampered = st.sampled_from(links).flatmap(
        lambda link: st.tuples(
            st.just(link),
            hostile.tampered_urls(link[1]),
            hostile.mostly(st.just(link[0]), st.sampled_from(["PUT", "GET", "HEAD", "POST"])),
        )
    )

    @fuzz_settings(ci_examples=400)
    @given(request=tampered, body=st.sampled_from([content, b"", b"other", content * 2]))
    def one(request, body):
        (signed_method, url, valid), sent_url, method = request
        parts = urlsplit(sent_url)
        raw_target = parts.path + (f"?{parts.query}" if parts.query else "")
        reply = send_raw(target.port, method, raw_target, {}, body)
        target.note("storage", reply, head=method == "HEAD")
        if reply.status < 300:
            # Only the very request that was signed may succeed, however it is spelt.
            assert valid and _effective(sent_url) == _effective(url), (url, sent_url)
            assert method == signed_method or (method, signed_method) == ("HEAD", "GET")

    one()
    log.info("tampered URL fuzz: %s", target.summary())
    assert target.server_5xx() == 0
    keys = check_storage(target)
    assert set(keys) <= {"portal-1/a/b.bin", "portal-1/t/new.bin"}


def _effective(url: str) -> tuple:
    """What the server reads from a storage URL: the decoded key and the last value of each
    signed field (as Starlette's query parsing keeps)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    fields = tuple(query.get(n) for n in ("expires", "size", "md5", "signature"))
    return unquote(parts.path), fields


@pytest.mark.parametrize("method", ["PUT", "GET"])
def test_even_validly_signed_hostile_keys_stay_in_the_objects_folder(server, method):
    # Defence in depth: names.py keeps such keys from ever being signed; if one were (a
    # leaked signing key, a route that forgot to check), storage must still hold the line.
    target = Target.build(server)
    signer = server.app.state.services.signer
    before = _outside_objects(server.data_dir)
    keys = hostile.portal_paths().filter(hostile.utf8) | st.sampled_from(
        ["../state.json", "portal-1/../../state.json", "../tmp/x", "../../x", "/etc/passwd"]
    )

    @fuzz_settings(ci_examples=200)
    @given(key=keys, body=st.binary(max_size=16))
    def one(key, body):
        url = signer.url(method, key, len(body), md5_hex(body))
        target.note("storage", send_url(method, url, body))

    one()
    log.info("signed hostile key fuzz (%s): %s", method, target.summary())
    assert target.server_5xx() == 0
    assert _outside_objects(server.data_dir) == before


def _outside_objects(data_dir: Path) -> dict[str, bytes | None]:
    """Every file and folder next to and above DATA/objects (files with their content)."""
    paths = [*data_dir.parent.iterdir(), *data_dir.iterdir(), *(data_dir / "tmp").iterdir()]
    return {str(p): p.read_bytes() if p.is_file() else None for p in paths}
