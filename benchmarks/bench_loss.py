"""Time the float64 cross-entropy of the training step on its own (forward and backward), per
implementation: the PyTorch reference and the Triton kernels at several warps per program.

The shape defaults to the S6 MLP step of 4 seeds: 4 x 129,600 rows (25% of 720^2 pairs, the S6 MLP's training fraction) of 720
float32 logits.  Per variant it prints the best time of the forward, of the backward and of both,
the memory traffic they imply (the forward reads the logits once, the backward reads them again and
writes the gradient: 12 bytes per logit at float32) as GB/s, and whether the loss and the gradient
are bit-for-bit those of the default launch (``losses_triton.default_warps``: one warp up to 1024
columns, what the trainer runs).

    python benchmarks/bench_loss.py --device cuda                       # S6 shape, warps 1 2 4 8 16
    TRITON_INTERPRET=1 python benchmarks/bench_loss.py --device cpu --rows 64 --repeats 1   # plumbing only

On the CPU without ``TRITON_INTERPRET=1`` only the reference runs; under the interpreter the warp
count changes nothing and the times mean nothing.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from rep_theory.device import describe_device
from rep_theory.training.losses import reference_sum_cross_entropy64

try:
    from bench_grid import _sync
except ImportError:  # run from another directory
    from benchmarks.bench_grid import _sync


def time_loss(fn, logits: torch.Tensor, labels: torch.Tensor, scale: float, repeats: int):
    """``(forward s, backward s, loss, grad)``: best of ``repeats`` of each half, on synchronised clocks."""
    device = logits.device
    best_f = best_b = float("inf")
    loss = grad = None
    for _ in range(repeats):
        x = logits.detach().requires_grad_()
        _sync(device)
        t0 = time.perf_counter()
        loss = fn(x, labels, scale)
        _sync(device)
        t1 = time.perf_counter()
        (grad,) = torch.autograd.grad(loss, x)
        _sync(device)
        t2 = time.perf_counter()
        best_f, best_b = min(best_f, t1 - t0), min(best_b, t2 - t1)
    return best_f, best_b, loss.detach(), grad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rows", type=int, default=4 * 129_600, help="rows of logits (seeds x training pairs)")
    parser.add_argument("--classes", type=int, default=720, help="logits per row (the group's order)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warps", type=int, nargs="+", default=[1, 2, 4, 8, 16],
                        help="warps per program of the Triton kernels to try")
    args = parser.parse_args()
    if args.rows < 1 or args.classes < 2:
        raise SystemExit(f"--rows must be >= 1 and --classes >= 2; got {args.rows} and {args.classes}")
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    logits = (torch.randn(args.rows, args.classes, generator=gen) * 10).to(device)
    labels = torch.randint(0, args.classes, (args.rows,), generator=gen).to(device)
    scale = 1.0 / args.rows
    gigabytes = 12 * args.rows * args.classes / 1e9
    print(f"float64 cross-entropy of {args.rows:,} rows x {args.classes} float32 logits on {describe_device(device)}; "
          f"{gigabytes:.2f} GB moved per forward + backward; best of {args.repeats}")
    variants = [("reference (PyTorch)", reference_sum_cross_entropy64, None)]
    triton_runs = device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"
    try:
        from rep_theory.training.losses_triton import HAVE_TRITON, triton_sum_cross_entropy64
    except ImportError:
        HAVE_TRITON = False
    if HAVE_TRITON and triton_runs:
        variants.append(("triton, default launch", triton_sum_cross_entropy64, "default"))
        for w in args.warps:
            variants.append((f"triton, {w} warps", lambda x, y, s, w=w: triton_sum_cross_entropy64(x, y, s, num_warps=w), w))
    else:
        print("Triton kernels skipped: " + ("Triton is not installed" if not HAVE_TRITON else
                                            "they run on CUDA, or on the CPU under TRITON_INTERPRET=1"))
    default = None
    print(f"{'variant':>24}  {'forward ms':>10}  {'backward ms':>11}  {'total ms':>8}  {'GB/s':>6}  same bits as default")
    for name, fn, tag in variants:
        f, b, loss, grad = time_loss(fn, logits, labels, scale, args.repeats)
        if tag == "default":
            default = (loss, grad)
        same = "-" if default is None or tag in (None, "default") else (
            "loss and gradient" if bool(torch.equal(loss, default[0]) and torch.equal(grad, default[1]))
            else f"no (loss differs by {float((loss - default[0]).abs()):.1e}, "
                 f"{int((grad != default[1]).sum()):,} of the gradient's {grad.numel():,} entries differ)")
        print(f"{name:>24}  {f * 1e3:>10.3f}  {b * 1e3:>11.3f}  {(f + b) * 1e3:>8.3f}  {gigabytes / (f + b):>6.0f}  {same}")


if __name__ == "__main__":
    main()
