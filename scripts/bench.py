"""portalfs benchmark: runs each target of the performance issue side by side with the
direct API path (and rclone / s3fs where installed) against real servers on loopback, and
prints a table of figures and ratios; `--json` writes them too.

A benchmark, not a test: it asserts nothing about timings. Run it through scripts/bench.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from latency import LatencyProxy  # scripts/latency.py, beside this file

MiB = 1024 * 1024
WAN_RTT_S = 0.02  # "over a WAN": a server 20 ms away, nearer than most are
WAN_FILES = 100
PY = sys.executable


# ----------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


def drop_caches() -> None:
    os.sync()
    # Not root: cold figures are warmer than they should be; the table's notes say so.
    with contextlib.suppress(OSError):
        Path("/proc/sys/vm/drop_caches").write_text("3\n")


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def rss_peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) process `pid` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_cpu(fn: Callable[[], object], pids: list[int]) -> tuple[float, list[float]]:
    """Seconds `fn` took, and the CPU seconds each of `pids` spent meanwhile."""
    before = [cpu_s(pid) for pid in pids]
    t = timed(fn)
    return t, [cpu_s(pid) - b for pid, b in zip(pids, before, strict=True)]


def make_file(path: Path, size: int) -> None:
    chunk = os.urandom(MiB)
    with open(path, "wb") as f:
        for _ in range(size // MiB):
            f.write(chunk)
        f.write(chunk[: size % MiB])


def md5_file(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(MiB):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- servers


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
            if "portalfs.server.access" in line and f" {method} " in line and path_part in line:
                n += 1
        return n


@contextmanager
def portal_server(
    workdir: Path, storage: str | None, env: dict[str, str], rtt_s: float = 0.0
) -> Iterator[Portal]:
    """Our server on a loopback port; with `rtt_s`, reached (API and signed links alike)
    through a proxy that adds that round-trip time, as a server across a WAN would be."""
    port = free_port()
    data = Path(tempfile.mkdtemp(dir=_fast_store(workdir), prefix=f"portalfs-bench-server-{port}-"))
    log_path = workdir / f"server-{port}.log"
    cmd = [PY, "-m", "portalfs", "-v", "serve", "--data", str(data), "--port", str(port)]
    if storage:
        cmd += ["--storage", storage]
    with contextlib.ExitStack() as stack:
        if rtt_s:
            proxy_port = stack.enter_context(LatencyProxy(port, rtt_s))
            cmd += ["--public-url", f"http://127.0.0.1:{proxy_port}"]
        yield from _run_portal_server(cmd, data, log_path, env)


def _fast_store(workdir: Path) -> Path:
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
    tmp = _fast_store(workdir)
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
        wait_for(lambda: _tcp_open(port), 30, "moto")
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


def _tcp_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


# ----------------------------------------------------------------------------- peers


PORTAL_KEY_PREFIX = "portal/portal-1"  # where the S3-backed portal keeps its objects
RCLONE_LOG = "rclone.log"  # in the work directory


def _s3_client(aws: dict[str, str]) -> Any:
    import boto3  # with the server extra, which the S3-backed portal needs anyway

    return boto3.client(
        "s3",
        endpoint_url=aws["AWS_ENDPOINT_URL"],
        aws_access_key_id=aws["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws["AWS_SECRET_ACCESS_KEY"],
        region_name=aws["AWS_DEFAULT_REGION"],
    )


def _stored_size(s3: Any, name: str) -> int | None:
    """Size of an object in the benchmark bucket, or None while it is not there. The HEAD is
    signed: moto 5 answers an unsigned HEAD of any object 403, so it never saw one arrive."""
    from botocore.exceptions import ClientError

    try:
        return s3.head_object(Bucket="bench", Key=f"{PORTAL_KEY_PREFIX}/{name}")["ContentLength"]
    except ClientError:
        return None


def _rclone_uploaded(log: Path, start: int, name: str) -> bool:
    """Whether rclone's log, from offset start, says it uploaded name; its errors raise."""
    if not log.exists():
        return False
    with open(log, errors="replace") as f:
        f.seek(start)
        for line in f:
            if f" {name}: Copied " in line:
                return True
            if "ERROR" in line and f" {name}" in line:
                raise RuntimeError(f"rclone: {line.strip()}")
    return False


