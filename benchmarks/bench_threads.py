"""CPU threads under load: the demo and the smoke grid with 0, 1 and 2 busy neighbours.

Each configuration runs as a fresh ``rep-theory`` process (so torch starts with the thread count
the CLI chooses), next to N neighbour processes that spin on a core each.  Compared: the CLI's
default (``choose_threads``: free cores divided among the jobs) and a fixed ``--threads 2`` (torch's
own default on this 2-core machine, what every command used before).

    python benchmarks/bench_threads.py [--epochs 1000] [--skip-grid]
"""

from __future__ import annotations

import argparse
import multiprocessing
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _spin() -> None:
    while True:
        pass


def _timed(cmd: list[str], neighbours: int) -> float:
    procs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(neighbours)]
    for p in procs:
        p.start()
    time.sleep(2.0)  # let the load average notice them
    try:
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start
    finally:
        for p in procs:
            p.terminate()
            p.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1000, help="demo epochs (default preset otherwise)")
    parser.add_argument("--skip-grid", action="store_true")
    args = parser.parse_args()
    rt = [sys.executable, "-m", "rep_theory"]
    print(f"{'workload':<34}{'neighbours':>11}{'threads':>10}{'seconds':>10}")
    for neighbours in (0, 1, 2):
        for threads in (None, 2):
            extra = [] if threads is None else ["--threads", str(threads)]
            with tempfile.TemporaryDirectory() as tmp:
                demo = rt + ["demo", "--out", str(Path(tmp) / "demo"), "--epochs", str(args.epochs), *extra]
                seconds = _timed(demo, neighbours)
            label = "auto" if threads is None else str(threads)
            print(f"{f'demo (S4, {args.epochs} epochs)':<34}{neighbours:>11}{label:>10}{seconds:>10.1f}", flush=True)
            if args.skip_grid:
                continue
            with tempfile.TemporaryDirectory() as tmp:
                batch = Path(tmp) / "batch"
                subprocess.run(rt + ["create", str(batch), "--grid", "smoke"], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                seconds = _timed(rt + ["batch", str(batch), "--jobs", "2", "--no-figures", *extra], neighbours)
            print(f"{'smoke grid, --jobs 2':<34}{neighbours:>11}{label:>10}{seconds:>10.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
