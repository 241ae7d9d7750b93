"""The portalfs command line: parses arguments, reads the environment, wires the parts
together and prints. With cli_mount.py the only modules that print; no protocol or
file-system logic lives here.
"""

from __future__ import annotations

import argparse
import functools
import getpass
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from . import __version__, credentials
from .by_class import by_class
from .cli_common import (
    EXIT_AUTH,
    EXIT_DENIED,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    UsageError,
    clients,
    credentials_from,
)
from .cli_mount import cmd_mount, cmd_recover, cmd_unmount
from .client import errors
from .client.models import PortalFile
from .client.portal import PortalClient
from .config import HttpConfig, MountConfig, TransferConfig
from .transfers import BatchDownloader, BatchUploader, Result
from .write.upload import Uploader

log = logging.getLogger("portalfs")

# The one table from error class to exit code; the first class in the MRO that is listed wins.
_EXIT_CODES: dict[type[Exception], int] = {
    errors.AuthError: EXIT_AUTH,
    errors.AccessDeniedError: EXIT_DENIED,
    errors.NotFoundError: EXIT_NOT_FOUND,
    errors.UnavailableError: EXIT_UNAVAILABLE,
    errors.PortalError: EXIT_FAILED,
    credentials.CredentialsError: EXIT_USAGE,
}


# ---------------------------------------------------------------- commands


def cmd_login(args: argparse.Namespace) -> int:
    creds = credentials_from(args, need_portal=False)
    portal, _ = clients(creds)
    if args.password_stdin and not args.username:
        raise UsageError("--password-stdin needs --username (stdin holds the password)")
    try:
        username = args.username or input("Username or e-mail: ")
        password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass()
    except EOFError:
        raise UsageError("no input: give --username and the password on stdin") from None
    if not password:
        raise UsageError("the password is empty")
    try:
        jwt = portal.login(username, password, args.totp)
    except errors.TotpRequiredError:
        if args.password_stdin:
            raise UsageError("this account needs a TOTP code: pass --totp CODE") from None
        jwt = portal.login(username, password, input("TOTP code: "))
    expiry = credentials.jwt_expiry(jwt)
    until = f" (valid until {expiry:%Y-%m-%d %H:%M} UTC)" if expiry else ""
    if args.save:
        path = credentials.save_jwt(creds.api_url, jwt)
        print(f"Logged in as {username}{until}; saved to {path}", file=sys.stderr)
    else:
        print(f"Logged in as {username}{until}. Use the token via:", file=sys.stderr)
        print(f"export EI_JWT_TOKEN={jwt}")
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    portal, _ = clients(credentials_from(args))
    info = portal.info()
    print(f"{info.name} (portal {portal.credentials.portal_id})")
    if info.description:
        print(f"  {info.description}")
    print(f"  organization: {info.organization_name} ({info.organization_id})")
    print(f"  bucket: {info.bucket_name} ({info.storage_provider or 'unknown'})")
    print(
        f"  access: {'read and write' if portal.credentials.can_read else 'upload and list only'}"
    )
    return EXIT_OK


def cmd_ls(args: argparse.Namespace) -> int:
    portal, _ = clients(credentials_from(args))
    folder = args.prefix.strip("/")
    if not _list(portal, folder, args.long, args.recursive) and folder:
        # Nothing listed: PREFIX is a file, or nothing at all.
        parent, _, name = folder.rpartition("/")
        match = [e for e in portal.iter_folder(parent) if e.name.rstrip("/") == name]
        if not match:
            raise errors.NotFoundError(f"{folder}: no such file or folder in the portal")
        _print_entry(match[0], folder, args.long)
    return EXIT_OK


def _list(portal: PortalClient, folder: str, long: bool, recursive: bool) -> int:
    """Print one folder (and below, with `recursive`); returns how many entries it had."""
    base = f"{folder}/" if folder else ""
    count = 0
    for entry in portal.iter_folder(folder):
        count += 1
        name = entry.name.rstrip("/")
        _print_entry(entry, base + name if recursive else name, long)
        if recursive and entry.is_folder:
            _list(portal, base + name, long, recursive)
    return count


def _print_entry(entry: PortalFile, shown: str, long: bool) -> None:
    shown += "/" if entry.is_folder else ""
    if long:
        size = "-" if entry.is_folder else str(entry.size or 0)
        added = f"{entry.added:%Y-%m-%d %H:%M}" if entry.added else "-"
        print(f"{size:>12}  {added:16}  {shown}")
    else:
        print(shown)


