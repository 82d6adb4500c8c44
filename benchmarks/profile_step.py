"""Where one seed-batched training step's time goes, and how the chunk size and split-K change it.

Builds the trainer's step for one config (as :mod:`bench_grid` does: seed-batched model, AdamW,
data, the chunked float64 loss), then

* times ``--steps`` steps for each logit budget of ``--budgets`` (logits per forward chunk; the
  trainer's is ``rep_theory.training.step.logit_budget(device)``) and each ``--split-rows``
  (rows per partial product of a weight gradient, 0 = one product; the trainer's is
  ``rep_theory.training.batched._SPLIT_ROWS`` on CUDA), as graph replays on CUDA;
* with ``--compare-gathers``, times the trainer's settings once more with the row gathers of the PyTorch
  path instead of the Triton kernels (``rep_theory.training.gather_triton``);
* profiles ``--profile-steps`` eager steps with :mod:`torch.profiler` at the trainer's settings and
  prints the ``--top`` operators by device time (CPU time on the CPU).

    python benchmarks/profile_step.py --device cuda --group S6 --seeds 4
    python benchmarks/profile_step.py --device cpu --group S4 --seeds 4 --steps 5
"""

from __future__ import annotations

import argparse
import time

import torch
from bench_grid import _setup, _sync

import rep_theory.training.batched as batched_module
import rep_theory.training.step as step_module
from rep_theory.device import describe_device, resolve_device
from rep_theory.training.config import paper_defaults


def _time_steps(cfgs, device, steps: int, graphs: bool) -> float:
    step, _, _ = _setup(cfgs, device, graphs=graphs)
    step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return (time.perf_counter() - t0) / steps


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--group", default="S6")
    parser.add_argument("--model", default="MLP", choices=["MLP", "T"])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per budget")
    parser.add_argument("--budgets", type=int, nargs="*", default=None,
                        help="logits per forward chunk to time (default: 2^26 and the trainer's for the device)")
    parser.add_argument("--split-rows", type=int, nargs="*", default=None,
                        help="rows per weight-gradient block to time (default: 0 and the trainer's)")
    parser.add_argument("--compare-gathers", action="store_true",
                        help="also time the trainer's settings with the PyTorch path's row gathers")
    parser.add_argument("--profile-steps", type=int, default=3)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    cfgs = [paper_defaults(args.group, args.model, seed=s) for s in range(1, args.seeds + 1)]
    default_budget = step_module.logit_budget(device)
    default_split = batched_module._SPLIT_ROWS if device.type in batched_module._SPLIT_DEVICES else 0
    budgets = args.budgets or sorted({step_module.CPU_LOGIT_BUDGET, default_budget})
    splits = args.split_rows if args.split_rows is not None else sorted({0, default_split})
    name = describe_device(device)
    print(f"{args.group} {args.model}, {args.seeds} seeds, device {device} ({name})")
    budget_of, split_rows_of, split_devices_of = (step_module.logit_budget, batched_module._SPLIT_ROWS,
                                                  batched_module._SPLIT_DEVICES)
    try:
        for budget in budgets:
            for split_rows in splits:
                step_module.logit_budget = lambda _device, budget=budget: budget
                batched_module._SPLIT_ROWS, batched_module._SPLIT_DEVICES = split_rows, (device.type,)
                per = _time_steps(cfgs, device, args.steps, graphs=True)
                mark = " (trainer's)" if (budget, split_rows) == (default_budget, default_split) else ""
                print(f"logit budget {budget:>13,d}, split rows {split_rows:5d}: {per * 1e3:8.2f} ms/step = "
                      f"{args.seeds / per:9.1f} seed-steps/s{mark}", flush=True)
    finally:
        step_module.logit_budget = budget_of
        batched_module._SPLIT_ROWS, batched_module._SPLIT_DEVICES = split_rows_of, split_devices_of
    from rep_theory.training.losses import reference_sum_cross_entropy64
    from rep_theory.training.losses_triton import triton_ready

    gathers = batched_module._triton_gathers(device, torch.empty(0, 128, device=device))  # the MLP's tables
    loss_kernels = device.type == "cuda" and triton_ready(device, reference_sum_cross_entropy64)
    print(f"Triton kernels: float64 loss {'on' if loss_kernels else 'off'}, "
          f"row gathers {'on' if gathers else 'off'}")
    if args.compare_gathers:
        triton_gathers = batched_module._triton_gathers
        try:
            batched_module._triton_gathers = lambda _device, _table: False
            per = _time_steps(cfgs, device, args.steps, graphs=True)
            print(f"trainer's settings, PyTorch row gathers: {per * 1e3:8.2f} ms/step = {args.seeds / per:9.1f} "
                  f"seed-steps/s", flush=True)
        finally:
            batched_module._triton_gathers = triton_gathers
    step, _, _ = _setup(cfgs, device, graphs=False)
    step()
    _sync(device)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(args.profile_steps):
            step()
        _sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"\nprofile of {args.profile_steps} eager steps at the trainer's settings, top {args.top} by {key}:")
    print(prof.key_averages().table(sort_by=key, row_limit=args.top, max_name_column_width=60))


if __name__ == "__main__":
    main()
