"""Time a short run of every config of the paper's grid and extrapolate the whole grid's wall time.

For each batch of the ``paper`` grid (:func:`rep_theory.pipeline.grids.load_grid`; runs that differ
only in seed train together, as the pipeline runs them: 14 batches of 4 seeds), builds the trainer's
seed-batched model, AdamW and data exactly as :mod:`rep_theory.training.train` does (on CUDA the
step is a CUDA graph replay, as in training), takes one untimed warm-up step, then times steps
until ``--epochs`` steps or the config's share of ``--max-seconds`` is used (at least one).  It also
times one train+test loss evaluation (done every ``log_every`` epochs in training).

Printed per config: seconds per epoch (one step of all seeds), seed-steps/s, and the extrapolated
training time of the paper's ``num_epochs`` (steps + evaluations every ``log_every`` epochs;
checkpoint writes are in the background and not counted; ``rep-theory eval`` is not included).
The last line is the whole grid, batches one after another on this device.

    python benchmarks/bench_grid.py --device cpu --max-seconds 240     # a few minutes on 2 cores
    python benchmarks/bench_grid.py --device cuda --epochs 300
"""

from __future__ import annotations

import argparse
import time
from collections import OrderedDict

import torch

from rep_theory.algebra.groups import get_group
from rep_theory.device import describe_device, resolve_device
from rep_theory.pipeline.grids import load_grid
from rep_theory.training.batched import make_batched_model
from rep_theory.training.data import element_permutation, make_split
from rep_theory.training.step import evaluate_pairs, make_optimizer, make_train_step, stack_splits


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _setup(cfgs, device, graphs: bool):
    """The trainer's model, optimizer, data and step for one seed batch (:mod:`rep_theory.training.step`)."""
    cfg0 = cfgs[0]
    G = get_group(cfg0.spec)
    seeds = [c.seed for c in cfgs]
    model = make_batched_model(cfg0.model, G.order, seeds=seeds, embed_dim=cfg0.embed_dim,
                               hidden_dim=cfg0.model_hidden_dim,
                               element_perm=element_permutation(G, cfg0.paper_order)).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    use_graph = graphs and device.type == "cuda"
    optimizer = make_optimizer(cfg0, params, capturable=use_graph)
    data = stack_splits([make_split(G, c.frac_train, c.seed, paper_order=c.paper_order) for c in cfgs], device)
    step = make_train_step(model, optimizer, params, data, graphs=use_graph)

    def evaluate():
        evaluate_pairs(model, data["a_train"], data["b_train"], data["y_train"])
        evaluate_pairs(model, data["a_test"], data["b_test"], data["y_test"])
    return step, evaluate, data["a_train"].shape[1]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--grid", default="paper")
    parser.add_argument("--epochs", type=int, default=300, help="timed steps per config at most")
    parser.add_argument("--max-seconds", type=float, default=240.0,
                        help="time budget for all configs' timed steps together (split evenly)")
    parser.add_argument("--no-graphs", action="store_true", help="CUDA: eager steps instead of graph replays")
    parser.add_argument("--only", default=None, help="only batches whose group spec is this (e.g. S5)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    batches: OrderedDict = OrderedDict()
    for run in load_grid(args.grid):
        batches.setdefault(run.config.batch_key(), []).append(run.config)
    if args.only:
        batches = OrderedDict((k, v) for k, v in batches.items() if v[0].spec == args.only)
    per_config = args.max_seconds / max(1, len(batches))
    name = describe_device(device)
    print(f"grid {args.grid!r}: {len(batches)} seed batches, device {device} ({name}); "
          f"up to {args.epochs} timed steps or {per_config:.0f} s per config")
    header = (f"| {'group':5s} | {'model':5s} | seeds | train pairs | paper epochs | timed steps | s/epoch  "
              f"| seed-steps/s | extrapolated |")
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    total = 0.0
    for cfgs in batches.values():
        cfg0 = cfgs[0]
        step, evaluate, n_train = _setup(cfgs, device, graphs=not args.no_graphs)
        t0 = time.perf_counter()
        step()  # warm-up (allocations; on CUDA the graph is already captured)
        _sync(device)
        first = time.perf_counter() - t0
        if first > per_config / 3:  # a step this slow (S6 on a CPU): its allocations are noise, keep it
            steps, per_epoch, mark = 1, first, "*"
        else:
            t0 = time.perf_counter()
            steps, mark = 0, " "
            while steps < args.epochs:
                step()
                steps += 1
                if steps % 10 == 0 or device.type != "cuda":
                    _sync(device)
                    if time.perf_counter() - t0 > per_config:
                        break
            _sync(device)
            per_epoch = (time.perf_counter() - t0) / steps
        t1 = time.perf_counter()
        evaluate()
        _sync(device)
        per_eval = time.perf_counter() - t1
        wall = cfg0.num_epochs * per_epoch + (cfg0.num_epochs // cfg0.log_every + 1) * per_eval
        total += wall
        print(f"| {cfg0.spec:5s} | {cfg0.model_short:5s} | {len(cfgs):5d} | {n_train:11d} | {cfg0.num_epochs:12d} "
              f"| {steps:10d}{mark} | {per_epoch:8.4f} | {len(cfgs) / per_epoch:12.1f} | {wall / 3600:10.2f} h |")
        del step, evaluate
    print(f"whole grid, batches one after another: {total / 3600:.1f} h ({total / 86400:.2f} days) on this device")
    print("(* one step, the first: slower than a third of the config's budget, so no separate warm-up)")


if __name__ == "__main__":
    main()
