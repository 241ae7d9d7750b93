"""rclone and s3fs mounting the bucket folder the S3-backed portal writes into, and what
tells when they have stored a file (moto's HEAD, rclone's log). Installs them for --peers;
measures nothing (figures/peers.py does).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .mounts import serving

PORTAL_KEY_PREFIX = "portal/portal-1"  # where the S3-backed portal keeps its objects
RCLONE_LOG = "rclone.log"  # in the work directory


def s3_client(aws: dict[str, str]) -> Any:
    import boto3  # with the server extra, which the S3-backed portal needs anyway

    return boto3.client(
        "s3",
        endpoint_url=aws["AWS_ENDPOINT_URL"],
        aws_access_key_id=aws["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws["AWS_SECRET_ACCESS_KEY"],
        region_name=aws["AWS_DEFAULT_REGION"],
    )


def stored_size(s3: Any, name: str) -> int | None:
    """Size of an object in the benchmark bucket, or None while it is not there. The HEAD is
    signed: moto 5 answers an unsigned HEAD of any object 403, so it never saw one arrive."""
    from botocore.exceptions import ClientError

    try:
        return s3.head_object(Bucket="bench", Key=f"{PORTAL_KEY_PREFIX}/{name}")["ContentLength"]
    except ClientError:
        return None


def rclone_uploaded(log: Path, start: int, name: str) -> bool:
    """Whether rclone's log, from offset start, says it uploaded name; its errors raise."""
    if not log.exists():
        return False
    with open(log, errors="replace") as f:
        f.seek(start)
        for line in f:
            if f" {name}: Copied " in line:
                return True
            if "ERROR" in line and f" {name}" in line:
                raise RuntimeError(f"rclone: {line.strip()}")
    return False


def install_peers() -> None:
    """rclone and s3fs from Debian, for --peers."""
    missing = [p for p in ("rclone", "s3fs") if shutil.which(p) is None]
    if missing:
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", *missing],
            check=True,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )


@contextmanager
def peer_mount(kind: str, aws: dict[str, str], workdir: Path) -> Iterator[Path]:
    """rclone or s3fs mounting the same bucket folder the S3-backed portal writes into."""
    point = Path(tempfile.mkdtemp(dir=workdir, prefix=f"{kind}-"))
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}  # rclone rejects it
    if kind == "rclone":
        env.update(_rclone_env(aws))
        cmd = _rclone_cmd(point, workdir)
    else:
        cmd = _s3fs_cmd(point, aws, workdir)
    with serving(cmd, env, point, kind, readahead=False):
        yield point


def _rclone_env(aws: dict[str, str]) -> dict[str, str]:
    return {
        "RCLONE_CONFIG_MOTO_TYPE": "s3",
        "RCLONE_CONFIG_MOTO_PROVIDER": "Other",
        "RCLONE_CONFIG_MOTO_ENDPOINT": aws["AWS_ENDPOINT_URL"],
        "RCLONE_CONFIG_MOTO_ACCESS_KEY_ID": aws["AWS_ACCESS_KEY_ID"],
        "RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY": aws["AWS_SECRET_ACCESS_KEY"],
        "RCLONE_CONFIG_MOTO_REGION": "us-east-1",
    }


def _rclone_cmd(point: Path, workdir: Path) -> list[str]:
    # rclone 1.60's multipart uploads end in a HEAD ?versionId=null that moto refuses;
    # with a write cache it knows the size and sends one PUT, right after close.
    cmd = ["rclone", "mount", f"moto:bench/{PORTAL_KEY_PREFIX}", str(point)]
    cmd += ["--vfs-cache-mode", "writes", "--vfs-write-back", "0s", "--s3-no-head"]
    # A cache of its own: a new mount would send what the last one left in a shared
    # one (cp -r returns before rclone uploads) during the next timed write.
    cache = tempfile.mkdtemp(dir=workdir, prefix="rclone-cache-")
    cmd += ["--s3-upload-cutoff", "5G", "--cache-dir", cache]
    cmd += ["-v", "--log-file", str(workdir / RCLONE_LOG)]  # says when an upload is done
    return cmd


def _s3fs_cmd(point: Path, aws: dict[str, str], workdir: Path) -> list[str]:
    passwd = workdir / "s3fs-passwd"
    passwd.write_text(f"{aws['AWS_ACCESS_KEY_ID']}:{aws['AWS_SECRET_ACCESS_KEY']}\n")
    passwd.chmod(0o600)
    return [
        "s3fs",
        f"bench:/{PORTAL_KEY_PREFIX}",
        str(point),
        "-f",
        "-o",
        f"url={aws['AWS_ENDPOINT_URL']},use_path_request_style,passwd_file={passwd}",
    ]
