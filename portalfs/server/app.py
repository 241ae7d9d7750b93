"""Builds the FastAPI application: state, storage, routes and middleware, wired in one
place. Knows nothing about sockets or threads (runner.py does)."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from . import errors
from .api import blobs, routes
from .auth.access import JWT_HEADER, TOKEN_HEADER, JwtIssuer
from .auth.signing import Signer
from .auth.throttle import MemoryLoginThrottle
from .config import ServerConfig
from .middleware import AccessLogMiddleware, JsonBodyLimitMiddleware, Metrics
from .state.store import State
from .storage import open_storage
from .storage.local import LocalStorage
from .storage.upload_check import start_sweeper
from .web import page


def create_app(config: ServerConfig, extra_middleware: Sequence[Middleware] = ()) -> FastAPI:
    """The server for `config`; the data folder must exist or is created, an S3 bucket
    must exist (StorageError otherwise).

    app.state carries `services` (routes.Services), `metrics` (middleware.Metrics) and
    `upload_sweeper` (storage.upload_check.Sweeper; stop it with the server).
    `extra_middleware` runs inside CORS and the access log, outside the routes: the seam
    through which tests inject faults (tests/faults.py); production passes none."""
    state = State.open(config.data_dir)
    signer = Signer(state.key_for("storage-url"), config.base_url, config.link_ttl_s)
    storage = open_storage(config, signer)
    issuer = JwtIssuer(state.key_for("jwt"), config.jwt_ttl_s)
    # redirect_slashes=False: Starlette would answer "/v1/api/portals/1/" with a bodiless 307
    # to a Location built from the Host header; a 404 in the envelope is what the API says.
    app = FastAPI(
        title="portalfs server",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,
    )
    throttle = MemoryLoginThrottle(
        config.login_failures_per_user, config.login_failures_per_address, config.login_window_s
    )
    app.state.services = routes.Services(config, state, storage, issuer, signer, throttle)
    app.state.metrics = Metrics()
    app.state.upload_sweeper = start_sweeper(storage, config.upload_sweep_s)
    errors.install(app)
    routers = [routes.router, page.router]
    if isinstance(storage, LocalStorage):
        routers.append(blobs.router)  # S3 serves its own signed URLs
    for router in routers:
        app.include_router(router)
    # The routers' own route objects, which the middleware matches to name each request.
    matched = [route for router in routers for route in router.routes]
    _add_middleware(app, config, matched, extra_middleware)
    return app


def _add_middleware(
    app: FastAPI, config: ServerConfig, routes: list[BaseRoute], extra: Sequence[Middleware]
) -> None:
    # Each add wraps the previous ones, so this reads innermost first; the access log is
    # outermost so that faults, CORS answers and 413s are logged and counted too.
    app.add_middleware(JsonBodyLimitMiddleware, max_bytes=config.max_json_bytes)
    for layer in extra:
        app.add_middleware(layer.cls, *layer.args, **layer.kwargs)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(config.cors_origins),
        allow_methods=["GET", "POST", "PUT", "OPTIONS"],
        allow_headers=[TOKEN_HEADER, JWT_HEADER, "content-type", "range"],
        expose_headers=["ETag", "Content-Range", "Content-Length", "Accept-Ranges"],
    )
    app.add_middleware(AccessLogMiddleware, routes=routes, metrics=app.state.metrics)
