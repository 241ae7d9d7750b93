"""Transport against a scripted loopback server: retries, Retry-After, error mapping, redirects."""

from __future__ import annotations

import pytest

from portalfs.client import errors
from portalfs.client.transport import Transport, redact_url
from portalfs.config import HttpConfig

from .conftest import Reply


class Sleeps(list):
    """Records the delays the transport asked for instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make(max_attempts: int = 4, **kw) -> tuple[Transport, Sleeps]:
    sleeps = Sleeps()
    config = HttpConfig(max_attempts=max_attempts, connect_timeout_s=2, read_timeout_s=2, **kw)
    return Transport(config, sleep=sleeps), sleeps


def test_retries_5xx_then_succeeds(scripted):
    scripted.replies = [Reply(503), Reply(500), Reply(200)]
    transport, sleeps = make()
    resp = transport.request("POST", scripted.url + "/x", what="list", json={})
    assert resp.status_code == 200
    assert len(scripted.seen) == 3
    assert len(sleeps) == 2 and all(0 <= s <= 5 for s in sleeps)


def test_gives_up_after_max_attempts_with_unavailable(scripted):
    scripted.replies = [Reply(503)] * 10
    transport, _ = make(max_attempts=3)
    with pytest.raises(errors.UnavailableError) as info:
        transport.request("GET", scripted.url, what="info")
    assert info.value.status == 503
    assert len(scripted.seen) == 3


def test_retry_after_is_honoured_and_capped(scripted):
    scripted.replies = [
        Reply(429, headers={"Retry-After": "2"}),
        Reply(429, headers={"Retry-After": "86400"}),
        Reply(200),
    ]
    transport, sleeps = make(max_retry_after_s=7)
    transport.request("GET", scripted.url, what="info")
    assert sleeps == [2.0, 7.0]


def test_429_beyond_budget_is_rate_limited(scripted):
    scripted.replies = [Reply(429, headers={"Retry-After": "1"})] * 3
    transport, _ = make(max_attempts=3)
    with pytest.raises(errors.RateLimitedError):
        transport.request("GET", scripted.url, what="info")


def test_non_idempotent_request_is_not_retried_on_5xx(scripted):
    scripted.replies = [Reply(503), Reply(200)]
    transport, _ = make()
    with pytest.raises(errors.UnavailableError):
        transport.request("POST", scripted.url, what="rename", json={}, idempotent=False)
    assert len(scripted.seen) == 1


def test_connection_reset_is_retried(scripted):
    scripted.replies = [Reply(reset=True), Reply(200)]
    transport, _ = make()
    assert transport.request("GET", scripted.url, what="info").status_code == 200
    assert len(scripted.seen) == 2


@pytest.mark.parametrize(
    ("status", "storage", "cls"),
    [
        (400, False, errors.RejectedError),
        (401, False, errors.AuthError),
        (403, False, errors.AccessDeniedError),
        (403, True, errors.LinkExpiredError),
        (404, False, errors.NotFoundError),
        (412, True, errors.ConflictError),
        (413, False, errors.TooLargeError),
        (418, False, errors.ProtocolError),
    ],
)
def test_status_maps_to_error_class(scripted, status, storage, cls):
    scripted.replies = [Reply(status, body=b'{"success": false, "error": "nope"}')]
    transport, _ = make()
    with pytest.raises(cls) as info:
        transport.request("GET", scripted.url, what="thing", storage=storage)
    assert type(info.value) is cls
    assert info.value.status == status


def test_api_error_text_is_kept_storage_body_is_not(scripted):
    scripted.replies = [Reply(400, body=b'{"success": false, "error": "fileHash must be hex"}')]
    transport, _ = make()
    with pytest.raises(errors.RejectedError, match="fileHash must be hex"):
        transport.request("POST", scripted.url, what="upload link", json={})
    body = (
        b"<Error><Code>AccessDenied</Code><SignatureProvided>SECRETSIG</SignatureProvided></Error>"
    )
    scripted.replies = [Reply(403, body=body)]
    with pytest.raises(errors.LinkExpiredError) as info:
        transport.request(
            "PUT",
            scripted.url + "/k?X-Amz-Signature=SECRETSIG",
            what="upload",
            body=lambda: b"x",
            storage=True,
        )
    assert "AccessDenied" in str(info.value)
    assert "SECRETSIG" not in str(info.value)


def test_redirects_are_not_followed_so_headers_stay_home(scripted):
    scripted.replies = [Reply(302, headers={"Location": "http://127.0.0.2:1/steal"})]
    transport, _ = make()
    with pytest.raises(errors.ProtocolError):
        transport.request("GET", scripted.url, what="info", headers={"x-token": "t"})
    assert len(scripted.seen) == 1


def test_refuses_non_http_urls():
    transport, _ = make()
    with pytest.raises(errors.ProtocolError):
        transport.request("GET", "file:///etc/passwd", what="read", storage=True)


def test_unreachable_server_is_unavailable_and_retried_even_for_post():
    transport, sleeps = make(max_attempts=2)
    with pytest.raises(errors.UnavailableError):
        transport.request("POST", "http://127.0.0.1:9/x", what="rename", idempotent=False)
    assert len(sleeps) == 1  # never sent, so even a POST was tried again


def test_redact_url_drops_query_and_userinfo():
    url = "https://user:pw@bucket.example:9000/a/b.jpg?X-Amz-Signature=abc&token=def#frag"
    assert redact_url(url) == "https://bucket.example:9000/a/b.jpg"


def test_a_proxy_from_the_environment_is_used_unless_no_proxy_names_the_host(scripted, monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", scripted.url)
    transport, _ = make()  # reads the environment once, when made
    transport.request("POST", "http://portal.invalid/v1/x", what="list", json={})
    assert scripted.seen[-1].path == "http://portal.invalid/v1/x"  # asked of the proxy

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    transport, _ = make()
    transport.request("POST", scripted.url + "/y", what="list", json={})
    assert scripted.seen[-1].path == "/y"  # straight to the server