def install_peers() -> None:
    """rclone and s3fs from Debian, for --peers."""
    missing = [p for p in ("rclone", "s3fs") if shutil.which(p) is None]
    if missing:
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", *missing],
            check=True,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )


@contextmanager
def peer_mount(kind: str, aws: dict[str, str], workdir: Path) -> Iterator[Path]:
    """rclone or s3fs mounting the same bucket folder the S3-backed portal writes into."""
    point = Path(tempfile.mkdtemp(dir=workdir, prefix=f"{kind}-"))
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}  # rclone rejects it
    if kind == "rclone":
        env.update(
            {
                "RCLONE_CONFIG_MOTO_TYPE": "s3",
                "RCLONE_CONFIG_MOTO_PROVIDER": "Other",
                "RCLONE_CONFIG_MOTO_ENDPOINT": aws["AWS_ENDPOINT_URL"],
                "RCLONE_CONFIG_MOTO_ACCESS_KEY_ID": aws["AWS_ACCESS_KEY_ID"],
                "RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY": aws["AWS_SECRET_ACCESS_KEY"],
                "RCLONE_CONFIG_MOTO_REGION": "us-east-1",
            }
        )
        # rclone 1.60's multipart uploads end in a HEAD ?versionId=null that moto refuses;
        # with a write cache it knows the size and sends one PUT, right after close.
        cmd = ["rclone", "mount", f"moto:bench/{PORTAL_KEY_PREFIX}", str(point)]
        cmd += ["--vfs-cache-mode", "writes", "--vfs-write-back", "0s", "--s3-no-head"]
        # A cache of its own: a new mount would send what the last one left in a shared
        # one (cp -r returns before rclone uploads) during the next timed write.
        cache = tempfile.mkdtemp(dir=workdir, prefix="rclone-cache-")
        cmd += ["--s3-upload-cutoff", "5G", "--cache-dir", cache]
        cmd += ["-v", "--log-file", str(workdir / RCLONE_LOG)]  # says when an upload is done
    else:
        passwd = workdir / "s3fs-passwd"
        passwd.write_text(f"{aws['AWS_ACCESS_KEY_ID']}:{aws['AWS_SECRET_ACCESS_KEY']}\n")
        passwd.chmod(0o600)
        cmd = [
            "s3fs",
            f"bench:/{PORTAL_KEY_PREFIX}",
            str(point),
            "-f",
            "-o",
            f"url={aws['AWS_ENDPOINT_URL']},use_path_request_style,passwd_file={passwd}",
        ]
    with _serving(cmd, env, point, kind, readahead=False):
        yield point


# ----------------------------------------------------------------------------- mounts


