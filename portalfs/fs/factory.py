"""Builds a PortalFS from credentials and a MountConfig: the one place the layers are composed."""

from __future__ import annotations

import logging
from pathlib import Path

from .. import paths
from ..cache.blocks import BlockCache
from ..cache.links import LinkCache
from ..cache.metadata import Entry, MetadataCache
from ..client import errors
from ..client.portal import Credentials, PortalClient
from ..client.storage import StorageClient
from ..client.transport import Transport
from ..config import HttpConfig, MountConfig
from ..private import private_dir
from ..write.journal import Journal, Unsent
from ..write.resend import Resender
from ..write.spool import clear_leftovers
from ..write.upload import Uploader
from .filesystem import PortalFS
from .listing import entries_of
from .reader import RemoteReader

log = logging.getLogger(__name__)


def build_portalfs(
    credentials: Credentials,
    config: MountConfig,
    http: HttpConfig | None = None,
    transport: Transport | None = None,
) -> PortalFS:
    """`transport`: one already used (its connections are reused); else a new one of `http`."""
    transport = transport or Transport(http or HttpConfig())
    portal = PortalClient(credentials, transport)
    storage = StorageClient(transport, config.block_bytes)

    def fetch_folder(folder: str) -> list[Entry]:
        return entries_of(list(portal.iter_folder(paths.to_portal(folder))))

    cache_dir = private_dir(Path(config.cache_dir))
    metadata = MetadataCache(
        fetch_folder,
        config.metadata_ttl_s,
        stale_on=(errors.UnavailableError, errors.RateLimitedError),
        quiet_on=(errors.ServerDownError,),
    )
    links = LinkCache(portal.download_link, config.link_ttl_s)
    blocks = BlockCache(config.block_bytes, config.cache_bytes)
    lag_blocks = -(-config.reorder_bytes // config.block_bytes)
    reader = RemoteReader(links, storage, blocks, config.readahead_blocks, lag_blocks)
    journal = Journal(private_dir(cache_dir / "unsent"), private_dir(cache_dir / "refused"))
    spool_dir = private_dir(cache_dir / "spool")
    if removed := clear_leftovers(spool_dir):
        log.info("removed %d spool files a mount that ended left in %s", removed, spool_dir)
    uploader = Uploader(portal, storage)

    def sent(entry: Unsent) -> None:
        metadata.record_stored(paths.from_portal(entry.portal_path), entry.size, entry.md5)

    resender = Resender(journal, uploader, config.resend_interval_s, on_sent=sent)
    return PortalFS(
        config, portal, storage, uploader, metadata, reader, journal, resender, spool_dir
    )
