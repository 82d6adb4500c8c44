"""Wall time of a full lens leaderboard (all lenses, all default sites) on the paper's S5 MLP.

    python benchmarks/bench_lenses.py [--paper-dir DIR] [--out DIR] [--threads 2]

Imports ``reference/paper_models/S5_MLP_seed1`` into a run directory (package element
order, :func:`rep_theory.pipeline.paper_import.import_paper_run`), runs
:func:`rep_theory.lenses.run_lenses` on it, and prints the wall time (goal: under 600 s on a 2-core
CPU), each lens's fitting time and the leaderboard as a markdown table.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
PAPER_DIR = ROOT / "reference" / "paper_models" / "S5_MLP_seed1"
GOAL_S = 600.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paper-dir", type=Path, default=PAPER_DIR)
    parser.add_argument("--out", type=Path, default=None, help="run directory to write (default: a temporary one)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from rep_theory.lenses import run_lenses
    from rep_theory.lenses.runs import read_leaderboard
    from rep_theory.pipeline.paper_import import import_paper_run

    print(f"cpus: {os.cpu_count()}, torch threads: {torch.get_num_threads()}, cuda: {torch.cuda.is_available()}")
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.out or Path(tmp) / "S5_MLP_seed1"
        import_paper_run(args.paper_dir, run_dir, overwrite=True)
        start = time.perf_counter()
        path = run_lenses(run_dir, progress=False)
        seconds = time.perf_counter() - start
        rows = read_leaderboard(path)
    cols = ["lens", "site", "purity", "coverage", "alignment", "loss_recovered", "l0", "cross_irrep_edge_mass",
            "explained", "n_live", "seconds"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        cells = []
        for c in cols:
            v = r[c]
            if isinstance(v, float):
                v = "" if math.isnan(v) else (f"{v:.0f}" if c == "n_live" else f"{v:.1f}" if c in ("seconds", "l0") else f"{v:.3f}")
            cells.append(str(v))
        print("| " + " | ".join(cells) + " |")
    print(f"key irreps: {rows[0]['key_irreps']}")
    print(f"full leaderboard (all lenses, all sites, scoring and files included): {seconds:.1f} s "
          f"(goal < {GOAL_S:.0f} s): {'OK' if seconds < GOAL_S else 'TOO SLOW'}")
    return 0 if seconds < GOAL_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
