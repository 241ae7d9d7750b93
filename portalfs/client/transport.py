"""HTTP for the client: pooled connections, timeouts, retries with capped backoff, and
the one place that turns HTTP failures into PortalError subclasses.

Knows nothing of endpoints. Never logs or raises a header, a body or a URL's query string.
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from .. import __version__
from ..config import HttpConfig
from . import errors
from .reachability import Reachability

log = logging.getLogger(__name__)

_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
_DEFAULT_HEADERS = {"User-Agent": f"portalfs/{__version__}"}
_ERROR_TEXT_LIMIT = 200


def redact_url(url: str) -> str:
    """The URL without credentials, query or fragment: safe to log or show."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    except ValueError:
        return "<unparseable url>"


@contextlib.contextmanager
def translated_errors(what: str, url: str | None = None) -> Iterator[None]:
    """The only place where requests' exceptions become PortalErrors."""
    where = f" to {_origin(url)}" if url else ""
    try:
        yield
    except requests.Timeout as exc:
        raise errors.UnavailableError(f"{what}: timed out{where}") from exc
    except requests.ConnectionError as exc:
        raise errors.UnavailableError(
            f"{what}: could not connect{where} or lost the connection"
        ) from exc
    except requests.exceptions.ChunkedEncodingError as exc:
        # What requests raises when the connection resets or closes in the middle of a
        # body, whatever its framing: a broken connection, not a malformed answer.
        raise errors.UnavailableError(f"{what}: the connection broke mid-answer{where}") from exc
    except requests.RequestException as exc:
        raise errors.ProtocolError(f"{what}: {type(exc).__name__}") from exc


def _server_message(resp: requests.Response, storage: bool) -> str:
    # Storage error bodies can echo the signature (S3's <SignatureProvided>): keep only <Code>.
    if storage:
        text = resp.text[:4096]
        start, end = text.find("<Code>"), text.find("</Code>")
        return text[start + 6 : end] if 0 <= start < end else ""
    try:
        body = resp.json()
    except ValueError:
        return ""
    message = body.get("error") if isinstance(body, dict) else None
    return str(message)[:_ERROR_TEXT_LIMIT] if message else ""


_STATUS_ERRORS: dict[int, type[errors.PortalError]] = {
    400: errors.RejectedError,
    401: errors.AuthError,
    403: errors.AccessDeniedError,
    404: errors.NotFoundError,
    409: errors.ConflictError,
    412: errors.ConflictError,
    413: errors.TooLargeError,
    429: errors.RateLimitedError,
}


def error_for_response(resp: requests.Response, what: str, *, storage: bool) -> errors.PortalError:
    """The PortalError that an unexpected HTTP status stands for."""
    status = resp.status_code
    if storage and status == 403:
        cls: type[errors.PortalError] = errors.LinkExpiredError
    elif status in _STATUS_ERRORS:
        cls = _STATUS_ERRORS[status]
    elif status >= 500:
        cls = errors.UnavailableError
    else:
        cls = errors.ProtocolError
    detail = _server_message(resp, storage)
    suffix = f": {detail}" if detail else ""
    return cls(f"{what}: HTTP {status}{suffix}", status=status, storage=storage)