class _Tally:
    """Prints one line per file and counts outcomes for the summary."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.counts: dict[str, int] = {}
        self.bytes = 0
        self.started = time.monotonic()

    def __call__(self, result: Result) -> None:
        self.counts[result.outcome] = self.counts.get(result.outcome, 0) + 1
        if result.outcome == "failed":
            print(f"failed      {result.portal_path}: {_describe(result.error)}", file=sys.stderr)
            return
        if result.outcome != "skipped":
            self.bytes += result.size
        if not self.quiet:
            note = " (same content already stored)" if result.outcome == "skipped" else ""
            print(f"{result.outcome:<11} {result.portal_path}{note}")

    def summary(self) -> int:
        elapsed = time.monotonic() - self.started
        parts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(self.counts.items()))
        files = sum(self.counts.values())
        rate = self.bytes / elapsed / 1e6 if elapsed > 0 else 0.0
        per_s = files / elapsed if elapsed > 0 else 0.0
        print(
            f"{parts or 'nothing to do'}; {self.bytes / 1e6:.1f} MB in {elapsed:.1f} s "
            f"({rate:.1f} MB/s, {per_s:.{0 if per_s >= 10 else 1}f} files/s)",
            file=sys.stderr,
        )
        return EXIT_FAILED if self.counts.get("failed") else EXIT_OK


def cmd_upload(args: argparse.Namespace) -> int:
    portal, storage = clients(credentials_from(args))
    batch = BatchUploader(portal, Uploader(portal, storage), args.jobs)
    tally = _Tally(args.quiet)
    batch.run(args.local, args.to, tally)
    return tally.summary()


def cmd_download(args: argparse.Namespace) -> int:
    if args.output == "-":
        raise UsageError("downloads go to files: give -o a file or folder name, not -")
    creds = credentials_from(args)
    if not creds.jwt:
        raise errors.AccessDeniedError(
            "downloading needs an organization member's login (a portal token only uploads)"
        )
    portal, storage = clients(creds)
    tally = _Tally(args.quiet)
    BatchDownloader(portal, storage, args.jobs).run(args.paths, args.output, tally)
    return tally.summary()


def cmd_serve(args: argparse.Namespace) -> int:
    from .server.config import ServerConfig
    from .server.runner import DataDirInUse, serve
    from .server.storage.base import StorageError

    config = ServerConfig(
        data_dir=Path(args.data),
        host=args.host,
        port=args.port,
        storage_url=args.storage,
        page_size=args.page_size,
        public_url=args.public_url,
        cors_origins=tuple(args.cors_origin) if args.cors_origin else ("*",),
    )
    try:
        serve(config, on_ready=lambda message: print(message, flush=True))
    except StorageError as exc:
        raise UsageError(f"storage: {exc}") from None
    except DataDirInUse as exc:
        raise UsageError(f"{exc}; give this one its own --data") from None
    return EXIT_OK


def cmd_admin(args: argparse.Namespace) -> int:
    from .server.state import admin

    try:
        if args.admin_command == "create-portal":
            result = admin.create_portal(
                Path(args.data), args.name, args.description, args.org_id, args.public_url
            )
        elif args.admin_command == "create-organization":
            result = admin.create_organization(Path(args.data), args.name)
        else:
            password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
            result = admin.create_user(Path(args.data), args.username, password, args.org_id)
    except admin.StateError as exc:
        raise UsageError(str(exc)) from None
    print(json.dumps(result, indent=2))
    return EXIT_OK


# ---------------------------------------------------------------- errors


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, errors.PortalError):
        return exc.message
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    return str(exc)


def _jwt_used(args: argparse.Namespace) -> str | None:
    """The JWT the command sent, found as the command found it (file, environment or saved)."""
    try:
        return credentials_from(args, need_portal=False).jwt
    except (credentials.CredentialsError, UsageError):
        return None


def _hint(exc: Exception, args: argparse.Namespace) -> str | None:
    if isinstance(exc, errors.AuthError):
        if args.command == "login":
            return "check the user name and password"
        jwt = _jwt_used(args)
        expiry = credentials.jwt_expiry(jwt) if jwt else None
        if expiry and expiry < datetime.now(UTC):
            return f"your login expired at {expiry:%Y-%m-%d %H:%M} UTC: run `portalfs login --save`"
        return "check the portal token (EI_PORTAL_TOKEN, --token-file or the link) and the login"
    if isinstance(exc, errors.AccessDeniedError):
        return "reading, deleting and renaming need an organization member: portalfs login --save"
    if isinstance(exc, errors.UnavailableError) and exc.status:
        return "the portal server is failing or overloaded; try again later"
    if isinstance(exc, errors.UnavailableError):
        return "is the portal API reachable? set EI_API_URL or --api-url to its address"
    if isinstance(exc, errors.NotFoundError):
        api = getattr(args, "api_url", None) or os.environ.get("EI_API_URL", "")
        if api and not api.rstrip("/").endswith("/v1"):
            return "the API URL usually ends in /v1, e.g. https://studio.edgeimpulse.com/v1"
        return "check the portal id and the path"
    return None


def _exit_code(exc: Exception) -> int:
    return by_class(_EXIT_CODES, exc, EXIT_FAILED)


# ---------------------------------------------------------------- arguments


def _add_credential_flags(p: argparse.ArgumentParser) -> None:
    # -v also after the command name; SUPPRESS keeps the top-level count when it is absent.
    p.add_argument(
        "-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more log output"
    )
    g = p.add_argument_group("portal and credentials (flags beat the environment)")
    g.add_argument("--api-url", help="API root, e.g. http://127.0.0.1:4800/v1 (env EI_API_URL)")
    g.add_argument("--portal-id", type=int, help="portal id (env EI_PORTAL_ID)")
    g.add_argument("--token-file", help="file holding the portal token (env EI_PORTAL_TOKEN)")
    g.add_argument("--jwt-file", help="file holding a member's JWT (env EI_JWT_TOKEN)")
    g.add_argument("--link-file", help="file holding the portal link (env EI_PORTAL_LINK)")


def _add_transfer_flags(p: argparse.ArgumentParser, jobs: int) -> None:
    p.add_argument("-j", "--jobs", type=int, default=jobs, help="files in flight at once")
    p.add_argument("-q", "--quiet", action="store_true", help="print only failures and the summary")


_Subparsers = argparse._SubParsersAction  # argparse's type for what add_subparsers() returns
# No abbreviated flags: "--token SECRET" would be taken as --token-file and the secret
# printed back in "cannot read ..." (found by a newcomer trial).
_strict = functools.partial(argparse.ArgumentParser, allow_abbrev=False)


def build_parser() -> argparse.ArgumentParser:
    parser = _strict(
        prog="portalfs", description="Upload portals as a directory, a command line and a server."
    )
    parser.add_argument("--version", action="version", version=f"portalfs {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_strict
    )
    for add in (
        _login_parser,
        _info_parser,
        _ls_parser,
        _upload_parser,
        _download_parser,
        _mount_parser,
        _recover_parser,
        _unmount_parser,
        _serve_parser,
        _admin_parser,
    ):
        add(sub)
    return parser


def _login_parser(sub: _Subparsers) -> None:
    p = sub.add_parser("login", help="log in as an organization member; prints or saves a JWT")
    _add_credential_flags(p)
    p.add_argument("--username", help="user name or e-mail (asked when missing)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument("--totp", help="TOTP code, for accounts with two-factor login")
    p.add_argument("--save", action="store_true", help="save the JWT (0600) for later commands")
    p.set_defaults(func=cmd_login)


def _info_parser(sub: _Subparsers) -> None:
    p = sub.add_parser("info", help="show the portal's name, organization and your access")
    _add_credential_flags(p)
    p.set_defaults(func=cmd_info)


def _ls_parser(sub: _Subparsers) -> None:
    p = sub.add_parser("ls", help="list a folder of the portal")
    _add_credential_flags(p)
    p.add_argument("prefix", nargs="?", default="", help="folder in the portal (default: root)")
    p.add_argument("-l", dest="long", action="store_true", help="show sizes and dates")
    p.add_argument("-R", dest="recursive", action="store_true", help="list subfolders too")
    p.set_defaults(func=cmd_ls)


def _upload_parser(sub: _Subparsers) -> None:
    p = sub.add_parser("upload", help="upload files and folders (identical files are skipped)")
    _add_credential_flags(p)
    p.add_argument("local", nargs="+", help="local files or folders")
    p.add_argument("--to", default="", help="folder in the portal to upload into")
    _add_transfer_flags(p, TransferConfig().upload_workers)
    p.set_defaults(func=cmd_upload)


def _download_parser(sub: _Subparsers) -> None:
    p = sub.add_parser("download", help="download files or folders (needs a member's login)")
    _add_credential_flags(p)
    p.add_argument("paths", nargs="+", help="files or folders in the portal")
    p.add_argument("-o", "--output", default=".", help="destination folder or file name")
    _add_transfer_flags(p, TransferConfig().download_workers)
    p.set_defaults(func=cmd_download)


def _mount_parser(sub: _Subparsers) -> None:
    p = sub.add_parser(
        "mount",
        help="mount the portal as a directory (FUSE)",
        usage="portalfs mount [options] [PORTAL_LINK] MOUNTPOINT",
    )
    _add_credential_flags(p)
    p.add_argument("target", nargs="+", metavar="[PORTAL_LINK] MOUNTPOINT")
    p.add_argument("-f", "--foreground", action="store_true", help="stay in the foreground")
    p.add_argument("--read-only", action="store_true", help="refuse every change (EROFS)")
    p.add_argument(
        "--allow-delete",
        action="store_true",
        help="let rm and mv delete and rename portal files (needs a login)",
    )
    p.add_argument("--cache-dir", help="spool, journal and log folder (private, 0700)")
    _add_tuning_flags(p)
    p.add_argument("--uid", type=int, help="owner shown for files (default: you)")
    p.add_argument("--gid", type=int, help="group shown for files (default: yours)")
    p.add_argument(
        "--allow-other",
        action="store_true",
        help="let other users in (turns on default_permissions)",
    )
    p.add_argument(
        "-o",
        dest="options",
        action="append",
        metavar="OPTIONS",
        help="extra FUSE options, comma-separated",
    )
    p.add_argument(
        "--debug",
        action="store_const",
        const=2,
        dest="verbose",
        default=argparse.SUPPRESS,
        help="log every request (secrets stay redacted)",
    )
    p.set_defaults(func=cmd_mount)


def _add_tuning_flags(p: argparse.ArgumentParser) -> None:
    """The mount's caches, timeouts and retry pace."""
    p.add_argument(
        "--metadata-ttl",
        type=float,
        default=MountConfig.metadata_ttl_s,
        metavar="SECONDS",
        help="how long listings are trusted",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=HttpConfig.read_timeout_s,
        metavar="SECONDS",
        help="a request silent this long is abandoned and retried",
    )
    p.add_argument(
        "--resend-interval",
        type=float,
        default=MountConfig.resend_interval_s,
        metavar="SECONDS",
        help="how often unsent files are tried again",
    )
    p.add_argument(
        "--cache-size",
        type=int,
        default=MountConfig.cache_bytes,
        metavar="BYTES",
        help="memory for cached file blocks, read-ahead included",
    )
    p.add_argument(
        "--list-ahead",
        type=int,
        default=MountConfig.list_ahead_folders,
        metavar="FOLDERS",
        help="folders listed ahead of ls -R, find and the like (0: none)",
    )


