"""The PortalError tree: every failure the client reports, named by its condition.

Messages never contain tokens, JWTs or signed URLs; callers branch on the class, not the text.
"""

from __future__ import annotations


class PortalError(Exception):
    """Base of every error the portal client raises."""

    def __init__(self, message: str, *, status: int | None = None, storage: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        # Answered by the storage behind a signed URL (S3, GCS), not by the portal's API.
        self.storage = storage


class RejectedError(PortalError):
    """The server refused the request as invalid (HTTP 400 or success=false)."""


class InvalidNameError(RejectedError):
    """A portal path the portal cannot store; detected locally, before any request."""


class NameTooLongError(InvalidNameError):
    """A name or path is longer than a portal can store."""


class TooLargeError(RejectedError):
    """The file or request body is larger than the portal accepts."""


class AuthError(PortalError):
    """Credentials are missing, wrong or expired (HTTP 401)."""


class TotpRequiredError(AuthError):
    """The account has two-factor login on; retry the login with a TOTP code."""


class AccessDeniedError(PortalError):
    """The credentials are valid but do not allow this (HTTP 403): e.g. a token without a JWT."""


class LinkExpiredError(AccessDeniedError):
    """A pre-signed storage URL was refused: it expired or was revoked; ask for a new one."""


class NotFoundError(PortalError):
    """The portal or the file does not exist (HTTP 404)."""


class ConflictError(PortalError):
    """The object changed while it was being read (ETag moved between requests)."""


class UnavailableError(PortalError):
    """The server could not be reached or kept failing (connection errors, timeouts, 5xx)."""


class ServerDownError(UnavailableError):
    """Not sent: the server was found unreachable moments ago and is only probed now and then
    until it answers again."""


class RateLimitedError(UnavailableError):
    """The server kept answering 429 beyond the retry budget."""


class ProtocolError(PortalError):
    """The server's answer does not follow the API: malformed JSON, missing fields, a redirect."""


class IntegrityError(PortalError):
    """Bytes received do not match the size or MD5 the portal announced."""
