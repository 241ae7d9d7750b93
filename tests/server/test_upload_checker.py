"""UploadChecker's bookkeeping with a fake clock and a dict for a bucket: how long a link's
record lives, and that a condemned object that could not be removed stays condemned."""

from __future__ import annotations

from datetime import UTC, datetime

from portalfs.server.storage.base import ObjectStat
from portalfs.server.storage.signed_uploads import MemorySignedUploads
from portalfs.server.storage.upload_check import Removal, UploadChecker
from tests.conftest import md5_hex

KEEP_S = 100.0


class FakeBucket:
    """Objects as key -> bytes; `removable` False makes every removal fail."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.removable = True

    def head(self, key: str) -> ObjectStat | None:
        data = self.objects.get(key)
        return None if data is None else ObjectStat(len(data), md5_hex(data), datetime.now(UTC))

    def remove(self, key: str, etag: str) -> Removal:
        if not self.removable:
            return Removal.FAILED
        if key not in self.objects or md5_hex(self.objects[key]) != etag:
            return Removal.GONE
        del self.objects[key]
        return Removal.REMOVED


def checker(bucket: FakeBucket, now: list[float]) -> UploadChecker:
    return UploadChecker(MemorySignedUploads(), bucket.remove, KEEP_S, clock=lambda: now[0])


def test_a_bad_put_landing_before_the_record_expires_is_caught_by_the_last_sweep():
    bucket, now = FakeBucket(), [0.0]
    checks = checker(bucket, now)
    checks.signed("portal-1/f", md5_hex(b"good"), 4, None)
    bucket.objects["portal-1/f"] = b"evil"
    now[0] = KEEP_S + 1  # the record has expired, but the sweep looks once more first
    assert checks.sweep(bucket.head) == 1
    assert bucket.objects == {}
    bucket.objects["portal-1/f"] = b"late"  # after the last look: no record, not judged
    assert checks.sweep(bucket.head) == 0 and checks.admits("portal-1/f", bucket.head("portal-1/f"))


def test_an_object_that_could_not_be_removed_stays_hidden_after_its_links_expire():
    bucket, now = FakeBucket(), [0.0]
    checks = checker(bucket, now)
    checks.signed("portal-1/f", md5_hex(b"good"), 4, None)
    bucket.objects["portal-1/f"] = b"evil"
    bucket.removable = False
    now[0] = KEEP_S + 1
    assert checks.sweep(bucket.head) == 0
    assert not checks.admits("portal-1/f", bucket.head("portal-1/f"))
    bucket.removable = True
    assert checks.sweep(bucket.head) == 1 and bucket.objects == {}


def test_what_was_stored_when_a_link_was_signed_stays_acceptable():
    bucket, now = FakeBucket(), [0.0]
    checks = checker(bucket, now)
    bucket.objects["portal-1/f"] = b"before"
    checks.signed("portal-1/f", md5_hex(b"after!"), 6, bucket.head("portal-1/f"))
    assert checks.sweep(bucket.head) == 0 and bucket.objects == {"portal-1/f": b"before"}
    bucket.objects["portal-1/f"] = b"after!"
    assert checks.admits("portal-1/f", bucket.head("portal-1/f"))
    bucket.objects["portal-1/f"] = b"other!"
    assert not checks.admits("portal-1/f", bucket.head("portal-1/f"))