def _recover_parser(sub: _Subparsers) -> None:
    p = sub.add_parser("recover", help="send files a mount could not upload (its journal)")
    _add_credential_flags(p)
    p.add_argument("--cache-dir", help="the mount's cache folder (default: as for mount)")
    p.add_argument(
        "--list",
        action="store_true",
        help="only list unsent and refused files (safe beside a running mount); exit 1 if any",
    )
    p.set_defaults(func=cmd_recover)


def _unmount_parser(sub: _Subparsers) -> None:
    p = sub.add_parser("unmount", help="unmount a portalfs mount")
    p.add_argument("mountpoint")
    p.set_defaults(func=cmd_unmount)


def _serve_parser(sub: _Subparsers) -> None:
    p = sub.add_parser("serve", help="run a self-hosted portal server")
    p.add_argument("--data", required=True, help="state folder (created on first start)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4800)
    p.add_argument("--storage", help="s3://bucket/prefix (default: the folder DATA/objects)")
    p.add_argument("--page-size", type=int, default=1000, help="listing entries per page")
    p.add_argument("--public-url", help="base URL clients reach the server at")
    p.add_argument("--cors-origin", action="append", help="allowed browser origin (repeatable)")
    p.set_defaults(func=cmd_serve)


def _admin_parser(sub: _Subparsers) -> None:
    p = sub.add_parser("admin", help="create portals and users on a self-hosted server")
    admin = p.add_subparsers(
        dest="admin_command", required=True, metavar="ACTION", parser_class=_strict
    )
    a = admin.add_parser("create-portal", help="create a portal; prints id, token and link")
    a.add_argument("--data", required=True)
    a.add_argument("--name", required=True)
    a.add_argument("--description", default="")
    a.add_argument("--org-id", type=int)
    a.add_argument("--public-url", help="base URL of the portal link (default: as served)")
    a = admin.add_parser("create-organization", help="create an organization; prints its id")
    a.add_argument("--data", required=True)
    a.add_argument("--name", required=True)
    a = admin.add_parser("create-user", help="create a user; prints the generated password")
    a.add_argument("--data", required=True)
    a.add_argument("--username", required=True)
    a.add_argument("--org-id", type=int)
    a.add_argument("--password-stdin", action="store_true")
    p.set_defaults(func=cmd_admin)


def _setup_logging(verbosity: int) -> None:
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbosity, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # urllib3 logs request lines with their query strings (URL signatures) at DEBUG: always
    # keep it quiet. Our transport logs every request at DEBUG, redacted.
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return args.func(args)
    except (errors.PortalError, credentials.CredentialsError, UsageError) as exc:
        print(f"portalfs: {_describe(exc)}", file=sys.stderr)
        hint = _hint(exc, args)
        if hint:
            print(f"hint: {hint}", file=sys.stderr)
        return _exit_code(exc) if not isinstance(exc, UsageError) else EXIT_USAGE
    except BrokenPipeError:
        # `portalfs ls | head`: the reader left. Quietly, as other tools do; stdout is
        # pointed at /dev/null so Python's own flush at exit does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except OSError as exc:
        print(f"portalfs: {_describe(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
