"""The mount side of the command line: `mount`, `unmount` and `recover`. Wires the mount's
parts from flags; prints only the one-line results a shell user needs."""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from .cli_common import EXIT_FAILED, EXIT_OK, UsageError, clients, credentials_from
from .client.portal import Credentials, PortalClient
from .client.transport import Transport
from .config import HttpConfig, MountConfig
from .private import PrivateRotatingFileHandler, open_private, private_dir
from .write.upload import Uploader


def default_cache_dir(creds: Credentials) -> Path:
    # Per API, portal and kind of access (a member's mount and a token-only one of the same
    # portal can run side by side), named by a hash: no token or URL in a file name.
    key = hashlib.sha256(f"{creds.api_url}|{creds.portal_id}".encode()).hexdigest()[:16]
    kind = "member" if creds.can_read else "token"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "portalfs" / f"portal-{creds.portal_id}-{key}-{kind}"


def cache_dir_for(args: argparse.Namespace, creds: Credentials) -> Path:
    """--cache-dir, or the default for these credentials; absolute, because libfuse moves
    the mount daemon to "/" and a relative path would then miss."""
    return Path(args.cache_dir or default_cache_dir(creds)).resolve()


def warn_of_old_journal(creds: Credentials) -> None:
    """Before session 2 the default folder had no -member/-token suffix: say if files
    are still waiting in one, since no default mount will look there again."""
    new = default_cache_dir(creds)
    old = new.with_name(new.name.rsplit("-", 1)[0]) / "unsent"
    if any(old.glob("*.json")):
        print(
            f"portalfs: files an earlier version could not send are in {old}; "
            f"send them with: portalfs recover --cache-dir {old.parent}",
            file=sys.stderr,
        )


def hold_cache_dir(cache_dir: Path) -> int:
    """Lock CACHE/lock for this process and the daemon it forks: one mount (or recover)
    per cache folder, whose spool and journal of unsent files are not made to be shared.
    Returns the descriptor; the lock lasts as long as it stays open."""
    private_dir(cache_dir)
    fd = open_private(cache_dir / "lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UsageError(
            f"another portalfs mount or recover is using {cache_dir}; "
            "give this one its own --cache-dir"
        ) from None
    return fd


def _scrub_link_from_argv(args: argparse.Namespace) -> None:
    """Re-run with a tokened link moved from argv (world-readable) into the environment."""
    if not args.target or "token=" not in args.target[0] or os.environ.get("_PORTALFS_REEXEC"):
        return
    env = dict(os.environ, EI_PORTAL_LINK=args.target[0], _PORTALFS_REEXEC="1")
    argv = [a for a in sys.argv[1:] if a != args.target[0]]
    os.execve(sys.executable, [sys.executable, "-m", "portalfs", *argv], env)


def _mount_config(args: argparse.Namespace, creds: Credentials) -> MountConfig:
    return MountConfig(
        cache_dir=str(cache_dir_for(args, creds)),
        metadata_ttl_s=args.metadata_ttl,
        cache_bytes=args.cache_size,
        read_only=args.read_only,
        allow_delete=args.allow_delete,
        resend_interval_s=args.resend_interval,
        list_ahead_folders=max(0, args.list_ahead),
        uid=os.getuid() if args.uid is None else args.uid,
        gid=os.getgid() if args.gid is None else args.gid,
    )


def _fuse_options(args: argparse.Namespace, config: MountConfig) -> dict[str, object]:
    options: dict[str, object] = {
        "fsname": "portalfs",
        "subtype": "portalfs",
        # The kernel may keep attributes and names as long as our listings are fresh.
        "attr_timeout": config.metadata_ttl_s,
        "entry_timeout": config.metadata_ttl_s,
        "negative_timeout": config.metadata_ttl_s,
        # libfuse 3's default is "unset", which it reports as an invalid value on every mount.
        "max_threads": 64,
        # Keep the page cache across opens while size and mtime stay the same: re-reads of
        # an unchanged file cost nothing.
        "auto_cache": True,
        # rm of a file still open: unlink it, as POSIX says. Without this, libfuse renames
        # it to .fuse_hiddenNNN instead, which the portal would store and list until the
        # last close (for good if the mount dies first).
        "hard_remove": True,
    }
    options.update(_extra_options(args.options))
    if args.allow_other or "allow_other" in options:
        # Other users can enter the mount: let the kernel check each one against the mode,
        # owner and group shown, or everyone would act with the mounter's login.
        options.update(allow_other=True, default_permissions=True)
    if config.read_only:
        options["ro"] = True  # so that `mount` and /proc/mounts say so too
    return options


def _extra_options(given: list[str] | None) -> dict[str, object]:
    """The -o options as a dict; `default_permissions` only as a plain flag (a value such
    as 0 would switch off the permission checks that allow_other relies on)."""
    options: dict[str, object] = {}
    for item in ",".join(given or []).split(","):
        if item:
            key, _, value = item.partition("=")
            options[key] = value if value else True
    if options.get("default_permissions", True) is not True:
        raise UsageError("-o default_permissions takes no value; permissions cannot be unchecked")
    return options


