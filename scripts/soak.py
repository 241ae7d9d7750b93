"""portalfs soak run: a bounded mixed workload through a real member mount for N minutes,
with faults injected on the wire (503s by chance), printing errors, mismatches and the
daemon's RSS, threads and descriptors over time. Not part of CI; run it through scripts/soak.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from portalfs.client.portal import Credentials, PortalClient
from portalfs.client.transport import Transport
from portalfs.config import HttpConfig
from portalfs.server.config import ServerConfig
from tests.faults import Status, run_with_faults


def proc_status(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


class Workload:
    """Writers, readers and listers on one mount; counts what the application saw."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.Lock()
        self.written: dict[str, bytes] = {}
        self.busy: set[str] = set()
        self.ops = self.errors = self.mismatches = 0

    def step(self, rng: random.Random, worker: int) -> None:
        """One operation. Each worker writes its own names, and nobody reads a file while it
        is being rewritten: any mismatch is then portalfs's, not the workload's."""
        choice = rng.random()
        kind = "list"
        try:
            if choice < 0.4 or not self.written:
                kind = "write"
                name = f"d{rng.randrange(8)}/w{worker}-f{rng.randrange(50)}.bin"
                data = rng.randbytes(rng.choice([1000, 50_000, 1_000_000, 3_000_000]))
                with self.lock:
                    if name in self.busy:  # being read right now: write another time
                        return
                    self.busy.add(name)
                try:
                    (self.root / name).parent.mkdir(exist_ok=True)
                    (self.root / name).write_bytes(data)
                    with self.lock:
                        self.written[name] = data
                finally:
                    with self.lock:
                        self.busy.discard(name)
            elif choice < 0.85:
                kind = "read"
                with self.lock:
                    ready = [n for n in self.written if n not in self.busy]
                    name = rng.choice(ready) if ready else None
                    if name:
                        self.busy.add(name)
                if name:
                    try:
                        if (self.root / name).read_bytes() != self.written[name]:
                            with self.lock:
                                self.mismatches += 1
                            print(f"  mismatch: {name}", flush=True)
                    finally:
                        with self.lock:
                            self.busy.discard(name)
            else:
                sum(1 for _ in self.root.rglob("*"))
        except OSError as exc:
            with self.lock:
                self.errors += 1
            print(f"  application saw, on {kind}: {exc}", flush=True)
        with self.lock:
            self.ops += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--fault-rate", type=float, default=0.05, help="chance of a 503")
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="portalfs-soak-"))
    server = run_with_faults(ServerConfig(data_dir=work / "server", port=0))
    boot = server.bootstrap
    jwt = PortalClient(Credentials(server.api_url), Transport(HttpConfig())).login(
        boot["username"], boot["password"]
    )
    point = work / "mnt"
    point.mkdir()
    env = {
        **os.environ,
        "EI_API_URL": server.api_url,
        "EI_PORTAL_ID": str(boot["portal_id"]),
        "EI_PORTAL_TOKEN": boot["portal_token"],
        "EI_JWT_TOKEN": jwt,
        "HOME": str(work),
    }
    mount = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "portalfs",
            "-v",
            "mount",
            str(point),
            "-f",
            "--cache-dir",
            str(work / "cache"),
        ],
        env=env,
        stdout=open(work / "mount.log", "wb"),  # noqa: SIM115 - the mount's lifetime
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while not os.path.ismount(point):
        if time.monotonic() > deadline or mount.poll() is not None:
            print("the mount did not come up", file=sys.stderr)
            return 1
        time.sleep(0.05)
    server.app.state.faults.add("*", Status(503), times=10**12, probability=args.fault_rate)
    workload = Workload(point)
    stop = time.monotonic() + args.minutes * 60

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < stop:
            workload.step(rng, seed)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.threads)]
    for t in threads:
        t.start()
    started = time.monotonic()
    print(
        f"{'min':>5} {'ops':>7} {'errors':>6} {'mismatch':>8} {'rss MiB':>8} {'threads':>7} "
        f"{'fds':>4}",
        flush=True,
    )
    while any(t.is_alive() for t in threads):
        time.sleep(min(30, max(0.1, stop - time.monotonic())))
        status = proc_status(mount.pid)
        fds = len(os.listdir(f"/proc/{mount.pid}/fd"))
        rss = int(status["VmRSS"].split()[0]) / 1024
        print(
            f"{(time.monotonic() - started) / 60:5.1f} {workload.ops:7d} {workload.errors:6d} "
            f"{workload.mismatches:8d} {rss:8.1f} {status['Threads']:>7} {fds:4d}",
            flush=True,
        )
    server.app.state.faults.clear()
    peak = int(proc_status(mount.pid)["VmHWM"].split()[0]) / 1024
    subprocess.run(["fusermount3", "-u", str(point)], check=False)
    mount.wait(60)
    server.stop()
    print(
        f"done: {workload.ops} operations, {workload.errors} errors seen by the application, "
        f"{workload.mismatches} mismatches, peak RSS {peak:.1f} MiB",
        flush=True,
    )
    return 1 if workload.errors or workload.mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
