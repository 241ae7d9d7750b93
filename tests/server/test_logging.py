"""No secret reaches a log record, at DEBUG, whatever the request: tokens, JWTs, passwords
and URL signatures are planted in every route and looked for in every record."""

from __future__ import annotations

import logging
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

# Third parties that log their own wire traffic at DEBUG (the test's HTTP client, and the
# S3 SDK and moto's server on the S3 backend); the server neither owns nor configures them.
FOREIGN = ("urllib3", "botocore", "boto3", "s3transfer", "werkzeug", "moto")


def exercise_every_route(server) -> list[str]:
    """Runs every route, successes and failures, and returns the secrets it used."""
    jwt = server.member_jwt()
    server.upload("a.txt", b"a")
    link = server.upload_link("b.txt", b"b").json()["url"]
    requests.put(link, data=b"wrong size", timeout=10)
    url = server.download_url("a.txt")
    requests.get(url, headers={"Range": "bytes=0-0"}, timeout=10)
    requests.get(url.replace("expires=", "expires=1"), timeout=10)
    server.call("POST", "files", {"prefix": ""}, jwt=jwt)
    server.call("POST", "files", {"prefix": "", "continuationToken": "bad"})
    server.call("GET", "", token="not-" + server.portal_token)
    server.call("GET", "", token=None, jwt=jwt + "x")
    server.call("POST", "files/rename", {"oldPath": "a.txt", "newPath": "c.txt"}, jwt=jwt)
    server.call("GET", "files/view", params={"path": "c.txt"}, jwt=jwt, allow_redirects=False)
    server.call("POST", "files/delete", {"path": "c.txt"}, jwt=jwt)
    requests.get(server.bootstrap["portal_url"], timeout=10)
    wrong_password = "Wr0ng-" + server.bootstrap["password"]
    body = {"username": server.bootstrap["username"], "password": wrong_password}
    requests.post(f"{server.api_url}/api-login", json=body, timeout=10)
    outsider = server.add_outsider()
    signatures = [_signature(u) for u in (link, url)]
    return [
        server.portal_token,
        jwt,
        server.bootstrap["password"],
        wrong_password,
        outsider["password"],
        outsider["jwt"],
        *[s for s in signatures if s],
    ]


def _signature(url: str) -> str | None:
    query = parse_qs(urlsplit(url).query)
    return (query.get("signature") or query.get("X-Amz-Signature") or [None])[0]


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_no_secret_in_any_log_record(request, backend, caplog):
    server = request.getfixturevalue("server" if backend == "local" else "server_s3")
    caplog.set_level(logging.DEBUG)
    secrets = exercise_every_route(server)
    formatter = logging.Formatter("%(name)s %(message)s")
    ours = [r for r in caplog.records if not r.name.startswith(FOREIGN)]
    assert any(r.name == "portalfs.server.access" for r in ours), "no access log captured"
    for record in ours:
        text = formatter.format(record)  # includes any traceback
        for secret in secrets:
            assert secret not in text, f"secret in {record.name}: {text[:200]}"


def test_access_log_names_method_path_status_and_time(server, caplog):
    caplog.set_level(logging.INFO, logger="portalfs.server.access")
    server.upload("a.txt", b"a")

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "portalfs.server.access"]

    # The line is written once the answer has left, so the client can be faster than it.
    deadline = time.monotonic() + 5
    while len(lines()) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    logged = lines()
    assert logged[0].startswith("POST /v1/api/portals/1/upload-link 200 ")
    assert logged[1].startswith("PUT /storage/portal-1/a.txt 200 ")
    assert all(line.endswith("ms") and "?" not in line for line in logged)
