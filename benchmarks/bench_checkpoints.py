"""How much of a training run's wall time goes to writing checkpoints: synchronous vs background writer.

Trains S5 MLP runs of ``--seeds`` seeds (the paper's widths; seed-batched, as ``rep-theory train``)
for ``--epochs`` epochs into fresh run directories, in interleaved rounds, with

* ``sync``: every checkpoint written on the training thread, as before
  (``.cpu()``, a clone per seed, :func:`rep_theory.io.save_checked`: serialise, sha256, write, fsync);
* ``background``: :class:`rep_theory.training.checkpoint_writer.CheckpointWriter` (what training uses);
* ``none``: no checkpoint written (the baseline: training alone, same loop otherwise).

A short run has a checkpoint at almost every epoch (``checkpoint_epochs(200)`` is 0..200 but 199), which is the
regime of a 250k-epoch run's first 86 epochs.  The script prints, per mode, the wall time, the time
the training thread spent in the writer (writing, or waiting for the queue / a flush; on CUDA this
includes waiting for the GPU to finish the steps queued before the copy, so it is not a cost there),
its share of the wall time, the wall time per checkpoint over ``none`` (the cost), and an extrapolation to a paper run (250k epochs, 728 checkpoints,
the measured per-checkpoint blocking and per-epoch cost; resume states every 60 s not included).

    python benchmarks/bench_checkpoints.py                   # S5 MLP, 4 seeds, 200 epochs, 3 rounds
    python benchmarks/bench_checkpoints.py --device cuda --epochs 2000
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

import rep_theory.training.train as train_module
from rep_theory.device import describe_device, resolve_device
from rep_theory.io import save_checked
from rep_theory.training.checkpoint_writer import CheckpointWriter
from rep_theory.training.config import paper_defaults
from rep_theory.training.rundir import new_run
from rep_theory.training.train import checkpoint_epochs, train_runs


class _Timed:
    """Accumulates the seconds the training thread spends in the writer's methods."""

    blocked = 0.0

    def _timed(self, fn, *args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _Timed.blocked += time.perf_counter() - t


class SyncWriter(_Timed):
    """The trainer's code before the background writer, behind the writer's interface."""

    def __init__(self, *args, **kwargs):
        pass

    def write_seeds(self, stacked, targets):
        def write():
            cpu = {key: value.detach().cpu() for key, value in stacked.items()}
            for path, i in targets:
                save_checked(path, {key: value[i].clone() for key, value in cpu.items()})
        self._timed(write)

    def flush(self):
        pass

    def close(self, *, raise_error=True):
        pass


class NullWriter(SyncWriter):
    """Writes nothing: the baseline run."""

    def write_seeds(self, stacked, targets):
        pass


class TimedWriter(CheckpointWriter, _Timed):
    def write_seeds(self, stacked, targets):
        self._timed(super().write_seeds, stacked, targets)

    def flush(self):
        self._timed(super().flush)

    def close(self, *, raise_error=True):
        self._timed(super().close, raise_error=raise_error)


def _one_run(root: Path, mode: str, seeds: int, epochs: int, device) -> tuple[float, float]:
    shutil.rmtree(root, ignore_errors=True)
    runs = [new_run(root / f"S5_MLP_seed{s}", paper_defaults("S5", "MLP", seed=s, num_epochs=epochs))
            for s in range(1, seeds + 1)]
    train_module.CheckpointWriter = {"sync": SyncWriter, "background": TimedWriter, "none": NullWriter}[mode]
    _Timed.blocked = 0.0
    try:
        t = time.perf_counter()
        train_runs(runs, device, progress=False)
        if device.type == "cuda":
            torch.cuda.synchronize()
        wall = time.perf_counter() - t
    finally:
        train_module.CheckpointWriter = CheckpointWriter
    return wall, _Timed.blocked


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dir", default=None, help="where the runs are written (default: a temp dir)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench_ckpt_"))
    n_ckpt = len(checkpoint_epochs(args.epochs))
    name = describe_device(device)
    print(f"S5 MLP, {args.seeds} seeds, {args.epochs} epochs ({n_ckpt} checkpoints x {args.seeds} files), "
          f"device {device} ({name}); runs in {base}")
    results = {"none": [], "sync": [], "background": []}
    try:
        _one_run(base / "warm-up", "none", args.seeds, 2, device)  # first-run costs (imports, caches, CUDA init)
        for _ in range(args.rounds):
            for mode in results:
                results[mode].append(_one_run(base / mode, mode, args.seeds, args.epochs, device))
    finally:
        if not args.dir:
            shutil.rmtree(base, ignore_errors=True)
    paper_ckpt, paper_epochs = len(checkpoint_epochs(250_000)), 250_000
    # training alone: the rounds without checkpoints.  A mode's cost is its wall time over that,
    # round by round (the writer's own CPU time competes for the cores, so it counts too).
    pure = [w for w, _ in results.pop("none")]
    per_epoch = statistics.median(pure) / args.epochs
    print(f"training alone (no checkpoints): {statistics.median(pure):.2f} s = {per_epoch * 1e3:.2f} ms/epoch; "
          f"rounds {', '.join(f'{w:.2f}' for w in pure)}")
    for mode, rows in results.items():
        wall = statistics.median(w for w, _ in rows)
        blocked = statistics.median(b for _, b in rows)
        share = statistics.median(b / w for w, b in rows)
        cost = max(0.0, statistics.median(w - p for (w, _), p in zip(rows, pure))) / n_ckpt
        paper = paper_ckpt * cost / (paper_ckpt * cost + paper_epochs * per_epoch)
        print(f"{mode:10s}: wall {wall:7.2f} s, in the writer {blocked:6.2f} s = {share:6.1%} of the wall time; "
              f"rounds (wall/in writer) {', '.join(f'{w:.1f}/{b:.2f}' for w, b in rows)}")
        print(f"{'':10s}  wall time per checkpoint of {args.seeds} seeds over no checkpoints: {cost * 1e3:6.2f} ms; "
              f"a 250k-epoch run ({paper_ckpt} checkpoints) at this rate spends {paper_ckpt * cost:6.1f} s = "
              f"{paper:6.2%} of its wall time on them")

if __name__ == "__main__":
    main()
