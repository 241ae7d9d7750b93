"""portalfs benchmark: runs each target of the performance issue side by side with the
direct API path (and rclone / s3fs where installed) against real servers on loopback, and
prints a table of figures and ratios; `--json` writes them too.

A benchmark, not a test: it asserts nothing about timings. Run it through scripts/bench.
The pieces are in benchlib/ beside this file: servers, mounts, peers, the direct path, the
figures and the report; this file only sizes the inputs and runs the figures in order.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchlib.direct import seed_tree, seed_upload
from benchlib.figures import WAN_FILES, WAN_RTT_S
from benchlib.figures.copy import COPY_FILE_BYTES, COPY_FILES, copy_rounds
from benchlib.figures.listing import listings
from benchlib.figures.peers import peers
from benchlib.figures.read import parallel_reads, random_reads, reads
from benchlib.figures.small import small_files
from benchlib.figures.write import writes
from benchlib.files import MiB, make_file, make_small_tree
from benchlib.peers import install_peers
from benchlib.report import Bench
from benchlib.servers import Portal, moto_s3, portal_server


@dataclass
class Inputs:
    """The files every figure reads or writes, made once in the work folder."""

    runs: int
    big: Path
    tree: Path
    small_count: int
    random_count: int
    parallel_names: list[str]
    parallel_size: int
    copy_tree: Path  # COPY_FILES files for figures/copy.py
    copy_rounds: int


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one run (< 2 min)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", default="bench-results/bench.json")
    parser.add_argument("--skip-s3", action="store_true", help="only the local backend")
    parser.add_argument(
        "--peers", action="store_true", help="install rclone and s3fs (Debian) and measure them too"
    )
    return parser.parse_args()


def make_inputs(args: argparse.Namespace, workdir: Path) -> Inputs:
    big_size = (128 if args.quick else 1024) * MiB
    small_count = 200 if args.quick else 1000
    parallel_count, parallel_size = (8, 16 * MiB) if args.quick else (16, 64 * MiB)
    big = workdir / "big.bin"
    make_file(big, big_size)
    tree = workdir / "small"
    make_small_tree(tree, small_count, 16 * 1024)
    parallel = workdir / "parallel"
    parallel.mkdir()
    for i in range(parallel_count):
        make_file(parallel / f"p{i:02}.bin", parallel_size)
    copy_tree = workdir / "copy"
    make_small_tree(copy_tree, COPY_FILES, COPY_FILE_BYTES)
    return Inputs(
        runs=1 if args.quick else args.runs,
        big=big,
        tree=tree,
        small_count=small_count,
        random_count=50 if args.quick else 200,
        parallel_names=[f"parallel/{p.name}" for p in sorted(parallel.iterdir())],
        parallel_size=parallel_size,
        copy_tree=copy_tree,
        # Each contender goes first as often as the others: a multiple of three.
        copy_rounds=3 if args.quick else 6,
    )


def seed_portal(portal: Portal, inputs: Inputs, workdir: Path) -> None:
    """The files the read and listing figures find in place."""
    seed_upload(portal, "big.bin", inputs.big)
    for name in inputs.parallel_names:
        seed_upload(portal, name, workdir / name)
    seed_tree(portal, "listing", 10, inputs.small_count // 10, workdir)


def run_local(bench: Bench, inputs: Inputs, quick: bool) -> None:
    with portal_server(bench.workdir, None, {}) as portal:
        seed_portal(portal, inputs, bench.workdir)
        pid = portal.process.pid
        for _ in range(inputs.runs):
            reads(bench, portal, "local", inputs.big, "big.bin", pid)
            parallel_reads(bench, portal, "local", inputs.parallel_names, inputs.parallel_size, pid)
            writes(bench, portal, "local", inputs.big)
            small_files(bench, portal, inputs.tree, inputs.small_count)
            listings(bench, portal, "listing", inputs.small_count)
        random_reads(bench, portal, inputs.big, "big.bin", inputs.random_count)
        copy_rounds(bench, portal, inputs.copy_tree, inputs.copy_rounds)
        if not quick:
            seed_tree(portal, "many", 100, 100, bench.workdir)
            for _ in range(inputs.runs):
                listings(bench, portal, "many", 10_000, many=True)


def run_wan(bench: Bench, inputs: Inputs) -> None:
    wan_tree = bench.workdir / "small-wan"
    make_small_tree(wan_tree, WAN_FILES, 16 * 1024)
    with portal_server(bench.workdir, None, {}, rtt_s=WAN_RTT_S) as portal:
        seed_tree(portal, "walk", 10, WAN_FILES // 10, bench.workdir)
        for _ in range(inputs.runs):
            small_files(bench, portal, wan_tree, WAN_FILES, wan=True)
            listings(bench, portal, "walk", WAN_FILES, wan=True)


def run_s3(bench: Bench, inputs: Inputs) -> None:
    with (
        moto_s3(bench.workdir) as moto,
        portal_server(bench.workdir, "s3://bench/portal", moto.env) as p,
    ):
        seed_portal(p, inputs, bench.workdir)
        for _ in range(inputs.runs):
            reads(bench, p, "s3", inputs.big, "big.bin", moto.pid)
            parallel_reads(bench, p, "s3", inputs.parallel_names, inputs.parallel_size, moto.pid)
            writes(bench, p, "s3", inputs.big)
            peers(bench, p, moto.env, inputs.big, inputs.tree, inputs.small_count)


def main() -> int:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="portalfs-bench-"))
    bench = Bench(workdir)
    if os.geteuid() != 0:
        bench.notes.append("not root: page caches could not be dropped, cold reads may be warm")
    try:
        inputs = make_inputs(args, workdir)
        run_local(bench, inputs, args.quick)
        run_wan(bench, inputs)
        if not args.skip_s3:
            if args.peers:
                install_peers()
            run_s3(bench, inputs)
        write_json(args.json, bench.report(), bench.notes, inputs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def write_json(path: str, results: dict, notes: list[str], inputs: Inputs) -> None:
    out = {
        "machine": _machine(),
        "runs": inputs.runs,
        "big_bytes": inputs.big.stat().st_size,
        "results": results,
        "notes": notes,
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(out, indent=2))
    print(f"written: {path}")


def _machine() -> dict:
    return {"cpus": os.cpu_count(), "uname": " ".join(os.uname()), "python": sys.version.split()[0]}


if __name__ == "__main__":
    sys.exit(main())
