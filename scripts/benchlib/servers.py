"""The servers the bench measures against: our portal server (`python -m portalfs serve` in
a subprocess, optionally behind a latency proxy) and moto's S3 server, each on a loopback
port and stopped on leaving. The one place that may import from portalfs.server (it does
not today); it measures nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
from latency import LatencyProxy  # scripts/latency.py, beside bench.py

from .probe import free_port, tcp_open, wait_for

PY = sys.executable
ACCESS_LOGGER = "portalfs.server.access"  # the server's access log: one line per request


@dataclass
class Portal:
    api_url: str
    portal_id: int
    token: str
    jwt: str
    log_path: Path
    process: subprocess.Popen

    def env(self, member: bool = True) -> dict[str, str]:
        env = {
            "EI_API_URL": self.api_url,
            "EI_PORTAL_ID": str(self.portal_id),
            "EI_PORTAL_TOKEN": self.token,
        }
        if member:
            env["EI_JWT_TOKEN"] = self.jwt
        return env

    def headers(self, member: bool = False) -> dict[str, str]:
        h = {"x-token": self.token, "content-type": "application/json"}
        if member:
            h["x-jwt-token"] = self.jwt
        return h

    def requests_seen(self, method: str, path_part: str) -> int:
        """Requests in the server's access log so far, by method and path fragment."""
        n = 0
        for line in self.log_path.read_text(errors="replace").splitlines():
            if ACCESS_LOGGER in line and f" {method} " in line and path_part in line:
                n += 1
        return n

    def access_log_mark(self) -> str:
        """Sends a request the server logs (a 404 on a path of its own) and returns that
        path once it is in the log: every request answered before it is logged by then
        (the server logs each one as it finishes it, on one event loop)."""
        path = f"/bench-mark/{uuid.uuid4().hex}"
        requests.get(self.api_url.rsplit("/v1", 1)[0] + path, timeout=10)
        wait_for(lambda: path in self.log_path.read_text(errors="replace"), 10, "access log")
        return path

    def requests_between(self, start_mark: str, end_mark: str) -> list[str]:
        """The access log's "METHOD PATH" of each request between two marks."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        marks = [i for i, line in enumerate(lines) if start_mark in line or end_mark in line]
        between = lines[marks[0] + 1 : marks[-1]]
        return [_method_path(line) for line in between if ACCESS_LOGGER in line]


def _method_path(line: str) -> str:
    """ "POST /v1/api/portals/1/upload-link" from an access log line ("... INFO
    portalfs.server.access: POST /v1/api/portals/1/upload-link 200 3.8ms")."""
    _, method, path = line.split(ACCESS_LOGGER, 1)[1].split()[:3]
    return f"{method} {path}"


@contextmanager
def portal_server(
    workdir: Path, storage: str | None, env: dict[str, str], rtt_s: float = 0.0
) -> Iterator[Portal]:
    """Our server on a loopback port; with `rtt_s`, reached (API and signed links alike)
    through a proxy that adds that round-trip time, as a server across a WAN would be."""
    port = free_port()
    data = Path(tempfile.mkdtemp(dir=fast_store(workdir), prefix=f"portalfs-bench-server-{port}-"))
    log_path = workdir / f"server-{port}.log"
    cmd = [PY, "-m", "portalfs", "-v", "serve", "--data", str(data), "--port", str(port)]
    if storage:
        cmd += ["--storage", storage]
    with contextlib.ExitStack() as stack:
        if rtt_s:
            proxy_port = stack.enter_context(LatencyProxy(port, rtt_s))
            cmd += ["--public-url", f"http://127.0.0.1:{proxy_port}"]
        yield from _run_portal_server(cmd, data, log_path, env)


def fast_store(workdir: Path) -> Path:
    """Where the servers keep their objects: tmpfs if there is one (moto's too, moto_s3).
    The store is the yardstick both paths read from, not what is measured, and this VM's
    disk reads a file at 0.6 or 3.3 GB/s depending on whether its host still caches it:
    the first direct GET of a run came out 2-3x slower than the others."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() else workdir


def _run_portal_server(
    cmd: list[str], data: Path, log_path: Path, env: dict[str, str]
) -> Iterator[Portal]:
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env}
        )
    try:
        wait_for(
            lambda: (data / "bootstrap.json").exists() or proc.poll() is not None, 30, "server"
        )
        boot = json.loads((data / "bootstrap.json").read_text())
        api = boot["api_url"]
        wait_for(lambda: _answers(api), 30, "server to answer")
        r = requests.post(
            f"{api}/api-login", json={"username": boot["username"], "password": boot["password"]}
        )
        yield Portal(
            api, boot["portal_id"], boot["portal_token"], r.json()["token"], log_path, proc
        )
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(data, ignore_errors=True)


def _answers(api: str) -> bool:
    try:
        requests.get(f"{api}/api/portals/1", timeout=1)
        return True
    except requests.RequestException:
        return False


@dataclass
class Moto:
    env: dict[str, str]  # the AWS environment that reaches it
    pid: int


@contextmanager
def moto_s3(workdir: Path) -> Iterator[Moto]:
    """moto's S3 server on a loopback port with a bucket."""
    port = free_port()
    tmp = fast_store(workdir)
    env = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    proc = subprocess.Popen(
        [_moto_server(), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "TMPDIR": str(tmp)},
    )
    try:
        wait_for(lambda: tcp_open(port), 30, "moto")
        requests.put(f"http://127.0.0.1:{port}/bench")
        yield Moto(env, proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def fresh_s3_portal(workdir: Path) -> Iterator[tuple[dict[str, str], Portal]]:
    """A new moto and S3-backed portal server, for one timed 1 GiB write.

    moto's CPU for the same 1 GiB PUT from the same client alternates between ~3.6 and
    ~6.5 s with the PUTs it took before (six in a row: 3.6, 6.1, 6.9, 3.6, 3.7, 6.4 s), and
    with a shared moto the order of the measures decided who got the fast turns. A store with
    no history gives every client the same one.
    """
    with moto_s3(workdir) as moto, portal_server(workdir, "s3://bench/portal", moto.env) as p:
        yield moto.env, p


def _moto_server() -> str:
    """The venv's own moto_server (scripts/bench does not put the venv on PATH)."""
    return shutil.which("moto_server", path=str(Path(PY).parent)) or "moto_server"
