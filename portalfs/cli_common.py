"""What every command of the command line shares: exit codes, the usage error, and turning
flags and the environment into credentials and clients. Prints nothing."""

from __future__ import annotations

import argparse
import os

from . import credentials
from .client.portal import Credentials, PortalClient
from .client.storage import StorageClient
from .client.transport import Transport
from .config import HttpConfig, TransferConfig

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_AUTH, EXIT_DENIED, EXIT_NOT_FOUND, EXIT_UNAVAILABLE = 3, 4, 5, 6


class UsageError(Exception):
    """The command cannot run as asked; the message says what to change."""


def sources(args: argparse.Namespace) -> credentials.CredentialSources:
    return credentials.CredentialSources(
        api_url=args.api_url,
        portal_id=args.portal_id,
        token_file=args.token_file,
        jwt_file=args.jwt_file,
        link_file=args.link_file,
    )


def credentials_from(args: argparse.Namespace, *, need_portal: bool = True) -> Credentials:
    creds = credentials.resolve(sources(args), dict(os.environ))
    if need_portal and creds.portal_id is None:
        raise UsageError(
            "no portal id: pass --portal-id, set EI_PORTAL_ID, or give the portal link "
            "with --link-file or EI_PORTAL_LINK"
        )
    if need_portal and not (creds.portal_token or creds.jwt):
        raise UsageError(
            "no portal token: set EI_PORTAL_TOKEN (the part after '?token=' in the portal "
            "link), pass --token-file, or give the link with --link-file or EI_PORTAL_LINK"
        )
    return creds


def clients(creds: Credentials) -> tuple[PortalClient, StorageClient]:
    transport = Transport(HttpConfig())
    return PortalClient(creds, transport), StorageClient(transport, TransferConfig().chunk_bytes)
