"""Objects in an S3-compatible bucket via boto3, with pre-signed URLs the clients use
directly. Endpoint, credentials and region come from the standard AWS environment
variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...). Never creates buckets; never logs URLs.
"""

from __future__ import annotations

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

log = logging.getLogger(__name__)

_MISSING = {"404", "NoSuchKey", "NotFound"}


class S3Storage:
    """Storage in `s3://bucket/prefix`. Thread-safe: boto3 clients are."""

    provider = "s3"

    def __init__(self, storage_url: str, link_ttl_s: int, client: Any = None) -> None:
        self.bucket_name, self._base = parse_s3_url(storage_url)
        self._ttl_s = link_ttl_s
        self._client = client or make_client()
        self._check_bucket()

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
            entries += [Entry(self._key(o["Key"]), _object_stat(o)) for o in objects]
        entries.sort(key=lambda e: e.key)  # code point order = UTF-8 byte order = S3's
        if not page.get("IsTruncated"):
            return entries, None
        return entries, wrap_token(prefix, page["NextContinuationToken"])

    def stat(self, key: str) -> ObjectStat | None:
        try:
            head = self._call("stat", self._client.head_object, Key=self._base + key)
        except NotFound:
            return None
        return ObjectStat(head["ContentLength"], head["ETag"].strip('"'), head["LastModified"])

    def upload_url(self, key: str, size: int, md5: str) -> str:
        # Only Bucket and Key are signed: the seed's client PUTs with no headers at all.
        return self._presign("put_object", key)

    def download_url(self, key: str) -> str:
        return self._presign("get_object", key)

    def delete(self, key: str) -> None:
        if self.stat(key) is None:
            raise NotFound(key)
        self._call("delete", self._client.delete_object, Key=self._base + key)

    def rename(self, old: str, new: str) -> None:
        if self.stat(old) is None:
            raise NotFound(old)
        # copy_object is one atomic request up to 5 GiB and keeps the md5 ETag; a multipart
        # copy would turn it into "<hex>-<parts>".
        source = {"Bucket": self.bucket_name, "Key": self._base + old}
        self._call("copy", self._client.copy_object, Key=self._base + new, CopySource=source)
        self._call("delete", self._client.delete_object, Key=self._base + old)

    def _presign(self, operation: str, key: str) -> str:
        params = {"Bucket": self.bucket_name, "Key": self._base + key}
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
