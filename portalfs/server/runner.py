"""Runs the server: `serve` in the foreground for `portalfs serve`, `run_in_thread` for
tests and benchmarks. Never prints (the CLI prints `startup_message`) and never logs a secret."""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from starlette.middleware import Middleware

try:  # httptools' C parser: about 15% less server CPU per request than pure-Python h11
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _HttpProtocol
except ImportError:  # pragma: no cover - platforms without an httptools wheel
    from uvicorn.protocols.http.h11_impl import H11Protocol as _HttpProtocol

from .app import create_app
from .config import ServerConfig
from .state import bootstrap

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 15.0


@dataclass
class ServerHandle:
    """A server running in a background thread; `stop()` (or leaving `with`) ends it."""

    config: ServerConfig  # with the port actually bound
    app: FastAPI
    bootstrap: dict | None  # DATA/bootstrap.json, see bootstrap.ensure
    _server: uvicorn.Server
    _thread: threading.Thread

    @property
    def port(self) -> int:
        return self.config.port

    @property
    def url(self) -> str:
        return self.config.base_url

    @property
    def api_url(self) -> str:
        return self.config.api_url

    def stop(self, timeout_s: float = 10.0, wait: bool = True) -> None:
        """Asks the server to finish; with `wait`, returns once it has (uvicorn takes
        0.1-0.2 s). Test fixtures pass wait=False: the daemon thread ends on its own."""
        self._server.should_exit = True
        self.app.state.upload_sweeper.stop()
        if not wait:
            return
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning("server thread did not stop within %.1fs", timeout_s)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def run_in_thread(
    config: ServerConfig, extra_middleware: Sequence[Middleware] = ()
) -> ServerHandle:
    """Bootstraps, binds `config.host:config.port` (0: any free port) and serves in a
    daemon thread; returns once the server accepts connections. `extra_middleware`: see
    app.create_app (tests inject faults through it)."""
    sock, config = _bind(config)
    boot = bootstrap.ensure(config)
    app = create_app(config, extra_middleware)
    server = uvicorn.Server(_uvicorn_config(app))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="portalfs-server", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError(f"portal server on port {config.port} did not start")
        time.sleep(0.005)  # uvicorn offers no start event to wait on
    return ServerHandle(config, app, boot, server, thread)


def serve(config: ServerConfig, on_ready: Callable[[str], None] = lambda message: None) -> None:
    """Runs the server in the foreground until interrupted (Ctrl-C / SIGTERM); calls
    `on_ready` with `startup_message` once bound, before serving."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    _hold_data_dir(config.data_dir)
    sock, config = _bind(config)
    bootstrap.ensure(config)
    app = create_app(config)
    on_ready(startup_message(config))
    uvicorn.Server(_uvicorn_config(app)).run(sockets=[sock])


class DataDirInUse(RuntimeError):
    """Another `portalfs serve` runs on this data folder."""


def _hold_data_dir(data_dir: Path) -> None:
    # One server per data folder: a second one would rewrite bootstrap.json with its own
    # address, and admin commands would then print links to the wrong server. The lock
    # lasts until this process ends.
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(data_dir / "server.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DataDirInUse(f"another portalfs server is using {data_dir}") from None


def _bind(config: ServerConfig) -> tuple[socket.socket, ServerConfig]:
    # Bound before bootstrap so links and bootstrap.json carry the real port (port 0 too).
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.create_server((config.host, config.port), family=family)
    return sock, dataclasses.replace(config, port=sock.getsockname()[1])


class _NoDelayProtocol(_HttpProtocol):  # type: ignore[misc, valid-type]
    """uvicorn's HTTP/1.1 protocol with Nagle's algorithm off on each connection, which
    the server's metrics count.

    The response's headers and body can leave in separate writes; with Nagle on, the body
    waits for the client's delayed ACK of the headers: 40 ms on every request of a
    kept-alive connection. Sockets accepted from a pre-bound socket do not get
    TCP_NODELAY by default.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        metrics = getattr(self.config.app.state, "metrics", None)
        if metrics is not None:
            metrics.connection_opened()
        super().connection_made(transport)


def _uvicorn_config(app: FastAPI) -> uvicorn.Config:
    # access_log=False is not enough: uvicorn's protocol logs a request line whenever its
    # "uvicorn.access" logger has a handler anywhere up the tree (e.g. the CLI's root
    # handler with -v), and that line carries query strings: URL signatures. Silence it.
    logging.getLogger("uvicorn.access").disabled = True
    # uvicorn's access log prints query strings, i.e. signatures: ours (middleware.py)
    # does not. log_config=None leaves logging to the embedding program.
    return uvicorn.Config(
        app,
        access_log=False,
        log_config=None,
        lifespan="off",
        timeout_graceful_shutdown=5,
        http=_NoDelayProtocol,
    )


def startup_message(config: ServerConfig) -> str:
    """What an operator needs to know about a started server; holds no secret."""
    boot_file = config.data_dir / bootstrap.BOOTSTRAP_FILE
    return "\n".join(
        [
            f"portalfs server on {config.base_url}",
            f"  API root:    {config.api_url}",
            "  Portal id:   1",
            f"  Portal link, username and password: see {boot_file} (mode 0600)",
            f"  Log in:      portalfs login --api-url {config.api_url}",
        ]
    )