def cmd_mount(args: argparse.Namespace) -> int:
    from .fs.factory import build_portalfs
    from .fuse import mount

    _scrub_link_from_argv(args)
    if not args.target or len(args.target) > 2:
        raise UsageError("usage: portalfs mount [PORTAL_LINK] MOUNTPOINT")
    if len(args.target) == 2:  # a link with its token has been moved out of argv by now
        raise UsageError(
            f"{args.target[0]!r} is not a portal link with its token (…/portals/ID?token=…); "
            "usage: portalfs mount [PORTAL_LINK] MOUNTPOINT, one mount per command"
        )
    mountpoint = Path(args.target[-1]).resolve()
    creds = credentials_from(args)
    try:
        if mount.is_dead(mountpoint):
            mount.unmount(mountpoint)
            print(f"portalfs: unmounted what a killed mount left at {mountpoint}", file=sys.stderr)
        mount.check_mountpoint(mountpoint)
    except mount.MountError as exc:
        raise UsageError(str(exc)) from None
    transport = Transport(HttpConfig(read_timeout_s=args.timeout))
    # A wrong token fails here, unmounted. The mount goes on with this transport, so its
    # first request finds the connection open (and, on https, the TLS handshake done).
    PortalClient(creds, transport).info()
    config = _mount_config(args, creds)
    hold_cache_dir(Path(config.cache_dir))
    if not args.cache_dir:
        warn_of_old_journal(creds)
    options = _fuse_options(args, config)

    def start(ready: Callable[[], None] | None) -> None:
        mount.run(
            build_portalfs(creds, config, transport=transport),
            mountpoint,
            options,
            ready,
        )

    if config.read_only:
        access = "read-only" if creds.can_read else "list-only (read-only, and no login)"
    else:
        access = "read and write" if creds.can_read else "write-only (no login: no reads)"
    if config.allow_delete and not creds.can_read:
        print("portalfs: --allow-delete needs a login; rm and mv stay refused", file=sys.stderr)
    if args.foreground:
        print(f"Mounted portal {creds.portal_id} at {mountpoint}, {access}.", file=sys.stderr)
        start(None)
        return EXIT_OK
    _log_to_file(Path(config.cache_dir) / "mount.log", args.verbose)
    failure = mount.daemonize(start)
    if failure:
        print(f"portalfs: {failure}", file=sys.stderr)
        return EXIT_FAILED
    print(f"Mounted portal {creds.portal_id} at {mountpoint}, {access}.")
    print(f"Unmount with: portalfs unmount {mountpoint}")
    return EXIT_OK


def cmd_recover(args: argparse.Namespace) -> int:
    """Send what a mount left in its journal of unsent files, without mounting; with --list,
    only say what is there."""
    from .write.journal import Journal
    from .write.resend import Resender

    if args.list:
        cache_dir = (
            Path(args.cache_dir) if args.cache_dir else cache_dir_for(args, credentials_from(args))
        )
        return _list_journal(cache_dir)
    creds = credentials_from(args)
    cache_dir = cache_dir_for(args, creds)
    hold_cache_dir(cache_dir)
    portal, storage = clients(creds)
    journal = Journal(cache_dir / "unsent")
    resender = Resender(journal, Uploader(portal, storage))
    sent, unsent = resender.send_all()
    print(f"{sent} sent, {unsent} still unsent (in {cache_dir / 'unsent'})")
    if refused := journal.refused():
        print(f"{len(refused)} refused by the portal for good: portalfs recover --list says why")
    if unsent and resender.last_error is not None:
        raise resender.last_error  # main() says why, with the exit code of its kind
    return EXIT_FAILED if unsent else EXIT_OK


def _list_journal(cache_dir: Path) -> int:
    """Print what waits in the journal of `cache_dir`, and what the portal refused; changes
    nothing, so it may run beside the mount. Exit 1 while anything is there."""
    from .write.journal import contents

    unsent, refused, orphans = contents(cache_dir)
    for title, entries in (
        ("unsent, sent by a running mount or portalfs recover", unsent),
        ("refused for good", refused),
    ):
        print(f"{title}: {len(entries)}")
        for entry in entries:
            why = f"  ({entry.reason})" if entry.reason else ""
            print(f"  {entry.portal_path}  {entry.size} bytes  {entry.data_path}{why}")
    if orphans:
        print(f"kept, destination unknown: {len(orphans)}")
        for path in orphans:
            print(f"  {path}  {path.stat().st_size} bytes")
    return EXIT_FAILED if unsent or refused or orphans else EXIT_OK


def cmd_unmount(args: argparse.Namespace) -> int:
    from .fuse import mount

    try:
        mount.unmount(Path(args.mountpoint))
    except mount.MountError as exc:
        raise UsageError(str(exc)) from None
    return EXIT_OK


# mount.log: rotated by the daemon itself (it may run for months, and no logrotate rule is
# installed for a per-user cache folder); at most 4 x 10 MiB.
LOG_MAX_BYTES, LOG_BACKUPS = 10 * 1024 * 1024, 3


def _log_to_file(path: Path, verbosity: int) -> None:
    private_dir(path.parent)
    handler = PrivateRotatingFileHandler(path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel([logging.INFO, logging.INFO, logging.DEBUG][min(verbosity, 2)])
