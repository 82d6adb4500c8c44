"""Time the seed-batched MLP's hidden layer on its own, ``relu(Lx[a] + Ly[b])`` forward and backward:
the PyTorch path (``batched._PairHidden``: two ``index_select``, add, ReLU; ``threshold_backward`` and
two ``index_put_(accumulate=True)`` on CUDA, ``index_add_`` on the CPU) against the Triton kernels of
``rep_theory.training.gather_triton`` at several block sizes.

The shape defaults to the S6 MLP step of 4 seeds: tables of 4 x 720 rows of 128 neurons, 4 x 129,600
pairs.  Per variant it prints the best forward, backward and total milliseconds and whether the hidden
layer and both gradients have the PyTorch path's bits.

    python benchmarks/bench_gather.py --device cuda
    TRITON_INTERPRET=1 python benchmarks/bench_gather.py --device cpu --table-rows 60 --pairs 300 --repeats 1   # plumbing only
"""

from __future__ import annotations

import argparse
import os

import torch

from rep_theory.device import describe_device
from rep_theory.training import batched

try:
    from bench_loss import time_loss
except ImportError:  # run from another directory
    from benchmarks.bench_loss import time_loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--table-rows", type=int, default=4 * 720, help="rows of each table (seeds x elements)")
    parser.add_argument("--width", type=int, default=128, help="neurons")
    parser.add_argument("--pairs", type=int, default=4 * 129_600, help="pairs (seeds x training pairs)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--sources-per-load", type=int, nargs="+", default=[8, 16, 32],
                        help="gradient rows each scatter program loads at once")
    parser.add_argument("--rows-per-program", type=int, nargs="+", default=[32, 64],
                        help="pairs per program of the forward kernel")
    args = parser.parse_args()
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    fx, fy = (torch.randn(args.table_rows, args.width, generator=gen).to(device) for _ in range(2))
    ia, ib = (torch.randint(0, args.table_rows, (args.pairs,), generator=gen).to(device) for _ in range(2))
    w = torch.randn(args.pairs, args.width, generator=gen).to(device)

    def layer(fn):  # time_loss's calling convention: fn(x, labels, scale) -> differentiable output
        def run(x, _labels, _scale):
            return (fn(x, fy, ia, ib) * w).sum()
        return run

    print(f"relu(Lx[a] + Ly[b]): {args.pairs:,} pairs x {args.width} neurons from {args.table_rows:,} table rows "
          f"on {describe_device(device)}; best of {args.repeats}")
    print(f"{'variant':>34}  forward ms  backward ms  total ms  same bits as PyTorch (h, dLx)")
    f, b, loss_ref, g_ref = time_loss(layer(batched._PairHidden.apply), fx, None, 1.0, args.repeats)
    print(f"{'PyTorch path':>34}  {f * 1e3:10.3f}  {b * 1e3:11.3f}  {(f + b) * 1e3:8.3f}  -")
    triton_runs = device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"
    if not triton_runs:
        print("(the Triton kernels need CUDA, or TRITON_INTERPRET=1 on the CPU)")
        return
    from rep_theory.training import gather_triton

    h_ref = batched._PairHidden.apply(fx, fy, ia, ib)
    defaults = gather_triton._SOURCES_PER_LOAD, gather_triton._ROWS_PER_PROGRAM
    try:
        for rows in args.rows_per_program:
            for sources in args.sources_per_load:
                gather_triton._ROWS_PER_PROGRAM, gather_triton._SOURCES_PER_LOAD = rows, sources
                f, b, loss, g = time_loss(layer(gather_triton.pair_hidden), fx, None, 1.0, args.repeats)
                h = gather_triton.pair_hidden(fx, fy, ia, ib)
                same = f"{'yes' if torch.equal(h, h_ref) else 'no'}, " + (
                    "yes" if torch.equal(g, g_ref) else
                    f"no (max |diff| {float((g - g_ref).abs().max()):.2e} of {float(g_ref.abs().max()):.2e})")
                mark = " (default)" if (sources, rows) == defaults else ""
                name = f"triton, {rows} pairs/program, {sources} rows/load{mark}"
                print(f"{name:>34}  {f * 1e3:10.3f}  {b * 1e3:11.3f}  {(f + b) * 1e3:8.3f}  {same}")
    finally:
        gather_triton._SOURCES_PER_LOAD, gather_triton._ROWS_PER_PROGRAM = defaults


if __name__ == "__main__":
    main()
