"""Every server default in one frozen dataclass; reads no environment and touches no disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServerConfig:
    """How one portal server instance runs. Units are in the field names."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 4800
    # None keeps objects in DATA/objects; "s3://bucket/prefix" uses an S3-compatible store.
    storage_url: str | None = None
    page_size: int = 1000
    # S3's limit for a single PUT; the API has no multipart upload.
    max_file_bytes: int = 5 * 1024**3
    link_ttl_s: int = 3600
    # How often objects behind live upload links are checked even if nobody lists them
    # (S3 only: the local backend checks at the PUT).
    upload_sweep_s: float = 60.0
    jwt_ttl_s: int = 86400
    # Failed logins allowed within login_window_s, per username and per client address,
    # before answering 429: each attempt costs 16 MiB of scrypt. Behind a proxy every client
    # has the proxy's address, so the per-address limit is then shared by all of them.
    login_failures_per_user: int = 20
    login_failures_per_address: int = 10
    login_window_s: int = 300
    cors_origins: tuple[str, ...] = ("*",)
    # Base of every link the server hands out; set it when clients reach us through a proxy.
    public_url: str | None = None
    # JSON bodies are tiny (a path or two); anything bigger is a mistake or an attack.
    max_json_bytes: int = 1024**2

    @property
    def base_url(self) -> str:
        """The server's root URL as clients see it, without a trailing slash."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def api_url(self) -> str:
        """The API root clients are configured with (the Edge Impulse `/v1` equivalent)."""
        return f"{self.base_url}/v1"

    def portal_link(self, portal_id: int, token: str) -> str:
        """The shareable link of a portal; it embeds the token by design."""
        return f"{self.base_url}/portals/{portal_id}?token={token}"
