"""Failed logins are throttled per username and per client address (429 + Retry-After),
checked before the password is hashed; counted on an injected clock, never with sleeps."""

from __future__ import annotations

import dataclasses
import http.client
import json

import pytest

from portalfs.server.auth.throttle import MemoryLoginThrottle
from tests.conftest import HTTP_TIMEOUT_S


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def login_from(server, address: str, username: str, password: str) -> http.client.HTTPResponse:
    """POST /api-login from `address` (any 127.x.y.z reaches the loopback server)."""
    port = server.handle.port
    conn = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=HTTP_TIMEOUT_S, source_address=(address, 0)
    )
    body = json.dumps({"username": username, "password": password})
    conn.request("POST", "/v1/api-login", body, {"content-type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def throttled(start_server, clock):
    """Factory: a server with these login limits, its throttle on `clock`."""

    def start(per_user: int, per_address: int, window_s: int = 60):
        server = start_server(
            login_failures_per_user=per_user,
            login_failures_per_address=per_address,
            login_window_s=window_s,
        )
        services = server.app.state.services
        throttle = MemoryLoginThrottle(per_user, per_address, window_s, timer=clock)
        server.app.state.services = dataclasses.replace(services, login_throttle=throttle)
        return server

    return start


def test_the_nth_failed_login_from_an_address_gets_429_with_retry_after(throttled, clock):
    server = throttled(per_user=100, per_address=3)
    user, password = server.bootstrap["username"], server.bootstrap["password"]
    statuses = [login_from(server, "127.0.0.1", user, "wrong").status for _ in range(3)]
    assert statuses == [401, 401, 401]
    # The 4th attempt from that address is refused before the password is checked, even
    # the right one, and for any username.
    for name, secret in [(user, password), ("someone-else", "x")]:
        refused = login_from(server, "127.0.0.1", name, secret)
        assert (refused.status, refused.getheader("Retry-After")) == (429, "60")
    clock.now += 45
    assert login_from(server, "127.0.0.1", user, password).getheader("Retry-After") == "15"
    clock.now += 15
    assert login_from(server, "127.0.0.1", user, password).status == 200


def test_a_throttled_address_does_not_stop_the_user_from_another_address(throttled):
    server = throttled(per_user=100, per_address=3)
    user, password = server.bootstrap["username"], server.bootstrap["password"]
    for _ in range(3):
        login_from(server, "127.0.0.1", user, "wrong")
    assert login_from(server, "127.0.0.1", user, password).status == 429
    assert login_from(server, "127.0.0.2", user, password).status == 200


def test_failures_from_many_addresses_lock_that_username_only(throttled, clock):
    # By design a username guessed from many addresses is locked for all of them until the
    # window passes (its owner too): the cost of bounding guesses per account.
    server = throttled(per_user=4, per_address=100)
    outsider = server.add_outsider()
    user, password = server.bootstrap["username"], server.bootstrap["password"]
    for n in range(1, 5):
        assert login_from(server, f"127.0.0.{n}", user, "wrong").status == 401
    locked = login_from(server, "127.0.0.9", user, password)
    assert (locked.status, locked.getheader("Retry-After")) == (429, "60")
    other = login_from(server, "127.0.0.9", outsider["username"], outsider["password"])
    assert other.status == 200
    clock.now += 60
    assert login_from(server, "127.0.0.9", user, password).status == 200


def test_throttle_counters_expire_with_their_window(clock):
    throttle = MemoryLoginThrottle(per_user=2, per_address=2, window_s=10, timer=clock)
    for n in range(5):
        throttle.reserve(f"user-{n}", "10.0.0.1")  # each attempt failed
    assert throttle.reserve("anyone", "10.0.0.1") == 10  # the address failed twice
    clock.now += 10
    assert len(throttle._failures) == 0  # every counter expired with its window
    assert throttle.reserve("anyone", "10.0.0.1") == 0


def test_a_burst_of_concurrent_attempts_is_counted_before_any_password_is_checked(clock):
    throttle = MemoryLoginThrottle(per_user=100, per_address=10, window_s=60, timer=clock)
    # Ten attempts in flight, none answered yet: the eleventh must already wait. (Checked
    # first and counted after scrypt, all of a thread pool's worth went through.)
    assert [throttle.reserve(f"u{n}", "10.0.0.7") for n in range(10)] == [0] * 10
    assert throttle.reserve("u10", "10.0.0.7") == 60


def test_a_right_password_takes_its_attempt_back(clock):
    throttle = MemoryLoginThrottle(per_user=2, per_address=2, window_s=60, timer=clock)
    for _ in range(5):
        assert throttle.reserve("alice", "10.0.0.8") == 0
        throttle.succeeded("alice", "10.0.0.8")
