"""Organizations, users and portals in DATA/state.json (mode 0600); thread-safe and safe
against admin commands editing the file while the server runs. Never logs a secret."""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TypeVar

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
_LOCK_FILE = "state.lock"
T = TypeVar("T")
_FORMAT_VERSION = 1
# scrypt cost: ~16 MiB and a few tens of ms per login, cheap for us, costly for guessing.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


class StateError(ValueError):
    """A request to change the state that cannot be honoured; the message says why."""


@dataclass(frozen=True)
class Organization:
    id: int
    name: str


@dataclass(frozen=True)
class User:
    id: int
    username: str
    org_id: int
    # "scrypt$N$r$p$salt_hex$hash_hex": the parameters travel with the hash.
    password_hash: str = field(repr=False)


@dataclass(frozen=True)
class Portal:
    id: int
    name: str
    description: str
    org_id: int
    token: str = field(repr=False)
    # Storage key prefix of everything in this portal, e.g. "portal-1/".
    prefix: str = ""


@dataclass(frozen=True)
class _Snapshot:
    secret: bytes = field(repr=False)
    organizations: dict[int, Organization]
    users: dict[int, User]
    portals: dict[int, Portal]


def hash_password(password: str) -> str:
    """Returns a salted scrypt hash of `password` in a self-describing string."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def check_password(password: str, encoded: str) -> bool:
    """True when `password` matches `encoded`; compares in constant time."""
    _, n, r, p, salt, digest = encoded.split("$")
    candidate = _scrypt(password, bytes.fromhex(salt), int(n), int(r), int(p))
    return hmac.compare_digest(candidate, bytes.fromhex(digest))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)


# Checked against unknown usernames so a failed login costs the same whether or not the
# user exists (no username probing by timing).
_DUMMY_HASH = hash_password(secrets.token_hex(16))


class State:
    """The server's accounts and portals. Thread-safe: a lock guards the in-memory copy and
    an flock on DATA/state.lock serialises writers across processes."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._path = data_dir / STATE_FILE
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None
        self._file_sig: tuple[int, int, int] | None = None

    @classmethod
    def open(cls, data_dir: Path) -> State:
        """Opens (creating on first use) the state in `data_dir`, made mode 0700."""
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        state = cls(data_dir)
        with state._write_lock():
            if not state._path.exists():
                state._save(_Snapshot(secrets.token_bytes(32), {}, {}, {}))
        return state

    # ------------------------------------------------------------------ reads

    def portal(self, portal_id: int) -> Portal | None:
        return self._current().portals.get(portal_id)

    def user(self, user_id: int) -> User | None:
        return self._current().users.get(user_id)

    def organization(self, org_id: int) -> Organization | None:
        return self._current().organizations.get(org_id)

    def organizations(self) -> list[Organization]:
        return sorted(self._current().organizations.values(), key=lambda o: o.id)

    def portals(self) -> list[Portal]:
        return sorted(self._current().portals.values(), key=lambda p: p.id)

    def key_for(self, purpose: str) -> bytes:
        """A key derived from the server secret, one per purpose (JWT, URL signing)."""
        return hmac.new(self._current().secret, purpose.encode(), hashlib.sha256).digest()

    def authenticate(self, username: str, password: str) -> User | None:
        """The user with these credentials, or None."""
        user = next((u for u in self._current().users.values() if u.username == username), None)
        ok = check_password(password, user.password_hash if user else _DUMMY_HASH)
        return user if ok and user else None

    # ----------------------------------------------------------------- writes

    def add_organization(self, name: str) -> Organization:
        _require_text("organization name", name)

        def change(snap: _Snapshot) -> tuple[_Snapshot, Organization]:
            org = Organization(_next_id(snap.organizations), name)
            return replace(snap, organizations={**snap.organizations, org.id: org}), org

        return self._mutate(change)

    def add_user(self, username: str, password: str, org_id: int) -> User:
        _require_text("username", username)
        _require_text("password", password)
        password_hash = hash_password(password)  # slow: outside the lock

        def change(snap: _Snapshot) -> tuple[_Snapshot, User]:
            _require_org(snap, org_id)
            if any(u.username == username for u in snap.users.values()):
                raise StateError(f"user {username!r} already exists")
            user = User(_next_id(snap.users), username, org_id, password_hash)
            return replace(snap, users={**snap.users, user.id: user}), user

        return self._mutate(change)

    def add_portal(self, name: str, description: str, org_id: int) -> Portal:
        _require_text("portal name", name)

        def change(snap: _Snapshot) -> tuple[_Snapshot, Portal]:
            _require_org(snap, org_id)
            portal_id = _next_id(snap.portals)
            # 256 bits of token; compared in constant time by auth/access.py.
            token = secrets.token_hex(32)
            portal = Portal(portal_id, name, description, org_id, token, f"portal-{portal_id}/")
            return replace(snap, portals={**snap.portals, portal.id: portal}), portal

        return self._mutate(change)

    # --------------------------------------------------------------- plumbing

    def _current(self) -> _Snapshot:
        with self._lock:
            sig = _file_sig(self._path)
            if self._snapshot is None or sig != self._file_sig:
                # Another process (an admin command) changed the file: pick it up.
                self._snapshot, self._file_sig = _load(self._path), sig
                log.debug("loaded %s", self._path)
            return self._snapshot

    def _mutate(self, change: Callable[[_Snapshot], tuple[_Snapshot, T]]) -> T:
        with self._write_lock():
            snapshot, result = change(_load(self._path))
            self._save(snapshot)
            return result

    @contextmanager
    def _write_lock(self) -> Iterator[None]:
        fd = os.open(self.data_dir / _LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            with self._lock:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
        finally:
            os.close(fd)  # closing releases the flock

    def _save(self, snapshot: _Snapshot) -> None:
        # Caller holds the write lock; the in-memory lock is already taken by it.
        write_private_json(self._path, _dump(snapshot))
        self._snapshot, self._file_sig = snapshot, _file_sig(self._path)


def write_private_json(path: Path, doc: dict) -> None:
    """Writes `doc` to `path` atomically (temp file + os.replace), readable by owner only."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _file_sig(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _load(path: Path) -> _Snapshot:
    doc = json.loads(path.read_text())
    if doc.get("version") != _FORMAT_VERSION:
        raise StateError(f"{path}: unsupported state format {doc.get('version')!r}")
    return _Snapshot(
        secret=bytes.fromhex(doc["secret"]),
        organizations={o["id"]: Organization(**o) for o in doc["organizations"]},
        users={u["id"]: User(**u) for u in doc["users"]},
        portals={p["id"]: Portal(**p) for p in doc["portals"]},
    )


def _dump(snap: _Snapshot) -> dict:
    return {
        "version": _FORMAT_VERSION,
        "secret": snap.secret.hex(),
        "organizations": [asdict(o) for o in snap.organizations.values()],
        "users": [asdict(u) for u in snap.users.values()],
        "portals": [asdict(p) for p in snap.portals.values()],
    }


def _next_id(items: dict[int, object]) -> int:
    return max(items, default=0) + 1


def _require_text(what: str, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise StateError(f"{what} must be a non-empty string")


def _require_org(snap: _Snapshot, org_id: int) -> None:
    if org_id not in snap.organizations:
        raise StateError(f"organization {org_id} does not exist")
