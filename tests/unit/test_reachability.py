"""Reachability: a server found unreachable is probed now and then; meanwhile requests to it
fail at once. A fake clock drives it."""

import pytest

from portalfs.client import errors
from portalfs.client.reachability import Reachability

ORIGIN = "http://127.0.0.1:9"


def test_an_unreachable_origin_fails_at_once_until_a_probe_is_due(caplog):
    now = [100.0]
    reach = Reachability(probe_interval_s=5.0, timer=lambda: now[0])
    assert reach.admit(ORIGIN, "list") is True  # up: a normal request with retries
    reach.unreachable(ORIGIN, "connection refused")
    reach.unreachable(ORIGIN, "connection refused")
    assert caplog.text.count("is unreachable") == 1  # one clear line, not one per request
    for _ in range(3):
        with pytest.raises(errors.UnavailableError):
            reach.admit(ORIGIN, "upload link")
    now[0] += 5.0
    assert reach.admit(ORIGIN, "upload link") is False  # the probe: tried once
    with pytest.raises(errors.UnavailableError):
        reach.admit(ORIGIN, "upload link")  # only one probe per interval
    reach.answered(ORIGIN)
    assert reach.admit(ORIGIN, "upload link") is True
    assert caplog.text.count("answers again") == 1


def test_other_origins_are_not_affected():
    reach = Reachability(probe_interval_s=60.0)
    reach.unreachable(ORIGIN, "refused")
    assert reach.admit("http://127.0.0.1:10", "PUT") is True