def retry_after_s(resp: requests.Response) -> float | None:
    """Seconds the server asked us to wait (Retry-After as seconds or as an HTTP date)."""
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Transport:
    """Sends requests with timeouts and retries. Thread-safe: every request goes straight to
    one requests HTTPAdapter, whose urllib3 pool is shared and thread-safe.

    Not through a requests.Session: its merging of settings, cookies and hooks cost about
    130 µs of CPU per request (a tenth of a small file's upload, measured), and none of it is
    wanted: no cookies, no redirects, no settings from the environment but proxies and a CA
    bundle, read once. Not thread-local sessions either: FUSE calls us on libfuse's own
    threads, where Python forgets thread-local data after every callback.
    """

    def __init__(
        self,
        config: HttpConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._adapter = HTTPAdapter(pool_connections=4, pool_maxsize=config.pool_size)
        # What requests would read from the environment on every request (proxies,
        # NO_PROXY, a CA bundle), read once. ~/.netrc is not read: no request of ours wants
        # a password from it, and a signed URL must carry no Authorization.
        self._verify: bool | str = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )
        self._proxies_for = functools.lru_cache(maxsize=64)(_environment_proxies)
        self.reachability = Reachability(config.probe_interval_s)

    def request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        headers: dict[str, str] | None = None,
        json: Any = None,
        body: Callable[[], Iterable[bytes] | bytes] | None = None,
        stream: bool = False,
        idempotent: bool = True,
        storage: bool = False,
        ok: tuple[int, ...] = (200,),
    ) -> requests.Response:
        """Send, retrying transient failures; return a response whose status is in `ok`.

        `body` is a factory so that a retried upload sends its bytes again from the start.
        Redirects are never followed: API headers carry secrets that must not reach another host.
        """
        if urlsplit(url).scheme not in ("http", "https"):
            raise errors.ProtocolError(f"{what}: refusing a URL that is not http(s)")
        origin = _origin(url)
        # A server found unreachable is probed with one try now and then; meanwhile
        # requests fail at once, so a copy of 300 files fails in seconds, not minutes.
        attempts = self.config.max_attempts if self.reachability.admit(origin, what) else 1
        attempt = 0
        while True:
            attempt += 1
            last = attempt >= attempts
            try:
                resp = self._send_once(method, url, what, headers, json, body, stream)
            except errors.UnavailableError as exc:
                if last and _never_sent(exc):  # it did not reach the server at all
                    self.reachability.unreachable(origin, str(exc).partition(": ")[2])
                if last or not (idempotent or _never_sent(exc)):
                    raise
                self.backoff(attempt, None, what, str(exc))
                continue
            self.reachability.answered(origin)
            if resp.status_code in ok:
                return resp
            error = error_for_response(resp, what, storage=storage)
            resp.close()
            if last or not idempotent or resp.status_code not in _RETRYABLE_STATUS:
                raise error
            self.backoff(attempt, retry_after_s(resp), what, str(error))

    def _send_once(self, method, url, what, headers, json, body, stream) -> requests.Response:
        started = time.monotonic()
        timeout = (self.config.connect_timeout_s, self.config.read_timeout_s)
        with translated_errors(what, url):
            prepared = requests.PreparedRequest()
            prepared.prepare(
                method=method,
                url=url,
                headers={**_DEFAULT_HEADERS, **(headers or {})},
                json=json,
                data=body() if body is not None else None,
            )
            resp = self._adapter.send(
                prepared,
                stream=stream,
                timeout=timeout,
                verify=self._verify,
                proxies=self._proxies_for(_origin(url)),
            )
            if not stream:
                resp.content  # noqa: B018 - read it now, so the connection goes back to the pool
        log.debug(
            "%s %s -> %d in %.3fs",
            method,
            redact_url(url),
            resp.status_code,
            time.monotonic() - started,
        )
        return resp

    def backoff(self, attempt: int, server_delay: float | None, what: str, reason: str) -> None:
        """Sleep before try `attempt + 1`: the server's delay (capped), else jittered backoff."""
        if server_delay is not None:
            delay = min(server_delay, self.config.max_retry_after_s)
        else:
            ceiling = self.config.backoff_initial_s * 2 ** (attempt - 1)
            delay = self._rng.uniform(0, min(ceiling, self.config.backoff_max_s))
        log.info("retrying %s in %.2fs (attempt %d): %s", what, delay, attempt + 1, reason)
        self._sleep(delay)

    def iter_body(self, resp: requests.Response, what: str, chunk_bytes: int) -> Iterator[bytes]:
        """The response body in chunks, with read failures reported as PortalErrors."""
        with translated_errors(what), contextlib.closing(resp):
            yield from resp.iter_content(chunk_bytes)


def _origin(url: str) -> str:
    """scheme://host[:port] of `url`, without credentials, path or query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _environment_proxies(origin: str) -> dict[str, str]:
    """The proxies the environment names for `origin` (none if NO_PROXY covers it)."""
    return requests.utils.get_environ_proxies(origin)


def _never_sent(exc: errors.UnavailableError) -> bool:
    """True when the request cannot have reached the server, so even a POST may be retried."""
    cause = exc.__cause__
    if isinstance(cause, requests.ConnectTimeout):
        return True
    reason = getattr(cause.args[0], "reason", None) if cause and cause.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)
