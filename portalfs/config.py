"""Every client-side default in one place, as frozen dataclasses; reads no environment."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_API_URL = "https://studio.edgeimpulse.com/v1"

# S3's limit for one PUT; the API offers no multipart upload, so this is the largest file.
MAX_SINGLE_PUT_BYTES = 5 * 1024**3


@dataclass(frozen=True)
class HttpConfig:
    """Timeouts and retry policy for every request the client sends."""

    connect_timeout_s: float = 10.0
    # Between two bytes of a response, not for the whole body: large downloads stay alive.
    read_timeout_s: float = 60.0
    max_attempts: int = 5
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 5.0
    # A server's Retry-After is honoured up to this; beyond it we fail instead of hanging.
    max_retry_after_s: float = 30.0
    # Connections kept per host: more than libfuse's 64 threads plus read-ahead streams
    # and transfer workers use at once, so none is dropped and reopened under load.
    pool_size: int = 96
    # A server that could not be reached is tried again this often (one request, once);
    # requests in between fail at once instead of each spending its retries.
    probe_interval_s: float = 2.0


@dataclass(frozen=True)
class TransferConfig:
    """How the CLI moves files: chunk sizes and concurrency."""

    chunk_bytes: int = 1024 * 1024
    upload_workers: int = 8
    download_workers: int = 4


@dataclass(frozen=True)
class MountConfig:
    """What a mount does and how much it may cache."""

    cache_dir: str
    metadata_ttl_s: float = 5.0
    # Download links live an hour on the real service; reuse them for well under that.
    link_ttl_s: float = 600.0
    # Blocks of file data kept in memory; the kernel's page cache keeps the rest (auto_cache).
    cache_bytes: int = 64 * 1024 * 1024
    block_bytes: int = 1024 * 1024
    # The largest read-ahead window, in blocks: one streaming GET of up to 32 MiB.
    readahead_blocks: int = 32
    # The kernel's read-ahead for the mount (root only): 1 MiB reads instead of 128 KiB.
    kernel_readahead_kb: int = 1024
    # Folders listed ahead of a walk through a folder's subfolders (ls -R, find); 0: none.
    list_ahead_folders: int = 16
    # How often files left in the journal of unsent files are tried again while mounted.
    resend_interval_s: float = 30.0
    # The largest file the mount accepts: a write() past it is EFBIG at once.
    max_file_bytes: int = MAX_SINGLE_PUT_BYTES
    read_only: bool = False
    allow_delete: bool = False
    uid: int = 0
    gid: int = 0

    @property
    def reorder_bytes(self) -> int:
        """How far out of order a sequential reader's requests may come: the kernel sends a
        read-ahead window as several requests, and libfuse's threads may answer a later one
        first. Two windows, one in flight and the next."""
        return 2 * self.kernel_readahead_kb * 1024