@contextmanager
def mount(
    portal: Portal, workdir: Path, member: bool = True, *flags: str
) -> Iterator[tuple[Path, int]]:
    point = Path(tempfile.mkdtemp(dir=workdir, prefix="mnt-"))
    cache = Path(tempfile.mkdtemp(dir=workdir, prefix="cache-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("EI_")}
    env.update(portal.env(member), HOME=str(workdir))
    cmd = [PY, "-m", "portalfs", "mount", str(point), "-f", "--cache-dir", str(cache), *flags]
    with _serving(cmd, env, point, "mount") as pid:
        yield point, pid


@contextmanager
def minimal_mount(
    portal: Portal, workdir: Path, name: str, size: int
) -> Iterator[tuple[Path, int]]:
    """scripts/minimal_mount.py serving `name` as <point>/file: the floor of any Python mount."""
    point = Path(tempfile.mkdtemp(dir=workdir, prefix="minimal-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("EI_")}
    env.update(MINIMAL_MOUNT_URL=download_url(portal, name), MINIMAL_MOUNT_SIZE=str(size))
    cmd = [PY, str(Path(__file__).with_name("minimal_mount.py")), str(point)]
    with _serving(cmd, env, point, "minimal mount") as pid:
        yield point, pid


@contextmanager
def _serving(
    cmd: list[str], env: dict[str, str], point: Path, what: str, readahead: bool = True
) -> Iterator[int]:
    """Run a FUSE daemon until its mount is up (and, with `readahead`, has raised its
    read-ahead, as portalfs does just after the mount appears); unmount it at the end."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.path.ismount(point) or proc.poll() is not None, 30, what)
        if not os.path.ismount(point):
            raise RuntimeError(f"{what} did not mount (exit status {proc.poll()})")
        if readahead:
            wait_for(lambda: _readahead_set(point), 5, "read-ahead")
        yield proc.pid
    finally:
        subprocess.run(["fusermount3", "-u", str(point)], check=False, capture_output=True)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:  # hung: leave neither it nor its mount behind
            proc.kill()
            subprocess.run(["fusermount3", "-uz", str(point)], check=False, capture_output=True)


def _readahead_set(point: Path) -> bool:
    dev = os.stat(point).st_dev
    knob = Path(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb")
    return os.geteuid() != 0 or not knob.exists() or knob.read_text().strip() != "128"


# ----------------------------------------------------------------------------- direct path


def seed_upload(portal: Portal, name: str, path: Path) -> None:
    """The seed script's upload: md5 of the file, upload link, PUT with the file object."""
    payload = {"fileName": name, "fileSize": os.path.getsize(path), "fileHash": md5_file(path)}
    r = requests.post(
        f"{portal.api_url}/api/portals/{portal.portal_id}/upload-link",
        json=payload,
        headers=portal.headers(),
    )
    with open(path, "rb") as f:
        requests.put(r.json()["url"], data=f).raise_for_status()


def delete(portal: Portal, name: str) -> None:
    """Remove a file the benchmark wrote (a member may), so the store's state stays put."""
    requests.post(
        f"{portal.api_url}/api/portals/{portal.portal_id}/files/delete",
        json={"path": name},
        headers=portal.headers(member=True),
    ).raise_for_status()


def download_url(portal: Portal, name: str) -> str:
    r = requests.post(
        f"{portal.api_url}/api/portals/{portal.portal_id}/files/download",
        json={"path": name},
        headers=portal.headers(member=True),
    )
    r.raise_for_status()
    return r.json()["url"]


def direct_get(portal: Portal, name: str) -> int:
    n = 0
    with requests.get(download_url(portal, name), stream=True) as resp:
        for chunk in resp.iter_content(MiB):
            n += len(chunk)
    return n


def direct_list_all(portal: Portal, prefix: str) -> int:
    """Every folder under prefix, all pages, as the seed's list call does it; returns files."""
    files, folders = 0, [prefix]
    session = requests.Session()
    while folders:
        current = folders.pop()
        token = None
        while True:
            body = {"prefix": current, **({"continuationToken": token} if token else {})}
            j = session.post(
                f"{portal.api_url}/api/portals/{portal.portal_id}/files",
                json=body,
                headers=portal.headers(),
            ).json()
            for f in j["files"]:
                if f["type"] == "folder":
                    folders.append(current + f["name"].rstrip("/") + "/")
                else:
                    files += 1
            token = j.get("continuationToken")
            if not token:
                break
    return files


# ----------------------------------------------------------------------------- scenarios


@dataclass
class Row:
    target: str
    measure: str
    runs: list[float] = field(default_factory=list)
    unit: str = ""
    ratio_to: str | None = None

    def stats(self) -> tuple[float, float, float]:
        return min(self.runs), statistics.median(self.runs), max(self.runs)


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.rows: dict[str, Row] = {}
        self.notes: list[str] = []
        self._write_turns: dict[str, int] = {}

    def add(
        self,
        key: str,
        target: str,
        measure: str,
        value: float,
        unit: str,
        ratio_to: str | None = None,
    ) -> None:
        row = self.rows.setdefault(key, Row(target, measure, unit=unit, ratio_to=ratio_to))
        row.runs.append(value)

    # -- 1, 2, 7: sequential read, re-read, memory
    def reads(self, portal: Portal, backend: str, big: Path, name: str, store_pid: int) -> None:
        """`store_pid`: the process that serves the bytes (our server, or moto), whose CPU
        per GiB shows what the two paths cost the store on these shared cores."""
        size = big.stat().st_size
        gib = size / 1024**3
        where, direct = f"1 read ({backend})", f"read-direct-{backend}"
        drop_caches()
        t, (store_direct,) = timed_cpu(lambda: direct_get(portal, name), [store_pid])
        self.add(direct, where, "direct streaming GET", size / t / 1e6, "MB/s")
        got: dict[str, float] = {}

        def portalfs() -> None:
            with mount(portal, self.workdir) as (point, pid):
                drop_caches()
                t, (got["store_cold"], got["daemon_cold"]) = timed_cpu(
                    lambda: _dd_read(point / name), [store_pid, pid]
                )
                got["cold"] = size / t / 1e6
                t, (got["store_warm"],) = timed_cpu(lambda: _dd_read(point / name), [store_pid])
                got["warm"] = size / t / 1e6
                got["rss"] = rss_peak_mib(pid)

        def minimal() -> None:
            with minimal_mount(portal, self.workdir, name, size) as (point, pid):
                drop_caches()
                t, (got["store_minimal"], got["daemon_minimal"]) = timed_cpu(
                    lambda: _dd_read(point / "file"), [store_pid, pid]
                )
                got["minimal"] = size / t / 1e6

        # Taking turns going first: the store's cost per GET varies with its history (moto's).
        first_turn = len(self.rows[direct].runs) % 2
        for run in (portalfs, minimal) if first_turn else (minimal, portalfs):
            run()
        self.add(
            f"read-cold-{backend}", where, "portalfs cold dd bs=1M", got["cold"], "MB/s", direct
        )
        self.add(
            f"read-minimal-{backend}",
            where,
            "minimal Python mount of the same GET, cold dd",
            got["minimal"],
            "MB/s",
            direct,
        )
        self.add(
            f"read-warm-{backend}",
            f"2 re-read ({backend})",
            "portalfs second dd",
            got["warm"],
            "MB/s",
            ratio_to=f"read-cold-{backend}",
        )
        self.add(
            f"rss-read-{backend}",
            f"7 memory ({backend})",
            "daemon peak RSS, reading",
            got["rss"],
            "MiB",
        )
        for key, measure, value in (
            ("store-direct", "store's CPU per GiB, direct GET", store_direct),
            ("store-cold", "store's CPU per GiB, portalfs cold read", got["store_cold"]),
            ("daemon-cold", "daemon's CPU per GiB, cold read", got["daemon_cold"]),
            ("store-warm", "store's CPU per GiB, re-read (0: no GET)", got["store_warm"]),
            ("store-minimal", "store's CPU per GiB, minimal mount", got["store_minimal"]),
            ("daemon-minimal", "minimal mount's CPU per GiB", got["daemon_minimal"]),
        ):
            self.add(f"cpu-{key}-{backend}", where, measure, value / gib, "s")

    # -- 1, 7: many files read at once, as a processing job's workers do
    def parallel_reads(
        self, portal: Portal, backend: str, names: list[str], file_bytes: int, store_pid: int
    ) -> None:
        """All files at once: cold `dd`s on one mount against direct GETs, one thread each.
        The store's CPU per GiB shows GETs beyond one per file (moto loads the whole object
        for each), and our server's log counts them on the local backend."""
        total = len(names) * file_bytes
        gib = total / 1024**3
        target = f"1 read, {len(names)} files at once ({backend})"

        def direct_all() -> None:
            with ThreadPoolExecutor(len(names)) as pool:
                list(pool.map(lambda name: direct_get(portal, name), names))

        drop_caches()
        t, (store_direct,) = timed_cpu(direct_all, [store_pid])
        self.add(f"par-direct-{backend}", target, "direct streaming GETs", total / t / 1e6, "MB/s")
        with mount(portal, self.workdir) as (point, pid):
            drop_caches()
            before = portal.requests_seen("GET", "/storage/")
            t, (store_mount,) = timed_cpu(lambda: _dd_all(point, names), [store_pid])
            gets = portal.requests_seen("GET", "/storage/") - before
            self.add(
                f"par-mount-{backend}",
                target,
                f"portalfs cold dd of {len(names)} x {file_bytes // MiB} MiB",
                total / t / 1e6,
                "MB/s",
                ratio_to=f"par-direct-{backend}",
            )
            self.add(
                f"rss-par-{backend}",
                f"7 memory ({backend})",
                f"daemon peak RSS, reading {len(names)} files at once",
                rss_peak_mib(pid),
                "MiB",
            )
        if backend == "local":
            self.add(f"par-gets-{backend}", target, "GETs per file", gets / len(names), "GET/file")
        for key, measure, value in (
            ("direct", "store's CPU per GiB, direct GETs", store_direct),
            ("mount", "store's CPU per GiB, portalfs", store_mount),
        ):
            self.add(f"par-cpu-{key}-{backend}", target, measure, value / gib, "s")

    # -- 3: random reads cost at most one ranged GET each
    def random_reads(self, portal: Portal, big: Path, name: str, count: int) -> None:
        size = big.stat().st_size
        rng = random.Random(7)
        with mount(portal, self.workdir) as (point, _):
            before = portal.requests_seen("GET", "/storage/")
            fd = os.open(point / name, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
            try:
                for _ in range(count):
                    length = rng.randint(4096, 65536)
                    offset = rng.randrange(0, size - length)
                    os.pread(fd, length, offset)
            finally:
                os.close(fd)
            gets = portal.requests_seen("GET", "/storage/") - before
        self.add(
            "random-gets",
            "3 random reads (local)",
            f"ranged GETs per read ({count} reads)",
            gets / count,
            "GET/read",
        )

    # -- 4, 7: write a large file until stored
    def writes(self, portal: Portal, backend: str, big: Path) -> None:
        # They take turns going first, and each object is deleted once timed; on S3 each
        # gets a fresh moto (fresh_s3_portal says why).
        turn = self._write_turns.get(backend, 0)
        self._write_turns[backend] = turn + 1
        measures = [self._write_direct, self._write_mount]
        for measure in measures if turn % 2 == 0 else measures[::-1]:
            if backend == "s3":
                with fresh_s3_portal(self.workdir) as (_, fresh):
                    measure(fresh, backend, big)
            else:
                measure(portal, backend, big)

    def _write_direct(self, portal: Portal, backend: str, big: Path) -> None:
        name = f"direct-{time.time_ns()}"
        drop_caches()
        self.add(
            f"write-direct-{backend}",
            f"4 write ({backend})",
            "direct md5+link+PUT",
            big.stat().st_size / timed(lambda: seed_upload(portal, name, big)) / 1e6,
            "MB/s",
        )
        delete(portal, name)

    def _write_mount(self, portal: Portal, backend: str, big: Path) -> None:
        name = f"w-{time.time_ns()}.bin"
        with mount(portal, self.workdir) as (point, pid):
            drop_caches()
            t = timed(lambda: subprocess.run(["cp", str(big), str(point / name)], check=True))
            self.add(
                f"write-mount-{backend}",
                f"4 write ({backend})",
                "portalfs cp until close",
                big.stat().st_size / t / 1e6,
                "MB/s",
                ratio_to=f"write-direct-{backend}",
            )
            self.add(
                f"rss-write-{backend}",
                f"7 memory ({backend})",
                "daemon peak RSS, writing",
                rss_peak_mib(pid),
                "MiB",
            )
        delete(portal, name)

    # -- 5: many small files
    def small_files(self, portal: Portal, tree: Path, count: int, wan: bool = False) -> None:
        files = sorted(p for p in tree.rglob("*") if p.is_file())
        tag = time.time_ns()
        key = "-wan" if wan else ""
        target = f"5 small files{f' ({WAN_RTT_S * 1000:.0f} ms RTT)' if wan else ''}"
        t = timed(lambda: [seed_upload(portal, f"seed-{tag}/{p.name}", p) for p in files])
        self.add(
            f"small-seed{key}",
            target,
            f"seed client, sequential ({count} x 16 KiB)",
            count / t,
            "files/s",
        )
        with mount(portal, self.workdir, False) as (point, _):
            t = timed(
                lambda: subprocess.run(
                    ["cp", "-r", str(tree), str(point / f"cp-{tag}")], check=True
                )
            )
        self.add(
            f"small-cp{key}",
            target,
            "portalfs cp -r",
            count / t,
            "files/s",
            ratio_to=f"small-seed{key}",
        )
        env = {**os.environ, **portal.env(False), "HOME": str(self.workdir)}
        t = timed(
            lambda: subprocess.run(
                [PY, "-m", "portalfs", "upload", "-q", str(tree), "--to", f"up-{tag}"],
                check=True,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        self.add(
            f"small-upload{key}",
            target,
            "portalfs upload (concurrent)",
            count / t,
            "files/s",
            ratio_to=f"small-seed{key}",
        )

    # -- 6: listings
    def listings(
        self, portal: Portal, prefix: str, files: int, wan: bool = False, many: bool = False
    ) -> None:
        """`many`: the 10,000 files in 100 folders, where fixed costs weigh less."""
        key = "-wan" if wan else "-10k" if many else ""
        target = f" ({WAN_RTT_S * 1000:.0f} ms RTT)" if wan else " (10,000 files)" if many else ""
        t_direct = timed(lambda: direct_list_all(portal, prefix + "/"))
        self.add(
            f"ls-direct{key}",
            f"6 ls -lR{target}",
            f"listing requests alone ({files} files)",
            t_direct,
            "s",
        )
        with mount(portal, self.workdir) as (point, _):
            before = portal.requests_seen("POST", "/files")
            t = timed(
                lambda: subprocess.run(
                    ["ls", "-lR", str(point / prefix)], check=True, stdout=subprocess.DEVNULL
                )
            )
            lists = portal.requests_seen("POST", "/files") - before
        self.add(
            f"ls-mount{key}",
            f"6 ls -lR{target}",
            "portalfs cold ls -lR",
            t,
            "s",
            ratio_to=f"ls-direct{key}",
        )
        self.add(
            f"ls-requests{key}",
            f"6 ls -lR{target}",
            "listing requests made by ls -lR",
            lists,
            "requests",
        )
        with mount(portal, self.workdir) as (point, _):
            t = timed(
                lambda: subprocess.run(
                    ["find", str(point / prefix)], check=True, stdout=subprocess.DEVNULL
                )
            )
        self.add(
            f"find-mount{key}",
            f"6 find{target}",
            "portalfs cold find",
            t,
            "s",
            ratio_to=f"ls-direct{key}",
        )

    # -- 1, 4, 6 against rclone and s3fs on the same bucket
    def peers(self, portal: Portal, aws: dict[str, str], big: Path, tree: Path, count: int) -> None:
        with mount(portal, self.workdir) as (point, _):
            drop_caches()
            t = timed(
                lambda: subprocess.run(
                    ["ls", "-lR", str(point / "listing")], check=True, stdout=subprocess.DEVNULL
                )
            )
        self.add("ls-s3-portalfs", "6 ls -lR (s3)", f"portalfs cold ls -lR ({count} files)", t, "s")
        for kind in ("rclone", "s3fs"):
            if shutil.which(kind) is None:
                self.notes.append(f"{kind} is not installed: run scripts/bench --peers")
                continue
            try:
                with peer_mount(kind, aws, self.workdir) as point:
                    self._peer_measures(kind, point, aws, big, tree, count)
                # The timed 1 GiB write on a fresh moto, as ours (fresh_s3_portal says why).
                with fresh_s3_portal(self.workdir) as (fresh, _):
                    _s3_client(fresh).put_object(Bucket="bench", Key=f"{PORTAL_KEY_PREFIX}/.keep")
                    with peer_mount(kind, fresh, self.workdir) as point:
                        self._peer_write(kind, point, fresh, big)
            except subprocess.CalledProcessError as exc:
                self.notes.append(f"{kind} write: {exc.cmd[0]} exited {exc.returncode}")
            except RuntimeError as exc:
                self.notes.append(f"{kind}: {exc}")

    def _peer_measures(
        self, kind: str, point: Path, aws: dict[str, str], big: Path, tree: Path, count: int
    ) -> None:
        """Each measure on its own: one that fails is noted and the others still run."""
        size = big.stat().st_size

        def read() -> None:
            drop_caches()
            self.add(
                f"read-{kind}",
                "1 read (s3)",
                f"{kind} cold dd bs=1M",
                size / timed(lambda: _dd_read(point / "big.bin")) / 1e6,
                "MB/s",
                ratio_to="read-cold-s3",
            )

        def listing() -> None:
            t = timed(
                lambda: subprocess.run(
                    ["ls", "-lR", str(point / "listing")], check=True, stdout=subprocess.DEVNULL
                )
            )
            self.add(
                f"ls-{kind}",
                "6 ls -lR (s3)",
                f"{kind} cold ls -lR",
                t,
                "s",
                ratio_to="ls-s3-portalfs",
            )

        def small() -> None:
            t = timed(
                lambda: subprocess.run(
                    ["cp", "-r", str(tree), str(point / f"cp-{time.time_ns()}")], check=True
                )
            )
            self.add(f"small-{kind}", "5 small files (s3)", f"{kind} cp -r", count / t, "files/s")

        for name, measure in (
            ("read", read),
            ("ls", listing),
            ("small files", small),
        ):
            try:
                measure()
            except subprocess.CalledProcessError as exc:
                self.notes.append(f"{kind} {name}: {exc.cmd[0]} exited {exc.returncode}")
            except RuntimeError as exc:
                self.notes.append(f"{kind} {name}: {exc}")

    def _peer_write(self, kind: str, point: Path, aws: dict[str, str], big: Path) -> None:
        size = big.stat().st_size
        name = f"w-{time.time_ns()}.bin"
        s3 = _s3_client(aws)
        log = self.workdir / RCLONE_LOG
        start = log.stat().st_size if log.exists() else 0

        def copy_until_stored() -> None:
            subprocess.run(["cp", str(big), str(point / name)], check=True)
            if kind == "rclone":
                # rclone's close() returns before its upload: wait until it logs the upload
                # done (its MD5 check against the PUT's ETag passed). Not by polling moto
                # with HEADs: moto computes a new object's ETag lazily, unlocked, from a
                # shared buffer, so a HEAD during the PUT corrupts the ETag the PUT answers
                # (objects > 16 MiB); rclone then deletes the object as corrupted.
                wait_for(lambda: _rclone_uploaded(log, start, name), 120, "rclone's upload")
            wait_for(lambda: _stored_size(s3, name) == size, 120, f"{kind}'s upload")

        t = timed(copy_until_stored)
        self.add(
            f"write-{kind}",
            "4 write (s3)",
            f"{kind} cp until stored",
            size / t / 1e6,
            "MB/s",
            ratio_to="write-mount-s3",
        )

    def report(self) -> dict:
        out = {}
        wide = max([len("target"), *(len(row.target) for row in self.rows.values())])
        lines = [
            f"{'target':<{wide}} {'measure':<44} {'min':>9} {'median':>9} {'max':>9}"
            "  unit      ratio"
        ]
        for key, row in self.rows.items():
            lo, med, hi = row.stats()
            ratio = ""
            if row.ratio_to and row.ratio_to in self.rows:
                base = statistics.median(self.rows[row.ratio_to].runs)
                # For times, smaller is better: the ratio says how many times the baseline.
                ratio = f"{med / base:6.2f}x" if base else ""
            lines.append(
                f"{row.target:<{wide}} {row.measure:<44} {lo:9.2f} {med:9.2f} {hi:9.2f}"
                f"  {row.unit:<9} {ratio}"
            )
            out[key] = {
                "target": row.target,
                "measure": row.measure,
                "unit": row.unit,
                "runs": row.runs,
                "median": med,
                "ratio_to": row.ratio_to,
            }
        print("\n".join(lines))
        for note in self.notes:
            print("note:", note)
        return out


def _dd_read(path: Path) -> None:
    _dd_all(path.parent, [path.name])


def _dd_all(point: Path, names: list[str]) -> None:
    """`dd bs=1M` of every file at once, each to /dev/null; each must read the whole file
    (a short read would pass for a fast one)."""
    sizes = [(point / name).stat().st_size for name in names]
    procs = [
        subprocess.Popen(
            ["dd", f"if={point / name}", "of=/dev/null", "bs=1M"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    reports = [proc.communicate()[1] for proc in procs]  # every one waited for
    for proc, size, report in zip(procs, sizes, reports, strict=True):
        if proc.returncode:
            raise subprocess.CalledProcessError(proc.returncode, proc.args, stderr=report)
        if f"\n{size} bytes" not in "\n" + report:
            raise RuntimeError(f"{proc.args[1]}: dd read less than {size} bytes: {report!r}")


def make_small_tree(root: Path, count: int, size: int) -> None:
    for i in range(count):
        sub = root / f"d{i % 10}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i:05d}.bin").write_bytes(os.urandom(size))


def seed_tree(portal: Portal, prefix: str, folders: int, per_folder: int, workdir: Path) -> None:
    """Many small files, uploaded with the CLI (fast, concurrent)."""
    root = workdir / f"tree-{prefix}"
    for f in range(folders):
        sub = root / prefix / f"folder{f:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        for i in range(per_folder):
            (sub / f"f{i:04d}.txt").write_bytes(b"x")
    env = {**os.environ, **portal.env(False), "HOME": str(workdir)}
    subprocess.run(
        [PY, "-m", "portalfs", "upload", "-q", "-j", "16", str(root / prefix)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# ----------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one run (< 2 min)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", default="bench-results/bench.json")
    parser.add_argument("--skip-s3", action="store_true", help="only the local backend")
    parser.add_argument(
        "--peers", action="store_true", help="install rclone and s3fs (Debian) and measure them too"
    )
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs
    big_size = (128 if args.quick else 1024) * MiB
    small_count = 200 if args.quick else 1000
    random_count = 50 if args.quick else 200
    parallel_count, parallel_size = (8, 16 * MiB) if args.quick else (16, 64 * MiB)

    workdir = Path(tempfile.mkdtemp(prefix="portalfs-bench-"))
    bench = Bench(args, workdir)
    if os.geteuid() != 0:
        bench.notes.append("not root: page caches could not be dropped, cold reads may be warm")
    try:
        big = workdir / "big.bin"
        make_file(big, big_size)
        tree = workdir / "small"
        make_small_tree(tree, small_count, 16 * 1024)
        parallel = workdir / "parallel"
        parallel.mkdir()
        for i in range(parallel_count):
            make_file(parallel / f"p{i:02}.bin", parallel_size)
        parallel_names = [f"parallel/{p.name}" for p in sorted(parallel.iterdir())]
        with portal_server(workdir, None, {}) as portal:
            seed_upload(portal, "big.bin", big)
            for name in parallel_names:
                seed_upload(portal, name, workdir / name)
            seed_tree(portal, "listing", 10, small_count // 10, workdir)
            for _ in range(runs):
                bench.reads(portal, "local", big, "big.bin", portal.process.pid)
                bench.parallel_reads(
                    portal, "local", parallel_names, parallel_size, portal.process.pid
                )
                bench.writes(portal, "local", big)
                bench.small_files(portal, tree, small_count)
                bench.listings(portal, "listing", small_count)
            bench.random_reads(portal, big, "big.bin", random_count)
            if not args.quick:
                seed_tree(portal, "many", 100, 100, workdir)
                for _ in range(runs):
                    bench.listings(portal, "many", 10_000, many=True)
        wan_tree = workdir / "small-wan"
        make_small_tree(wan_tree, WAN_FILES, 16 * 1024)
        with portal_server(workdir, None, {}, rtt_s=WAN_RTT_S) as portal:
            seed_tree(portal, "walk", 10, WAN_FILES // 10, workdir)
            for _ in range(runs):
                bench.small_files(portal, wan_tree, WAN_FILES, wan=True)
                bench.listings(portal, "walk", WAN_FILES, wan=True)
        if not args.skip_s3:
            if args.peers:
                install_peers()
            with (
                moto_s3(workdir) as moto,
                portal_server(workdir, "s3://bench/portal", moto.env) as p,
            ):
                seed_upload(p, "big.bin", big)
                for name in parallel_names:
                    seed_upload(p, name, workdir / name)
                seed_tree(p, "listing", 10, small_count // 10, workdir)
                for _ in range(runs):
                    bench.reads(p, "s3", big, "big.bin", moto.pid)
                    bench.parallel_reads(p, "s3", parallel_names, parallel_size, moto.pid)
                    bench.writes(p, "s3", big)
                    bench.peers(p, moto.env, big, tree, small_count)
        results = bench.report()
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(
            json.dumps(
                {"machine": _machine(), "runs": runs, "big_bytes": big_size, "results": results},
                indent=2,
            )
        )
        print(f"written: {args.json}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _machine() -> dict:
    return {"cpus": os.cpu_count(), "uname": " ".join(os.uname()), "python": sys.version.split()[0]}


if __name__ == "__main__":
    sys.exit(main())
