"""HTTP-level behaviour: the error envelope for FastAPI's own failures, CORS, the JSON body
limit, request metrics and the fault-injection seam."""

from __future__ import annotations

import time

import pytest
import requests

from tests.faults import Delay


def post_raw(server, route: str, data, content_type="application/json") -> requests.Response:
    headers = {"x-token": server.portal_token, "content-type": content_type}
    url = f"{server.api_url}/api/portals/{server.portal_id}/{route}"
    return requests.post(url, data=data, headers=headers, timeout=10)


@pytest.mark.parametrize(
    "data, message",
    [
        (b'{"prefix": ', "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b"", "JSON object"),
        (b'{"prefix": 3}', "prefix: Input should be a valid string"),
        (b'{"prefix": "", "onlyFetchFolders": "yes"}', "onlyFetchFolders"),
        (b"{}", "prefix: Field required"),
    ],
)
def test_bad_json_is_400_with_the_envelope(server, data, message):
    resp = post_raw(server, "files", data)
    assert resp.status_code == 400
    assert resp.json()["success"] is False
    assert message in resp.json()["error"]


def test_json_needs_its_content_type(server):
    resp = post_raw(server, "files", b'{"prefix": ""}', content_type="text/plain")
    assert resp.status_code == 400
    assert "content-type: application/json" in resp.json()["error"]


def test_non_numeric_portal_id_is_400(server):
    resp = requests.get(f"{server.api_url}/api/portals/abc", timeout=10)
    assert resp.status_code == 400
    assert "portal_id" in resp.json()["error"]


def test_unknown_route_and_method_use_the_envelope(server):
    missing = requests.get(f"{server.api_url}/nothing", timeout=10)
    assert (missing.status_code, missing.json()["success"]) == (404, False)
    wrong = requests.delete(f"{server.api_url}/api/portals/1/files", timeout=10)
    assert (wrong.status_code, wrong.json()["success"]) == (405, False)


@pytest.mark.parametrize("route", ["", "/files"])
def test_trailing_slash_is_404_in_the_envelope_not_a_redirect(server, route):
    # Found by tests/server/test_fuzz.py: Starlette answered a bodiless 307 whose Location
    # took its host from the request's Host header.
    url = f"{server.api_url}/api/portals/{server.portal_id}{route}/"
    headers = {"x-token": server.portal_token, "Host": "elsewhere.example"}
    resp = requests.post(
        url, json={"prefix": ""}, headers=headers, allow_redirects=False, timeout=10
    )
    assert resp.status_code == 404
    assert resp.json()["success"] is False
    assert "location" not in resp.headers


def test_oversized_json_body_is_413(server):
    big = b'{"prefix": "' + b"a" * (1024**2 + 10) + b'"}'
    resp = post_raw(server, "files", big)
    assert resp.status_code == 413
    assert resp.json() == {"success": False, "error": "request body larger than 1048576 bytes"}


def test_oversized_chunked_json_body_is_413(server):
    chunks = iter([b'{"prefix": "', b"a" * (1024**2 + 10), b'"}'])
    resp = post_raw(server, "files", chunks)
    assert resp.status_code == 413
    assert resp.json()["success"] is False


def test_body_limit_leaves_uploads_alone(start_server):
    server = start_server(max_json_bytes=100)
    server.upload("big.bin", b"x" * 1000)  # storage PUTs are not JSON routes
    assert post_raw(server, "files", b'{"prefix": "' + b"a" * 200 + b'"}').status_code == 413


def test_cors_preflight(server):
    resp = requests.options(
        f"{server.api_url}/api/portals/1/upload-link",
        headers={
            "Origin": "https://example.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-token, x-jwt-token, content-type",
        },
        timeout=10,
    )
    assert resp.status_code == 200
    assert resp.headers["access-control-allow-origin"] in ("*", "https://example.org")
    allowed = resp.headers["access-control-allow-headers"].lower()
    assert {"x-token", "x-jwt-token", "content-type"} <= {h.strip() for h in allowed.split(",")}


def test_cors_exposes_etag_on_storage_responses(server):
    server.upload("a.txt", b"a")
    resp = requests.get(
        server.download_url("a.txt"), headers={"Origin": "https://x.org"}, timeout=10
    )
    exposed = resp.headers["access-control-expose-headers"].lower()
    assert "etag" in exposed and "content-range" in exposed


def test_cors_origins_come_from_the_config(start_server):
    server = start_server(cors_origins=("https://allowed.org",))
    headers = {"Origin": "https://evil.org", "Access-Control-Request-Method": "POST"}
    resp = requests.options(f"{server.api_url}/api-login", headers=headers, timeout=10)
    assert resp.status_code == 400
    assert "access-control-allow-origin" not in resp.headers


def test_metrics_count_requests_by_route_and_status(server):
    metrics = server.app.state.metrics
    server.upload("a.txt", b"a")
    server.upload("b.txt", b"b")
    server.call("POST", "files/delete", {"path": "a.txt"})  # 403: no JWT
    assert metrics.count("PUT", "storage_put") == 2
    assert metrics.count("POST", "upload_link", 200) == 2
    assert metrics.count("POST", "delete_file", 403) == 1
    assert metrics.snapshot()[("PUT", "storage_put", 200)] == 2


def test_fault_injection_fails_the_next_n_matching_requests(server):
    server.upload("a.txt", b"a")
    faults = server.app.state.faults
    faults.fail_next("list_files", 503, times=2)
    faults.fail_next("storage_put", 429, headers={"Retry-After": "1"})
    statuses = [server.call("POST", "files", {"prefix": ""}).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    link = server.upload_link("b.txt", b"b").json()["url"]
    throttled = requests.put(link, data=b"b", timeout=10)
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "1")
    assert throttled.json() == {"success": False, "error": "injected fault"}
    assert requests.put(link, data=b"b", timeout=10).status_code == 200
    assert faults.pending == 0
    assert server.app.state.metrics.count("POST", "list_files", 503) == 2


def test_fault_injection_can_match_a_method(server):
    server.upload("a.txt", b"a")
    server.app.state.faults.fail_next("*", 500, method="GET")
    assert requests.get(server.download_url("a.txt"), timeout=10).status_code == 500
    assert server.download("a.txt") == b"a"


def test_fault_injection_stall(server):
    server.app.state.faults.add("portal_info", Delay(0.3))
    started = time.monotonic()
    assert server.call("GET", "").status_code == 200
    assert time.monotonic() - started >= 0.3
