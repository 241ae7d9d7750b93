"""FaultProxy, for tests only: a loopback HTTP/1.1 proxy in front of the portal server that
resets connections (RST) and cuts response bodies short, by seeded chance or by rule.

Parses just enough HTTP to know where each message ends; never alters a byte it forwards.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import fcntl
import random
import select
import socket
import struct
import termios
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO
from urllib.parse import parse_qs, urlsplit

_PIECE_BYTES = 64 * 1024
_HEAD_LIMIT_BYTES = 64 * 1024
_HOLD_POLL_S = 0.01
# A client that stopped reading never takes the rest of what we sent: do not wait forever.
_DRAIN_TIMEOUT_S = 1.0


class Fault(enum.Enum):
    """What the proxy does to one exchange."""

    # The server gets the head and part of the body, then both sides get a reset.
    RESET_REQUEST = "reset while the request arrives"
    # The server handled the request (a PUT is stored); the client gets a reset, no answer.
    RESET_RESPONSE = "reset after the server answered, before the answer is forwarded"
    RESET_BODY = "reset in the middle of the answer"
    # A clean close (FIN): only the length the answer announced tells the client it is short.
    TRUNCATE = "close in the middle of the answer"


_RESETS = (Fault.RESET_REQUEST, Fault.RESET_RESPONSE, Fault.RESET_BODY)


@dataclass
class Exchange:
    """One request through the proxy and what became of it: what tests assert on."""

    method: str
    target: str  # path and query: it holds signatures, which is fine in tests
    headers: dict[str, str]  # names in lower case
    status: int | None = None
    body_bytes: int = 0  # bytes of the answer's body forwarded to the client
    fault: Fault | None = None

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.target).query).items()}

    @property
    def range_start(self) -> int | None:
        """The first byte a `Range: bytes=N-...` asks for; None without a Range."""
        value = self.headers.get("range", "")
        first = value.removeprefix("bytes=").partition("-")[0]
        return int(first) if value.startswith("bytes=") and first.isdigit() else None


@dataclass
class Rule:
    """`fault` for the next `times` exchanges with this method (None: any) and path prefix."""

    fault: Fault
    method: str | None = None
    path_prefix: str = "/"
    times: int = 1
    # Where to cut, in body bytes (the request's for RESET_REQUEST, else the answer's);
    # None: a random place.
    at_bytes: int | None = None
    # Polled at the cut, before the fault: e.g. "until the signed link has expired".
    hold: Callable[[Exchange], bool] | None = None

    def matches(self, ex: Exchange) -> bool:
        return self.method in (None, ex.method) and ex.path.startswith(self.path_prefix)


@dataclass(frozen=True)
class _Plan:
    fault: Fault | None
    at_bytes: int | None
    fraction: float  # where to cut when at_bytes is None, as a fraction of the body
    hold: Callable[[Exchange], bool] | None = None

    def cut(self, body_length: int | None) -> int:
        """Body bytes to forward before the fault; always fewer than the body has."""
        if self.at_bytes is not None:
            return self.at_bytes
        return int(self.fraction * (body_length or 0))


class _Conn:
    """A socket and its buffered reader."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.rfile: BinaryIO = sock.makefile("rb")

    def reset(self) -> None:
        """Close with RST (SO_LINGER 0): the peer's next send or receive fails."""
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    def close(self) -> None:
        self.rfile.close()  # first: the socket closes only once no file refers to it
        self.sock.close()

    def unsent_bytes(self) -> int:
        """Bytes sent but not yet acknowledged by the peer's kernel (Linux SIOCOUTQ)."""
        queued = fcntl.ioctl(self.sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
        return struct.unpack("i", queued)[0]

    def idle_closed(self) -> bool:
        """True if the peer closed this idle connection (anything readable now is EOF)."""
        readable, _, _ = select.select([self.sock], [], [], 0)
        return bool(readable)


@dataclass
class _Head:
    raw: bytes
    start: list[str]  # the request or status line, split in three
    headers: dict[str, str] = field(default_factory=dict)

    def framing(self) -> int | str:
        """The body's length, "chunked", or "close" (until the connection ends)."""
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            return "chunked"
        length = self.headers.get("content-length")
        return int(length) if length is not None else "close"

    def length(self, method: str, status: int | None = None) -> int | None:
        """The body's length in bytes when known (0: no body); None for chunked or
        until-close bodies. A request without either header has no body."""
        if status is not None and (method == "HEAD" or status < 200 or status in (204, 304)):
            return 0
        framing = self.framing()
        if status is None and framing == "close":
            return 0
        return framing if isinstance(framing, int) else None

    def closes(self) -> bool:
        """True if the connection ends after this message."""
        return "close" in self.headers.get("connection", "").lower() or (
            self.start[0].startswith("HTTP/") and self.framing() == "close"
        )


class FaultProxy:
    """Forwards 127.0.0.1:port to the server at `upstream_port`, faulting exchanges by rule
    (first) or by seeded chance. Thread-safe: one thread per client connection, one lock."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)  # seeded: a failing run can be replayed
        self._rules: list[Rule] = []
        self.reset_chance = 0.0
        self.truncate_chance = 0.0
        self.exchanges: list[Exchange] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.upstream_port: int | None = None
        self._live: set[_Conn] = set()
        self._closed = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, upstream_port: int) -> None:
        """Start accepting; each client connection gets its own connection upstream."""
        self.upstream_port = upstream_port
        threading.Thread(target=self._accept, daemon=True, name="faultproxy").start()

    def set_chances(self, reset: float, truncate: float) -> None:
        """Each later exchange is reset with chance `reset` (at a random one of the three
        places) or truncated with chance `truncate`."""
        with self._lock:
            self.reset_chance, self.truncate_chance = reset, truncate

    def add(self, rule: Rule) -> None:
        with self._lock:
            self._rules.append(rule)

    def injected(self) -> collections.Counter[Fault]:
        """Faults injected so far, by kind."""
        with self._lock:
            return collections.Counter(ex.fault for ex in self.exchanges if ex.fault)

    def requests(self) -> int:
        """Requests that reached the proxy so far (faulted or not)."""
        with self._lock:
            return len(self.exchanges)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() below
        self._listener.close()
        with self._lock:
            live = list(self._live)
        for conn in live:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)

    def _accept(self) -> None:
        while not self._closed:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(_Conn(sock),), daemon=True).start()

    def _serve(self, client: _Conn) -> None:
        upstream: _Conn | None = None
        with self._lock:
            self._live.add(client)
        try:
            while True:
                head = _read_head(client.rfile)
                if head is None:
                    return
                if upstream is None or upstream.idle_closed():
                    upstream = self._reconnect(upstream)
                if not self._exchange(head, client, upstream):
                    return
        except OSError:
            return  # a peer went away: so does this connection
        finally:
            with self._lock:
                self._live.discard(client)
                if upstream:
                    self._live.discard(upstream)
            for conn in (client, upstream):
                if conn:
                    conn.close()

    def _reconnect(self, old: _Conn | None) -> _Conn:
        # The server closed the idle connection (keep-alive timeout): as a client would.
        if old:
            old.close()
        conn = _Conn(socket.create_connection(("127.0.0.1", self.upstream_port)))
        with self._lock:
            self._live.discard(old)
            self._live.add(conn)
        return conn

    def _plan(self, ex: Exchange) -> _Plan:
        with self._lock:
            self.exchanges.append(ex)
            for rule in self._rules:
                if rule.matches(ex):
                    rule.times -= 1
                    if rule.times <= 0:
                        self._rules.remove(rule)
                    return _Plan(rule.fault, rule.at_bytes, 0.0, rule.hold)
            # Three draws per exchange whatever happens, so a run replays from its seed.
            roll, kind, fraction = self._rng.random(), self._rng.choice(_RESETS), self._rng.random()
        if roll < self.reset_chance:
            return _Plan(kind, None, fraction)
        if roll < self.reset_chance + self.truncate_chance:
            return _Plan(Fault.TRUNCATE, None, fraction)
        return _Plan(None, None, 0.0)

    def _exchange(self, head: _Head, client: _Conn, upstream: _Conn) -> bool:
        """Forward one request and its answer; False when the connection must end."""
        method = head.start[0]
        ex = Exchange(method, head.start[1], head.headers)
        plan = self._plan(ex)
        upstream.sock.sendall(head.raw)
        length = head.length(method)
        request_body = _body(client.rfile, length if length is not None else "chunked")
        if plan.fault is Fault.RESET_REQUEST:
            cut = min(plan.cut(length), max((length or 0) - 1, 0))  # never the whole body
            _forward(request_body, upstream.sock, cut)
            return self._fault(ex, plan, client, upstream)
        _forward(request_body, upstream.sock, None)
        answer = _read_head(upstream.rfile)
        if answer is None:
            raise ConnectionError("the server closed the connection without an answer")
        ex.status = int(answer.start[1])
        if plan.fault is Fault.RESET_RESPONSE:
            return self._fault(ex, plan, client, upstream)
        length = answer.length(method, ex.status)
        body = _body(upstream.rfile, length if length is not None else answer.framing())
        if plan.fault is None:
            client.sock.sendall(answer.raw)
            _forward(body, client.sock, None, ex)
            return not (head.closes() or answer.closes())
        if not length:
            # No body to cut (or one of unknown length): cut the status line instead. A head
            # cut after it would be taken at its status, since http.client takes the end of
            # the stream for the end of the headers.
            client.sock.sendall(answer.raw[: answer.raw.index(b" ") + 2])
        else:
            client.sock.sendall(answer.raw)
            _forward(body, client.sock, min(plan.cut(length), length - 1), ex)
        return self._fault(ex, plan, client, upstream)

    def _fault(self, ex: Exchange, plan: _Plan, client: _Conn, upstream: _Conn) -> bool:
        while plan.hold and not plan.hold(ex) and not self._closed:
            time.sleep(_HOLD_POLL_S)  # a condition on the outside world (often the clock)
        # A reset drops what is still in our send queue: let the client's kernel have every
        # byte forwarded first, so the client sees exactly the cut it was meant to see.
        deadline = time.monotonic() + _DRAIN_TIMEOUT_S
        while client.unsent_bytes() and time.monotonic() < deadline:
            time.sleep(_HOLD_POLL_S)
        with self._lock:
            ex.fault = plan.fault
        upstream.reset()
        if plan.fault is Fault.TRUNCATE:
            client.sock.shutdown(socket.SHUT_RDWR)  # FIN, after the bytes already sent
        else:
            client.reset()
        return False


def _read_head(f: BinaryIO) -> _Head | None:
    """The start line and headers of one message; None if the peer closed first."""
    raw = bytearray()
    while True:
        line = f.readline(_HEAD_LIMIT_BYTES)
        if not line:
            return None
        raw += line
        if line in (b"\r\n", b"\n") and len(raw) > len(line):
            break
        if len(raw) > _HEAD_LIMIT_BYTES:
            raise ConnectionError("message head too large")
    lines = raw.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return _Head(bytes(raw), lines[0].split(" ", 2), headers)


def _body(f: BinaryIO, framing: int | str) -> Iterator[bytes]:
    """The raw bytes of one body (chunk framing included) as they arrive."""
    if framing == "chunked":
        while True:
            line = f.readline(_HEAD_LIMIT_BYTES)
            yield line
            size = int(line.split(b";")[0], 16)
            if size == 0:
                while (trailer := f.readline(_HEAD_LIMIT_BYTES)) not in (b"\r\n", b""):
                    yield trailer
                yield trailer
                return
            yield from _body(f, size + 2)  # the data and its CRLF
    elif framing == "close":
        while piece := f.read1(_PIECE_BYTES):
            yield piece
    else:
        left = int(framing)
        while left > 0:
            piece = f.read1(min(left, _PIECE_BYTES))
            if not piece:
                raise ConnectionError("body ended early")
            left -= len(piece)
            yield piece


def _forward(
    pieces: Iterator[bytes], out: socket.socket, cut: int | None, ex: Exchange | None = None
) -> None:
    """Send the pieces to `out`, only the first `cut` bytes if given. Counted in
    `ex.body_bytes` before they go, so a client that has them finds them counted."""
    sent = 0
    for piece in pieces:
        if cut is not None and sent + len(piece) >= cut:
            piece = piece[: cut - sent]
        sent += len(piece)
        if ex:
            ex.body_bytes = sent
        out.sendall(piece)
        if sent == cut:
            return
