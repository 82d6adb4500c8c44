"""``evaluate_run`` of every checkpoint of a 20k-epoch S4 MLP run: one by one vs several per pass.

Trains (once, cached in ``--run-dir``) an MLP run of ``--group`` (default S4) with the paper's
checkpoint schedule (``checkpoint_epochs(20000)``: 635 checkpoints) and the paper's widths unless
``--embed-dim`` / ``--hidden-dim`` say otherwise, on ``--device``, then times :func:`rep_theory.analysis.evaluate.evaluate_run` of
all checkpoints in interleaved rounds:

* ``one by one``: ``ckpt_batch=1``, the reference path (what ``rep-theory eval`` did before);
* ``batched``: the default (``ckpt_batch=None``: many checkpoints per pass, loads prefetched).

Each round evaluates a fresh copy of the run (no metrics.csv), so every checkpoint is computed.
The two results are checked to agree on every metric.

``--against REV`` times, instead, ``evaluate_run`` as it was at the git revision ``REV`` (checked
out in a temporary worktree) against the current code, each in a fresh Python process per round,
interleaved, on the same trained run: e.g. ``--against 8c274ae``, the evaluation when issue 15 was
filed.

    python benchmarks/bench_eval.py                       # paper widths, 3 rounds
    python benchmarks/bench_eval.py --against 8c274ae --rounds 5
    python benchmarks/bench_eval.py --hidden-dim 32 --embed-dim 64 --rounds 5
    python benchmarks/bench_eval.py --device cuda --group S6 --epochs 727 --fill --rounds 1   # 728 S6 checkpoints

A paper run of 250k epochs has 728 checkpoints (``checkpoint_epochs(250000)``); a short run has
fewer than its epochs (727 epochs: 391, since the log-spaced schedule repeats small epochs).
``--fill`` gives every epoch ``0..--epochs`` a checkpoint (the missing ones copies of the last
earlier one), so ``--epochs 727 --fill`` evaluates as many checkpoints as a paper run: the
evaluation's cost does not depend on how trained they are.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from rep_theory.analysis.evaluate import evaluate_run
from rep_theory.device import describe_device, resolve_device
from rep_theory.training.config import paper_defaults
from rep_theory.training.rundir import checkpoint_path, list_checkpoints, new_run, read_metrics_csv, run_status
from rep_theory.training.train import train_runs


def _train(run_dir: Path, group: str, epochs: int, embed_dim: int, hidden_dim: int, device) -> Path:
    cfg = paper_defaults(group, "MLP", seed=1, num_epochs=epochs, embed_dim=embed_dim, hidden_dim=hidden_dim,
                         device=device.type)
    run = new_run(run_dir, cfg)
    if run_status(run) != "finished":
        t = time.perf_counter()
        train_runs([run], device, progress=False)
        print(f"trained {run} in {time.perf_counter() - t:.0f} s")
    return run


def _fill(run: Path, epochs: int) -> int:
    """Give every epoch ``0..epochs`` of ``run`` a checkpoint, copying the last earlier one; the count added."""
    have = dict(list_checkpoints(run))
    last, added = None, 0
    for epoch in range(epochs + 1):
        if epoch in have:
            last = have[epoch]
        elif last is not None:
            shutil.copyfile(last, checkpoint_path(run, epoch))
            added += 1
    return added


def _fresh_copy(run: Path, copy: Path) -> Path:
    """``copy`` replaced by ``run`` without its evaluation, so that every checkpoint is computed."""
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("metrics.csv", "evaluation.json", "figures"))
    return copy


def _worst_difference(rows_a: list[dict], rows_b: list[dict]) -> float:
    """The largest relative difference of a finite metric both row lists hold (|x| >= 1e-15 scale)."""
    worst = 0.0
    for a, b in zip(rows_a, rows_b):
        for key, value in a.items():
            if key in b and math.isfinite(value) and value != b[key]:
                worst = max(worst, abs(b[key] - value) / max(abs(value), 1e-15))
    return worst


def _time_eval(run: Path, scratch: Path, ckpt_batch: int | None, device) -> tuple[float, list[dict]]:
    copy = _fresh_copy(run, scratch / f"copy_{ckpt_batch}")
    t = time.perf_counter()
    evaluate_run(copy, progress=False, device=device, ckpt_batch=ckpt_batch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t, read_metrics_csv(copy / "metrics.csv")


_TIME_ONE = """
import sys, time
from pathlib import Path
from rep_theory.analysis.evaluate import evaluate_run
t = time.perf_counter()
evaluate_run(Path(sys.argv[1]), progress=False, device=sys.argv[2])
print(time.perf_counter() - t)
"""


def _time_in_process(code_root: Path, run: Path, copy: Path, device) -> tuple[float, list[dict]]:
    """``evaluate_run`` of a fresh copy of ``run`` by the package under ``code_root``, in a new process."""
    _fresh_copy(run, copy)
    env = dict(os.environ, PYTHONPATH=str(code_root))
    done = subprocess.run([sys.executable, "-c", _TIME_ONE, str(copy), device.type], env=env, cwd=code_root,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"evaluate_run under {code_root} failed:\n{done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1]), read_metrics_csv(copy / "metrics.csv")


def _against(rev: str, run: Path, scratch: Path, rounds: int, device) -> None:
    """Interleaved rounds of the evaluation at git revision ``rev`` and of the current code."""
    here = Path(__file__).resolve().parents[1]
    tree = scratch / "worktree"
    subprocess.run(["git", "-C", str(here), "worktree", "add", "--detach", "-f", str(tree), rev],
                   check=True, capture_output=True)
    try:
        times = {rev: [], "now": []}
        worst = 0.0
        for _ in range(rounds):
            t_old, old = _time_in_process(tree, run, scratch / "copy_old", device)
            t_new, new = _time_in_process(here, run, scratch / "copy_new", device)
            times[rev].append(t_old)
            times["now"].append(t_new)
            worst = max(worst, _worst_difference(old, new))
        ratios = [a / b for a, b in zip(times[rev], times["now"])]
        for name, ts in times.items():
            print(f"{name:>10}: {statistics.median(ts):6.2f} s  rounds {', '.join(f'{t:.2f}' for t in ts)}")
        print(f"speed-up against {rev}: {statistics.median(ratios):.2f}x (median of per-round ratios "
              f"{', '.join(f'{r:.2f}' for r in ratios)})")
        print(f"largest relative difference over every metric both versions write: {worst:.1e}")
    finally:
        subprocess.run(["git", "-C", str(here), "worktree", "remove", "--force", str(tree)], capture_output=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", default=str(Path(tempfile.gettempdir()) / "rep_theory_bench_eval"),
                        help="where the run is trained once and kept")
    parser.add_argument("--group", default="S4")
    parser.add_argument("--device", default="cpu", help="trains and evaluates there (cpu, cuda, auto)")
    parser.add_argument("--epochs", type=int, default=20_000)
    parser.add_argument("--embed-dim", type=int, default=256)
    parser.add_argument("--hidden-dim", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--fill", action="store_true",
                        help="a checkpoint for every epoch 0..--epochs (copies of the last earlier one)")
    parser.add_argument("--against", metavar="REV", default=None,
                        help="time the evaluation at git revision REV against the current code instead "
                             "(fresh processes, interleaved rounds; torch's default threads)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    root = Path(args.run_dir)
    name = f"{args.group}_MLP_e{args.embed_dim}_h{args.hidden_dim}_{args.epochs}_{device.type}"
    run = _train(root / name / f"{args.group}_MLP_seed1", args.group, args.epochs, args.embed_dim,
                 args.hidden_dim, device)
    if args.fill:
        added = _fill(run, args.epochs)
        if added:
            print(f"--fill: {added} checkpoints added as copies")
    n_ckpt = len(list_checkpoints(run))
    where = describe_device(device)
    print(f"{args.group} MLP (embed {args.embed_dim}, hidden {args.hidden_dim}), {args.epochs} epochs, "
          f"{n_ckpt} checkpoints; {where}")
    scratch = Path(tempfile.mkdtemp(prefix="bench_eval_"))
    if args.against:
        try:
            _against(args.against, run, scratch, args.rounds, device)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return
    try:
        times = {1: [], None: []}
        worst = 0.0
        for _ in range(args.rounds):  # interleaved: both paths see the same machine load
            t_one, one = _time_eval(run, scratch, 1, device)
            t_many, many = _time_eval(run, scratch, None, device)
            times[1].append(t_one)
            times[None].append(t_many)
            worst = max(worst, _worst_difference(one, many))
        ratios = [a / b for a, b in zip(times[1], times[None])]
        med_one, med_many = statistics.median(times[1]), statistics.median(times[None])
        print(f"one by one (ckpt_batch=1): {med_one:7.2f} s  ({med_one / n_ckpt * 1e3:6.2f} ms/checkpoint)  "
              f"rounds {', '.join(f'{t:.2f}' for t in times[1])}")
        print(f"batched (default)        : {med_many:7.2f} s  ({med_many / n_ckpt * 1e3:6.2f} ms/checkpoint)  "
              f"rounds {', '.join(f'{t:.2f}' for t in times[None])}")
        print(f"speed-up: {statistics.median(ratios):.2f}x (median of per-round ratios "
              f"{', '.join(f'{r:.2f}' for r in ratios)})")
        print(f"largest relative difference over every metric of every checkpoint (|x| >= 1e-15 scale): {worst:.1e}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
