"""A server that repeats a page token or answers garbage makes a listing fail with EIO
instead of looping or listing half a folder."""

from __future__ import annotations

import errno
import json

import pytest

from portalfs.client import errors
from portalfs.client.portal import Credentials, PortalClient
from portalfs.client.transport import Transport
from portalfs.config import HttpConfig
from portalfs.fuse.errno_map import errno_for

from .conftest import Reply


def page(names, token=None):
    files = [{"name": n, "path": n, "type": "file", "size": 1} for n in names]
    body = {"success": True, "files": files, **({"continuationToken": token} if token else {})}
    return Reply(200, json.dumps(body).encode())


def client(url):
    return PortalClient(Credentials(url, 1, "t"), Transport(HttpConfig(max_attempts=1)))


def test_pages_are_followed_until_no_token(scripted):
    scripted.replies = [page(["a"], "t1"), page(["b"], "t2"), page(["c"])]
    assert [f.name for f in client(scripted.url).iter_folder("")] == ["a", "b", "c"]
    sent = [json.loads(s.body) for s in scripted.seen]
    assert [s.get("continuationToken") for s in sent] == [None, "t1", "t2"]


def test_a_repeated_token_fails_instead_of_looping(scripted):
    scripted.replies = [page(["a"], "same"), page(["b"], "same"), page(["c"], "same")]
    with pytest.raises(errors.ProtocolError) as info:
        list(client(scripted.url).iter_folder(""))
    assert errno_for(info.value) == errno.EIO
    assert len(scripted.seen) == 2


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"success": true}',
        b'{"success": true, "files": [{"x": 1}]}',
        b'{"success": false, "error": "nope"}',
    ],
)
def test_garbage_answers_are_eio(scripted, body):
    scripted.replies = [Reply(200, body)]
    with pytest.raises(errors.PortalError) as info:
        list(client(scripted.url).iter_folder(""))
    assert errno_for(info.value) == errno.EIO
