"""A hostile server's names cannot make `portalfs download` write outside its destination:
a real HTTP server on loopback lists "/abs/..", ".." and "a/../../b" style names."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from portalfs.client import errors
from portalfs.client.portal import Credentials, PortalClient
from portalfs.client.storage import StorageClient
from portalfs.client.transport import Transport
from portalfs.config import HttpConfig
from portalfs.transfers import BatchDownloader, Result

from .conftest import Reply


def listing(*entries: tuple[str, str]) -> Reply:
    files = [{"name": n, "path": n, "type": kind, "size": 5} for n, kind in entries]
    return Reply(200, json.dumps({"success": True, "files": files}).encode())


def tree(root: Path) -> set[str]:
    return {str(Path(d, n).relative_to(root)) for d, ds, fs in os.walk(root) for n in ds + fs}


def download(url: str, dest: Path) -> list[Result]:
    transport = Transport(HttpConfig(max_attempts=1))
    portal = PortalClient(Credentials(url, 1, "t", "jwt"), transport)
    results: list[Result] = []
    BatchDownloader(portal, StorageClient(transport), 1).run(["set"], str(dest), results.append)
    return results


@pytest.mark.parametrize(
    "name, kind",
    [
        ("{outside}/abs/evil.txt", "file"),  # absolute: Path(dest) / "/x" is "/x"
        ("sub/../../../escape/evil.txt", "file"),
        ("..", "file"),
        ("../", "folder"),
    ],
)
def test_a_hostile_name_is_refused_and_nothing_lands_outside(scripted, tmp_path, name, kind):
    work = tmp_path / "work"
    dest = work / "dest"
    dest.mkdir(parents=True)
    scripted.replies = [
        listing(("set/", "folder")),  # the lookup of "set" in the root
        listing((name.format(outside=work / "outside"), kind), ("ok.txt", "file")),
        Reply(200, json.dumps({"success": True, "url": f"{scripted.url}/blob"}).encode()),
        Reply(200, b"fine\n"),
    ]
    results = download(scripted.url, dest)
    assert tree(work) == {"dest", "dest/set", "dest/set/ok.txt"}
    assert (dest / "set/ok.txt").read_bytes() == b"fine\n"
    [failed] = [r for r in results if r.outcome == "failed"]
    assert isinstance(failed.error, errors.ProtocolError) and "unsafe name" in failed.error.message
    # Only the safe file was asked for: no download link for the hostile name.
    assert [s.path for s in scripted.seen].count("/blob") == 1


def test_a_symlink_in_the_destination_does_not_lead_outside(scripted, tmp_path):
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    (dest / "set").mkdir(parents=True)
    outside.mkdir()
    (dest / "set" / "sub").symlink_to(outside)
    scripted.replies = [
        listing(("set/", "folder")),
        listing(("sub/", "folder")),
        listing(("x.txt", "file")),
    ]
    results = download(scripted.url, dest)
    assert [r.outcome for r in results] == ["failed"]
    assert "outside" in results[0].error.message
    assert list(outside.iterdir()) == []
