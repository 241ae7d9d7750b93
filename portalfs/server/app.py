"""Builds the FastAPI application: state, storage, routes and middleware, wired in one
place. Knows nothing about sockets or threads (runner.py does)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute

from . import api, blobs, errors, page
from .auth import JWT_HEADER, TOKEN_HEADER, JwtIssuer
from .config import ServerConfig
from .faults import FaultInjector, FaultMiddleware
from .middleware import AccessLogMiddleware, JsonBodyLimitMiddleware, Metrics
from .signing import Signer
from .state import State
from .storage import open_storage
from .storage.local import LocalStorage
from .storage.upload_check import start_sweeper


def create_app(config: ServerConfig) -> FastAPI:
    """The server for `config`; the data folder must exist or is created, an S3 bucket
    must exist (StorageError otherwise).

    app.state carries `services` (api.Services), `metrics` (middleware.Metrics),
    `faults` (faults.FaultInjector, the test-only fault injection seam) and
    `upload_sweeper` (storage.upload_check.Sweeper; stop it with the server)."""
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
    app.state.services = api.Services(config, state, storage, issuer, signer)
    app.state.metrics = Metrics()
    app.state.faults = FaultInjector()
    app.state.upload_sweeper = start_sweeper(storage, config.upload_sweep_s)
    errors.install(app)
    routers = [api.router, page.router]
    if isinstance(storage, LocalStorage):
        routers.append(blobs.router)  # S3 serves its own signed URLs
    for router in routers:
        app.include_router(router)
    # The routers' own route objects, which the middleware matches to name each request.
    routes = [route for router in routers for route in router.routes]
    _add_middleware(app, config, routes)
    return app


def _add_middleware(app: FastAPI, config: ServerConfig, routes: list[BaseRoute]) -> None:
    # Each add wraps the previous ones, so this reads innermost first; the access log is
    # outermost so that faults, CORS answers and 413s are logged and counted too.
    app.add_middleware(JsonBodyLimitMiddleware, max_bytes=config.max_json_bytes)
    app.add_middleware(FaultMiddleware, faults=app.state.faults)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(config.cors_origins),
        allow_methods=["GET", "POST", "PUT", "OPTIONS"],
        allow_headers=[TOKEN_HEADER, JWT_HEADER, "content-type", "range"],
        expose_headers=["ETag", "Content-Range", "Content-Length", "Accept-Ranges"],
    )
    app.add_middleware(AccessLogMiddleware, routes=routes, metrics=app.state.metrics)
