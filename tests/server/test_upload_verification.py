"""An upload link is good for the bytes it was asked for and nothing else, on both backends:
the local store refuses other bytes at the PUT; on S3 the size is signed and the MD5 is
checked after the PUT (before a listing, before a download link, and by a periodic sweep),
and an object that matches no link of its name is removed and reported."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import boto3
import pytest
import requests

from portalfs.server.storage.base import ObjectStat, StorageError
from portalfs.server.storage.s3 import S3Storage, parse_s3_url
from tests.conftest import md5_hex
from tests.server.sigv4 import s3_accepts, signed_headers

DECLARED = b"the bytes the link was asked for"
OTHER_BYTES = {
    "same size": DECLARED.upper(),
    "other size": DECLARED + b", and then some more",
}


def s3_keys(server, moto) -> list[str]:
    """Every object key under the server's own prefix in the bucket, without the prefix."""
    bucket, base = parse_s3_url(server.handle.config.storage_url)
    listed = moto.client.list_objects_v2(Bucket=bucket, Prefix=base).get("Contents", [])
    return sorted(o["Key"].removeprefix(base) for o in listed)


def put_other_bytes(server, path: str, body: bytes) -> requests.Response:
    link = server.upload_link(path, DECLARED)
    assert link.status_code == 200, link.text
    return requests.put(link.json()["url"], data=body, timeout=10)


def warnings_about(caplog, path: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and repr(path) in r.getMessage()
    ]


@pytest.mark.parametrize("body", OTHER_BYTES.values(), ids=OTHER_BYTES.keys())
def test_a_put_of_other_bytes_than_signed_never_becomes_a_visible_file(
    request, any_server, body, caplog
):
    s3 = any_server.handle.config.storage_url is not None
    any_server.upload("kept.txt", b"a legitimate upload")
    any_server.upload("old.txt", b"there before a link nobody used")
    assert any_server.upload_link("old.txt", b"never sent").status_code == 200
    any_server.upload("moved-away.txt", b"renamed onto a name with a link")
    assert any_server.upload_link("moved.txt", b"never sent either").status_code == 200
    renamed = {"oldPath": "moved-away.txt", "newPath": "moved.txt"}
    assert any_server.call("POST", "files/rename", renamed, jwt=any_server.member_jwt()).ok

    caught_by_download = put_other_bytes(any_server, "bad-1.txt", body)
    caught_by_listing = put_other_bytes(any_server, "bad-2.txt", body)

    # bad-1 is asked for by name before any listing: no download link is signed for it.
    refused = any_server.call(
        "POST", "files/download", {"path": "bad-1.txt"}, jwt=any_server.member_jwt()
    )
    assert refused.status_code == 404
    assert [f["name"] for f in any_server.list_all()] == ["kept.txt", "moved.txt", "old.txt"]
    assert any_server.download("kept.txt") == b"a legitimate upload"
    assert any_server.download("old.txt") == b"there before a link nobody used"
    assert any_server.download("moved.txt") == b"renamed onto a name with a link"
    if not s3:
        assert caught_by_download.status_code == caught_by_listing.status_code == 400
        return
    # moto stores any body on a pre-signed URL (real S3 refuses the other size at the PUT,
    # test_s3_upload_links_sign_the_content_length): the check removed both.
    moto = request.getfixturevalue("aws_env")
    assert s3_keys(any_server, moto) == [
        "portal-1/kept.txt",
        "portal-1/moved.txt",
        "portal-1/old.txt",
    ]
    for path in ("bad-1.txt", "bad-2.txt"):
        [warning] = warnings_about(caplog, path)
        assert "'portal-1'" in warning and md5_hex(body) in warning and "removed" in warning
        assert "X-Amz" not in warning and any_server.portal_token not in warning


def test_two_links_for_one_name_with_different_md5s_are_both_honoured(any_server):
    first, second, neither = b"first version", b"second, longer version", b"neither version"
    links = [any_server.upload_link("f.txt", data).json()["url"] for data in (first, second)]

    def put(url: str, data: bytes) -> list[tuple[int, str]]:
        requests.put(url, data=data, timeout=10)
        return [(f["size"], f["ETag"]) for f in any_server.list_all()]

    assert put(links[1], second) == [(len(second), md5_hex(second))]
    assert put(links[0], first) == [(len(first), md5_hex(first))]
    # Content no link was asked for: refused (local) or removed (S3), never listed.
    assert put(links[0], neither) in ([(len(first), md5_hex(first))], [])
    assert put(links[1], second) == [(len(second), md5_hex(second))]
    assert any_server.download("f.txt") == second


def test_the_sweep_removes_a_bad_upload_nobody_lists(aws_env, start_server, wait_until, caplog):
    server = start_server(storage_url=f"s3://{aws_env.bucket}/sweep-test", upload_sweep_s=0.05)
    server.upload("good.txt", b"good")
    assert put_other_bytes(server, "bad.txt", b"X" * len(DECLARED)).status_code == 200
    sweeper = server.app.state.upload_sweeper
    wait_until(lambda: s3_keys(server, aws_env) == ["portal-1/good.txt"], what="the sweep")
    rounds = sweeper.rounds
    wait_until(lambda: sweeper.rounds >= rounds + 2, what="two more sweeps")
    assert s3_keys(server, aws_env) == ["portal-1/good.txt"]  # the good one stays
    assert len(warnings_about(caplog, "bad.txt")) == 1
    assert sweeper.running
    server.handle.stop()
    assert not sweeper.running


def test_s3_upload_links_sign_the_content_length(server_s3, tmp_path):
    path = tmp_path / "body.bin"
    path.write_bytes(DECLARED)
    url = server_s3.upload_link("f.bin", DECLARED).json()["url"]
    assert sorted(signed_headers(url)) == ["content-length", "host"]

    def accepted(data) -> bool:
        prepared = requests.Request("PUT", url, data=data).prepare()
        return s3_accepts(prepared, "testing", "testing")

    with open(path, "rb") as f:  # the seed's client: requests with an open file
        assert accepted(f)
    assert accepted(DECLARED)
    path.write_bytes(DECLARED + b"!")
    with open(path, "rb") as f:
        assert not accepted(f)
    assert not accepted(DECLARED[:-1])


def test_a_bucket_whose_etags_are_not_md5s_is_refused_at_start(aws_env):
    # SSE-KMS gives such ETags on real S3; moto cannot, so its answer is edited client-side.
    client = boto3.client("s3", endpoint_url=aws_env.endpoint, region_name="us-east-1")
    client.meta.events.register(
        "after-call.s3.PutObject", lambda parsed, **_: parsed.update(ETag='"' + "0" * 32 + '"')
    )
    with pytest.raises(StorageError, match="not the MD5"):
        S3Storage(f"s3://{aws_env.bucket}/kms", 60, client)
    assert client.list_objects_v2(Bucket=aws_env.bucket, Prefix="kms/").get("Contents") is None


def test_the_check_removes_only_the_version_it_judged(server_s3, aws_env):
    # The check saw a bad version; a good PUT has replaced it since: If-Match spares it.
    server_s3.upload("f.txt", DECLARED)
    storage = server_s3.app.state.services.storage
    seen = ObjectStat(len(DECLARED), md5_hex(DECLARED.upper()), datetime.now(UTC))
    assert not storage.checks.admits("portal-1/f.txt", seen)
    assert s3_keys(server_s3, aws_env) == ["portal-1/f.txt"]
    assert server_s3.download("f.txt") == DECLARED
