"""Who may do what: a portal token grants upload rights on its own portal only; a JWT of a
member of the portal's organization grants everything. Never logs a token or a JWT."""

from __future__ import annotations

import enum
import hmac
import time
from dataclasses import dataclass

import jwt

from ..errors import ApiError
from ..state.store import Portal, State, User

TOKEN_HEADER = "x-token"
JWT_HEADER = "x-jwt-token"
JWT_COOKIE = "jwt"
_JWT_ALGORITHM = "HS256"


class Access(enum.Enum):
    """What an operation needs. UPLOAD: list, info, upload-link. MEMBER: read, delete, rename."""

    UPLOAD = "upload"
    MEMBER = "member"


@dataclass(frozen=True)
class Credentials:
    """What the caller sent; either may be None."""

    token: str | None
    jwt: str | None


class JwtIssuer:
    """Issues and verifies HS256 JWTs whose `sub` is a user id. Thread-safe (stateless)."""

    def __init__(self, key: bytes, ttl_s: int) -> None:
        self._key = key
        self._ttl_s = ttl_s

    def issue(self, user_id: int, now: float | None = None) -> str:
        """A JWT for `user_id`, valid for ttl_s from `now` (tests pass a past `now`)."""
        issued = int(time.time() if now is None else now)
        claims = {"sub": str(user_id), "iat": issued, "exp": issued + self._ttl_s}
        return jwt.encode(claims, self._key, algorithm=_JWT_ALGORITHM)

    def verify(self, token: str) -> int:
        """The user id in a valid, unexpired JWT; raises ApiError 401 otherwise."""
        try:
            claims = jwt.decode(
                token, self._key, algorithms=[_JWT_ALGORITHM], options={"require": ["exp", "sub"]}
            )
            return int(claims["sub"])
        except jwt.ExpiredSignatureError as exc:
            raise ApiError(401, "JWT expired: log in again") from exc
        except (jwt.InvalidTokenError, ValueError) as exc:
            raise ApiError(401, "invalid JWT") from exc


def token_matches(portal: Portal, token: str) -> bool:
    """True when `token` is this portal's token; constant time in the token's content."""
    return hmac.compare_digest(portal.token.encode(), token.encode())


def authorize(
    state: State, issuer: JwtIssuer, portal: Portal, creds: Credentials, need: Access
) -> User | None:
    """Checks `creds` against `portal` for `need`; returns the JWT's user, if any.

    Every credential sent must be valid (401 otherwise, so a stale login is reported, not
    silently ignored). Rights are the union of what each grants: the token gives UPLOAD on
    its own portal; a member's JWT gives MEMBER (which includes UPLOAD). Lacking the right
    is 403."""
    if not creds.token and not creds.jwt:
        raise ApiError(401, f"missing credentials: send {TOKEN_HEADER} or {JWT_HEADER}")
    if creds.token and not token_matches(portal, creds.token):
        raise ApiError(401, f"invalid portal token for portal {portal.id}")
    user = _jwt_user(state, issuer, creds.jwt) if creds.jwt else None
    member = user is not None and user.org_id == portal.org_id
    if member or (need is Access.UPLOAD and creds.token):
        return user
    if need is Access.MEMBER:
        raise ApiError(403, "needs the login (JWT) of a member of the portal's organization")
    raise ApiError(403, "not a member of the portal's organization")


def _jwt_user(state: State, issuer: JwtIssuer, token: str) -> User:
    user = state.user(issuer.verify(token))
    if user is None:
        raise ApiError(401, "invalid JWT: unknown user")
    return user
