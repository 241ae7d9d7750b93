"""Figure 5 side by side: `cp -r` of 500 files of 16 KiB into a fresh mount against two
sequential clients that md5, ask an upload link and PUT each file, in the order cp copies
them: the seed's (a new connection per request) and one on a single kept connection. Each
writes a fresh folder, in rounds that take turns going first; each round gives the mount's
files/s over each client's, and the server's requests per file (from its access log).
"""

from __future__ import annotations

import re
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from ..direct import kept_connection_upload, seed_upload
from ..files import cp_order
from ..mounts import mount
from ..probe import timed
from ..report import Bench
from ..servers import Portal

COPY_FILES = 500
COPY_FILE_BYTES = 16 * 1024
# key -> measure; the mount last, so that its rows follow those of its baselines.
CONTENDERS = {
    "seed": "seed client, sequential",
    "kept": "sequential client, one kept connection",
    "cp": "portalfs cp -r, fresh mount",
}
BASELINES = {"seed": "seed client", "kept": "kept-connection client"}

Run = Callable[[str], tuple[float, list[str]]]  # folder -> (seconds, "METHOD PATH"s)


def copy_rounds(bench: Bench, portal: Portal, tree: Path, rounds: int) -> None:
    """`rounds` rounds; in round r the contenders go in CONTENDERS's order turned by r."""
    files = cp_order(tree)
    runs: dict[str, Run] = {
        "seed": lambda folder: _requests_of(portal, lambda: _seed(portal, tree, files, folder)),
        "kept": lambda folder: _requests_of(portal, lambda: _kept(portal, tree, files, folder)),
        "cp": lambda folder: _cp(bench, portal, tree, folder),
    }
    keys, tag = list(CONTENDERS), time.time_ns()
    asked: dict[str, list[str]] = {}
    for r in range(rounds):
        seconds: dict[str, float] = {}
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            seconds[key], asked[key] = runs[key](f"copy-{key}-{tag}-{r}")
        rate = {key: len(files) / t for key, t in seconds.items()}
        _add_round(
            bench,
            f"5 cp -r, {len(files)} x {COPY_FILE_BYTES // 1024} KiB, rounds",
            rate,
            asked,
            len(files),
        )
    for key in CONTENDERS:
        kinds = _per_file_by_kind(asked[key], len(files))
        bench.notes.append(f"cp -r vs clients, last round, {key}'s requests per file: {kinds}")


def _add_round(
    bench: Bench, target: str, rate: dict[str, float], asked: dict[str, list[str]], count: int
) -> None:
    for key, measure in CONTENDERS.items():
        ratio_to = "copy-kept" if key == "cp" else None
        bench.add(f"copy-{key}", target, measure, rate[key], "files/s", ratio_to)
    for key, who in BASELINES.items():
        ratio = rate["cp"] / rate[key]  # of the same round: both saw the same machine
        bench.add(f"copy-ratio-{key}", target, f"cp -r / {who}, each round", ratio, "x")
    for key in CONTENDERS:
        per_file = len(asked[key]) / count
        bench.add(
            f"copy-requests-{key}", target, f"server requests per file, {key}", per_file, "req/file"
        )


def _seed(portal: Portal, tree: Path, files: list[Path], folder: str) -> None:
    for path in files:
        seed_upload(portal, f"{folder}/{path.relative_to(tree)}", path)


def _kept(portal: Portal, tree: Path, files: list[Path], folder: str) -> None:
    kept_connection_upload(portal, [(f"{folder}/{p.relative_to(tree)}", p) for p in files])


def _cp(bench: Bench, portal: Portal, tree: Path, folder: str) -> tuple[float, list[str]]:
    """`cp -r` into a fresh token-only mount, timed; its requests are counted from the mount
    being up to its unmount, so any the copy left for later count too."""
    with mount(portal, bench.workdir, False) as (point, _):
        start = portal.access_log_mark()
        t = timed(lambda: subprocess.run(["cp", "-r", str(tree), str(point / folder)], check=True))
    return t, portal.requests_between(start, portal.access_log_mark())


def _requests_of(portal: Portal, send: Callable[[], None]) -> tuple[float, list[str]]:
    start = portal.access_log_mark()
    t = timed(send)
    return t, portal.requests_between(start, portal.access_log_mark())


def _per_file_by_kind(asked: list[str], count: int) -> str:
    """ "POST /upload-link 1.00, PUT storage 1.00": the requests of a run by kind, per file."""
    kinds = Counter(_kind(method_path) for method_path in asked)
    return ", ".join(f"{kind} {n / count:.2f}" for kind, n in kinds.most_common()) or "none"


def _kind(method_path: str) -> str:
    method, path = method_path.split(" ", 1)
    if path.startswith("/storage/"):
        return f"{method} storage"
    api = re.fullmatch(r"/v1/api/portals/\d+(/.*)?", path)
    return f"{method} {api.group(1) or '/'}" if api else method_path
