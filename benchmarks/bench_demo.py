"""Wall time of ``rep-theory demo`` (goal <= 300 s on a 2-core CPU) and of the smoke pipeline.

    python benchmarks/bench_demo.py [--preset default] [--smoke]

Runs the demo in a fresh temporary folder and prints its wall time (process start included, as
a user sees it), the test accuracy (goal >= 0.99) and the verdict; ``--smoke`` also times
``create_run_and_eval_batch_experiments.sh --grid smoke`` (goal < 60 s in CI on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _timed(command: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - start, proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--smoke", action="store_true", help="also time the smoke pipeline")
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "demo_out"
        seconds, proc = _timed([sys.executable, "-m", "rep_theory", "demo", "--preset", args.preset,
                                "--out", str(out)], ROOT)
        if proc.returncode != 0:
            print(proc.stdout, proc.stderr)
            return 1
        run_dir = next(p for p in out.iterdir() if p.is_dir())
        summary = json.loads((run_dir / "summary_metrics.json").read_text())
        verdict = next(line for line in proc.stdout.splitlines() if line.startswith("Verdict"))
        print(f"demo ({args.preset}, {run_dir.name}): wall {seconds:.1f} s (goal <= 300 s), "
              f"test accuracy {summary['test_acc']:.4f} (goal >= 0.99), "
              f"test loss {summary['test_loss']:.2e}")
        print(f"  {verdict[:100]}...")
        if args.smoke:
            seconds, proc = _timed(["bash", str(ROOT / "create_run_and_eval_batch_experiments.sh"),
                                    "--grid", "smoke", "--dir", str(Path(tmp) / "smoke")], ROOT)
            status = "ok" if proc.returncode == 0 else f"FAILED ({proc.returncode})"
            print(f"smoke pipeline: wall {seconds:.1f} s (goal < 60 s in CI), {status}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
