"""Object storage backends (local folder, S3) behind one small interface; `open_storage`
picks one from the config. Backends know keys, never portals or credentials."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..config import ServerConfig
from .base import Storage

if TYPE_CHECKING:
    from ..auth.signing import Signer


def open_storage(config: ServerConfig, signer: Signer) -> Storage:
    """The backend `config.storage_url` names: None for DATA/objects, s3://bucket/prefix."""
    if config.storage_url is None:
        from .local import LocalStorage

        return LocalStorage(config.data_dir, signer)
    from .s3 import S3Storage

    return S3Storage(config.storage_url, config.link_ttl_s)
