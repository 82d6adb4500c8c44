"""Training throughput: seed-batched training vs a per-seed loop written like the paper's code.

Measures seed-steps per second (one full-batch AdamW step of one seed) for the paper's S5 MLP
(n = 120, embed 256, hidden 128, frac_train 0.4), float64 cross-entropy as in training:

* ``paper loop``: one ``OneLayerMLP`` and one AdamW per seed, stepped one seed after another;
  the forward concatenates the two embeddings and multiplies by ``W`` (the paper's code);
* ``batched``: one ``BatchedOneLayerMLP`` holding every seed, stepped exactly as ``rep-theory train``
  steps it (on CUDA a CUDA graph replay; ``--no-graphs`` times the eager step).

    python benchmarks/bench_train.py                      # 8 seeds on the CPU
    python benchmarks/bench_train.py --seeds 32 --device cuda
    python benchmarks/bench_train.py --full-run 250000 --seeds 4 --device cuda   # time a whole run

``--full-run N`` trains ``--seeds`` (default 8) S5 MLP runs of N epochs in memory with
:func:`rep_theory.training.train.fit` (evaluation every ``log_every`` epochs included, no files) and prints
the wall time (on CUDA each step is a CUDA graph replay unless ``--no-graphs``).  ``--model T``
measures the transformer instead.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from bench_grid import _setup, _sync

from rep_theory.training.config import paper_defaults
from rep_theory.training.data import make_split
from rep_theory.training.models import make_model
from rep_theory.device import describe_device, resolve_device
from rep_theory.training.train import fit


def paper_loop(spec, model_name, seeds, device):
    """One training step of every seed, one seed after another, as the paper's code."""
    cfg = paper_defaults(spec, model_name)
    runs = []
    for s in seeds:
        split = make_split(spec, cfg.frac_train, s, device=device)
        m = make_model(cfg.model, split.n, seed=s).to(device)
        opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=cfg.lr, betas=cfg.betas,
                                weight_decay=cfg.weight_decay)
        runs.append((m, opt, split.a_train, split.b_train, split.y_train))

    def step():
        for m, opt, a, b, y in runs:
            logits = m(a, b)
            loss = F.cross_entropy(logits.to(torch.float64), y)
            loss.backward()
            opt.step()
            opt.zero_grad()
    return step


def batched(spec, model_name, seeds, device, graphs: bool = True):
    """One training step of the seed-batched model: the trainer's step (:mod:`rep_theory.training.step`;
    chunked float64 loss, the CPU's reused buffer, on CUDA a CUDA graph replay unless ``graphs`` is off)."""
    step, _, _ = _setup([paper_defaults(spec, model_name, seed=s) for s in seeds], device, graphs=graphs)
    return step


def _time(step, steps, device):
    """Median seconds per step: robust to the other tenants of a shared machine."""
    for _ in range(3):  # warm-up
        step()
    times = []
    for _ in range(steps):
        _sync(device)
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant and round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    parser.add_argument("--group", default="S5")
    parser.add_argument("--model", default="MLP", choices=["MLP", "T", "B"])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--no-graphs", action="store_true", help="CUDA: time eager steps instead of CUDA graph replays")
    parser.add_argument("--full-run", type=int, default=None, metavar="EPOCHS",
                        help="time a whole in-memory run of EPOCHS epochs for --seeds seeds instead")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    seeds = list(range(1, args.seeds + 1))
    name = describe_device(device)
    print(f"device: {device} ({name}); {args.group} {args.model}, {len(seeds)} seeds")

    if args.full_run:
        cfgs = [paper_defaults(args.group, args.model, seed=s, num_epochs=args.full_run) for s in seeds]
        t0 = time.perf_counter()
        models, logs = fit(cfgs, device, progress=False, cuda_graphs=not args.no_graphs)
        _sync(device)
        wall = time.perf_counter() - t0
        graphs = " (CUDA graphs)" if device.type == "cuda" and not args.no_graphs else ""
        print(f"full run{graphs}: {args.full_run} epochs x {len(seeds)} seeds in {wall:.1f} s "
              f"({args.full_run * len(seeds) / wall:.0f} seed-steps/s)")
        for s, log in zip(seeds, logs):
            last = log[-1]
            print(f"  seed {s}: train_loss {last['train_loss']:.3g} test_loss {last['test_loss']:.3g} "
                  f"test_acc {last['test_acc']:.4f}")
        return

    # Interleaved rounds: both variants see the same load on a shared machine; the speed-up is
    # the median over rounds of the per-round ratio of median step times.
    step_batched = batched(args.group, args.model, seeds, device, graphs=not args.no_graphs)
    step_loop = paper_loop(args.group, args.model, seeds, device)
    rounds = []
    for _ in range(args.rounds):
        t_b = _time(step_batched, args.steps, device)
        t_l = _time(step_loop, max(2, args.steps // 2), device)
        rounds.append((t_b, t_l))
    t_batched = statistics.median(t for t, _ in rounds)
    t_loop = statistics.median(t for _, t in rounds)
    ratio = statistics.median(t_l / t_b for t_b, t_l in rounds)
    sps_b = len(seeds) / t_batched
    sps_l = len(seeds) / t_loop
    print(f"paper loop : {t_loop * 1e3:8.1f} ms/epoch for {len(seeds)} seeds = {sps_l:8.1f} seed-steps/s")
    print(f"batched    : {t_batched * 1e3:8.1f} ms/epoch for {len(seeds)} seeds = {sps_b:8.1f} seed-steps/s")
    print(f"speed-up   : {ratio:.2f}x (median of {args.rounds} interleaved rounds: "
          f"{', '.join(f'{t_l / t_b:.2f}' for t_b, t_l in rounds)})")


if __name__ == "__main__":
    main()
