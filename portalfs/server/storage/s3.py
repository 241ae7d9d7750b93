"""Objects in an S3-compatible bucket via boto3, with pre-signed URLs the clients use
directly. Endpoint, credentials and region come from the standard AWS environment
variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...). Upload links sign the size; the MD5
is checked after the PUT (upload_check.py). Never creates buckets; never logs URLs.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .base import (
    Entry,
    InvalidContinuationToken,
    NotFound,
    ObjectStat,
    StorageError,
    unwrap_token,
    wrap_token,
)
from .signed_uploads import MemorySignedUploads, SignedUploads
from .upload_check import Removal, UploadChecker

log = logging.getLogger(__name__)

_MISSING = {"404", "NoSuchKey", "NotFound"}
# Written and deleted at start, outside every portal ("portal-<id>/").
_PROBE_NAME = ".portalfs-etag-probe"


class S3Storage:
    """Storage in `s3://bucket/prefix`. Thread-safe: boto3 clients are."""

    provider = "s3"

    def __init__(
        self,
        storage_url: str,
        link_ttl_s: int,
        client: Any = None,
        uploads: SignedUploads | None = None,
    ) -> None:
        self.bucket_name, self._base = parse_s3_url(storage_url)
        self._ttl_s = link_ttl_s
        self._client = client or make_client()
        # A PUT that began just before its link expired may still be arriving: its record
        # outlives the link by one more link lifetime.
        keep_s = 2 * link_ttl_s
        self.checks = UploadChecker(uploads or MemorySignedUploads(), self._remove_if, keep_s)
        self._check_bucket()
        self._check_etags_are_md5s()

    def list_page(
        self, prefix: str, token: str | None, page_size: int, only_folders: bool
    ) -> tuple[list[Entry], str | None]:
        params = {"Bucket": self.bucket_name, "Prefix": self._base + prefix, "Delimiter": "/"}
        params["MaxKeys"] = page_size
        if token:
            params["ContinuationToken"] = unwrap_token(prefix, token)
        try:
            page = self._client.list_objects_v2(**params)
        except ClientError as exc:
            if token and _code(exc) in ("InvalidArgument", "400"):
                raise InvalidContinuationToken("continuationToken is no longer valid") from exc
            raise _unavailable("list", exc) from exc
        except BotoCoreError as exc:
            raise _unavailable("list", exc) from exc
        entries = [Entry(self._key(p["Prefix"]), None) for p in page.get("CommonPrefixes", [])]
        if not only_folders:
            # A console's zero-byte "folder/" marker is the folder itself, not an entry.
            objects = [o for o in page.get("Contents", []) if o["Key"] != params["Prefix"]]
            files = [Entry(self._key(o["Key"]), _object_stat(o)) for o in objects]
            entries += [e for e in files if self.checks.admits(e.key, e.stat)]
        entries.sort(key=lambda e: e.key)  # code point order = UTF-8 byte order = S3's
        if not page.get("IsTruncated"):
            return entries, None
        return entries, wrap_token(prefix, page["NextContinuationToken"])

    def stat(self, key: str) -> ObjectStat | None:
        found = self._head(key)
        return found if found is None or self.checks.admits(key, found) else None

    def upload_url(self, key: str, size: int, md5: str) -> str:
        self.checks.signed(key, md5, size, self.stat(key))
        # Content-Length is signed, so S3 refuses a body of another size; the seed's client
        # sends it (requests with a file body) but no Content-MD5, so the MD5 is checked
        # after the PUT. Nothing else is signed: the client sends no other header.
        return self._presign("put_object", key, ContentLength=size)

    def download_url(self, key: str) -> str:
        return self._presign("get_object", key)

    def sweep_uploads(self) -> int:
        """Checks every object behind a live upload link; returns how many it removed."""
        return self.checks.sweep(self._head)

    def delete(self, key: str) -> None:
        if self.stat(key) is None:
            raise NotFound(key)
        self._call("delete", self._client.delete_object, Key=self._base + key)

    def rename(self, old: str, new: str) -> None:
        checked = self.stat(old)
        if checked is None:
            raise NotFound(old)
        # copy_object is one atomic request up to 5 GiB and keeps the md5 ETag; a multipart
        # copy would turn it into "<hex>-<parts>". CopySourceIfMatch: only the checked
        # content moves (moto ignores it; S3 honours it).
        source = {"Bucket": self.bucket_name, "Key": self._base + old}
        self.checks.moved(new, checked)  # before the copy: a listing may see it at once
        self._call(
            "copy",
            self._client.copy_object,
            Key=self._base + new,
            CopySource=source,
            CopySourceIfMatch=f'"{checked.etag}"',
        )
        self._call("delete", self._client.delete_object, Key=self._base + old)

    def _head(self, key: str) -> ObjectStat | None:
        """The object's stat, unchecked."""
        try:
            head = self._call("stat", self._client.head_object, Key=self._base + key)
        except NotFound:
            return None
        return ObjectStat(head["ContentLength"], head["ETag"].strip('"'), head["LastModified"])

    def _remove_if(self, key: str, etag: str) -> Removal:
        """Deletes the object at `key` only if it still has `etag` (If-Match), so that a
        good PUT landing meanwhile is never the one removed."""
        try:
            self._client.delete_object(
                Bucket=self.bucket_name, Key=self._base + key, IfMatch=f'"{etag}"'
            )
        except ClientError as exc:
            if _code(exc) in _MISSING | {"412", "PreconditionFailed"}:
                return Removal.GONE
            _unavailable("delete", exc)
            return Removal.FAILED
        except BotoCoreError as exc:
            _unavailable("delete", exc)
            return Removal.FAILED
        return Removal.REMOVED

    def _presign(self, operation: str, key: str, **extra: Any) -> str:
        params = {"Bucket": self.bucket_name, "Key": self._base + key} | extra
        return self._client.generate_presigned_url(operation, Params=params, ExpiresIn=self._ttl_s)

    def _call(self, what: str, method: Callable[..., dict], **params: Any) -> dict:
        try:
            return method(Bucket=self.bucket_name, **params)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise NotFound(params.get("Key", "")) from exc
            raise _unavailable(what, exc) from exc
        except BotoCoreError as exc:
            raise _unavailable(what, exc) from exc

    def _key(self, s3_key: str) -> str:
        return s3_key.removeprefix(self._base)

    def _check_bucket(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket_name)
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchBucket"):
                raise StorageError(
                    f"bucket {self.bucket_name!r} does not exist; create it first"
                ) from exc
            raise StorageError(f"cannot use bucket {self.bucket_name!r}: {_code(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot reach the S3 endpoint: {exc}") from exc

    def _check_etags_are_md5s(self) -> None:
        """Refuses a bucket whose ETags are not the MD5 of the content (SSE-KMS, SSE-C):
        the upload check would remove every upload there, and clients could never skip."""
        key, probe = self._base + _PROBE_NAME, b"portalfs checks that ETags are MD5s\n"
        try:
            put = self._client.put_object(Bucket=self.bucket_name, Key=key, Body=probe)
            self._client.delete_object(Bucket=self.bucket_name, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"cannot write to bucket {self.bucket_name!r}: {exc}") from exc
        if put["ETag"].strip('"') != hashlib.md5(probe).hexdigest():
            raise StorageError(
                f"bucket {self.bucket_name!r} gives ETags that are not the MD5 of the content "
                "(SSE-KMS or SSE-C encryption?): portalfs needs SSE-S3 or no encryption"
            )


def parse_s3_url(storage_url: str) -> tuple[str, str]:
    """("bucket", "prefix/") from "s3://bucket/prefix"; the prefix may be ""."""
    parsed = urlparse(storage_url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise StorageError(f"storage URL must look like s3://bucket/prefix, not {storage_url!r}")
    prefix = parsed.path.strip("/")
    return parsed.netloc, f"{prefix}/" if prefix else ""


def make_client() -> Any:
    """A boto3 S3 client configured from the standard AWS environment variables."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    custom_endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    # S3-compatible servers (MinIO, moto, Ceph) rarely resolve bucket subdomains.
    style = "path" if custom_endpoint else "auto"
    config = Config(signature_version="s3v4", s3={"addressing_style": style})
    return boto3.client("s3", region_name=region, config=config)


def _object_stat(listed: dict) -> ObjectStat:
    # ETags come quoted ("\"<md5>\""); the API carries them bare.
    return ObjectStat(listed["Size"], listed["ETag"].strip('"'), listed["LastModified"])


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _unavailable(what: str, exc: Exception) -> StorageError:
    code = _code(exc) if isinstance(exc, ClientError) else type(exc).__name__
    log.warning("S3 %s failed: %s", what, code)
    return StorageError(f"storage {what} failed ({code})")
