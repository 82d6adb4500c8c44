"""The float64 cross-entropy as two Triton kernels: the float32 logits are read once per pass and
the max, the sum of exponentials and the gradient are computed in float64 registers, so no float64
``[rows, n]`` tensor is ever stored (on an S6 MLP step of 4 seeds that tensor alone is 3 GB).

Used by :func:`rep_theory.training.losses.sum_cross_entropy64` for CUDA logits when Triton is
installed and the kernels pass a self-check on the device (:func:`triton_ready`); the PyTorch path
is the reference and the fallback.  The kernels follow the reference's operations one for one
(``m = max x``, ``e = exp(x - m)``, ``s = sum e``; loss ``log s - (x_label - m)``; gradient
``e * (w / s)``, minus ``w`` at the label, then cast to the logits' dtype), so they agree with it to
float64 rounding (the sums' order differs).  ``REP_THEORY_TRITON=0`` turns them off.

Tested on the CPU through Triton's interpreter (``TRITON_INTERPRET=1``, ``tests/test_losses_triton.py``)
and, where a GPU is present, against the reference on CUDA (``tests/test_gpu.py``).
"""

from __future__ import annotations

import os

import torch

from rep_theory.training.triton_check import on_device, self_checked

__all__ = ["HAVE_TRITON", "triton_sum_cross_entropy64", "triton_ready", "default_warps"]

try:  # Triton ships with CUDA builds of torch; the CPU build has none
    import triton
    import triton.language as tl
    HAVE_TRITON = True
except ImportError:  # pragma: no cover - depends on the installation
    HAVE_TRITON = False


if HAVE_TRITON:
    @triton.jit
    def _forward_kernel(logits_ptr, labels_ptr, row_loss_ptr, row_max_ptr, row_sum_ptr, n_cols,
                        BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        cols = tl.arange(0, BLOCK)
        mask = cols < n_cols
        x = tl.load(logits_ptr + row * n_cols + cols, mask=mask, other=float("-inf")).to(tl.float64)
        m = tl.max(x, axis=0)
        e = tl.where(mask, tl.exp(x - m), 0.0)
        s = tl.sum(e, axis=0)
        label = tl.load(labels_ptr + row)
        target = tl.load(logits_ptr + row * n_cols + label).to(tl.float64) - m
        tl.store(row_loss_ptr + row, tl.log(s) - target)
        tl.store(row_max_ptr + row, m)
        tl.store(row_sum_ptr + row, s)

    @triton.jit
    def _backward_kernel(logits_ptr, labels_ptr, row_max_ptr, row_sum_ptr, weight_ptr, grad_ptr, n_cols,
                         BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        cols = tl.arange(0, BLOCK)
        mask = cols < n_cols
        x = tl.load(logits_ptr + row * n_cols + cols, mask=mask, other=0.0).to(tl.float64)
        m = tl.load(row_max_ptr + row)
        s = tl.load(row_sum_ptr + row)
        w = tl.load(weight_ptr)
        g = tl.exp(x - m) * (w / s)
        label = tl.load(labels_ptr + row)
        g = tl.where(cols == label, g + (-w), g)
        tl.store(grad_ptr + row * n_cols + cols, g.to(grad_ptr.dtype.element_ty), mask=mask)


def _block(n_cols: int) -> int:
    return max(16, 1 << (int(n_cols) - 1).bit_length())


def default_warps(n_cols: int) -> int:
    """Warps per row's program when none is asked for: one per 1024 columns (one warp up to S6's 720).

    Measured on an H200 at the S6 step's shape (``benchmarks/bench_loss.py``, 518,400 rows of 720): the
    forward took 1.15 ms with one warp against 1.45 ms with Triton's default of 4 (whose block-wide
    float64 reductions go through shared memory; one warp's are shuffles), the backward 1.22 ms either way.
    More columns keep 32 float64 values per thread at most."""
    return max(1, min(32, _block(n_cols) // 1024))


class _TritonSumCrossEntropy64(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor, labels: torch.Tensor, scale: float, launch: dict) -> torch.Tensor:
        n = logits.shape[-1]
        flat = logits.reshape(-1, n).contiguous()
        lab = labels.reshape(-1).contiguous()
        rows = flat.shape[0]
        row_loss = torch.empty(rows, dtype=torch.float64, device=logits.device)
        row_max = torch.empty_like(row_loss)
        row_sum = torch.empty_like(row_loss)
        if rows:
            with on_device(flat.device):
                _forward_kernel[(rows,)](flat, lab, row_loss, row_max, row_sum, n, BLOCK=_block(n), **launch)
        ctx.save_for_backward(flat, lab, row_max, row_sum)
        ctx.scale = scale
        ctx.shape = logits.shape
        ctx.launch = launch
        return row_loss.sum() * scale

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        flat, lab, row_max, row_sum = ctx.saved_tensors
        weight = (grad_output.to(torch.float64) * ctx.scale).reshape(1).contiguous()   # stays on the device
        grad = torch.empty_like(flat)
        if flat.shape[0]:
            with on_device(flat.device):
                _backward_kernel[(flat.shape[0],)](flat, lab, row_max, row_sum, weight, grad, flat.shape[1],
                                                   BLOCK=_block(flat.shape[1]), **ctx.launch)
        return grad.reshape(ctx.shape), None, None, None


def triton_sum_cross_entropy64(logits: torch.Tensor, labels: torch.Tensor, scale: float = 1.0, *,
                               num_warps: int | None = None) -> torch.Tensor:
    """``scale * sum`` of the float64 cross-entropy over all rows, by the Triton kernels.

    ``logits [..., n]`` (float32 or float64, contiguous rows), ``labels [...]`` (int64), on a device
    Triton runs on (CUDA, or the CPU under ``TRITON_INTERPRET=1``).  ``num_warps``: warps per row's
    program (a power of two, 1 to 32); None takes ``REP_THEORY_TRITON_WARPS`` when set (so a whole
    training run, self-check included, can try a count), else :func:`default_warps`.  A
    different count may change the order of each row's sums, so bit-for-bit equality with the default
    is not promised (``benchmarks/bench_loss.py`` measures both speed and equality).
    """
    if not HAVE_TRITON:
        raise RuntimeError("Triton is not installed; use rep_theory.training.losses.sum_cross_entropy64")
    launch = {}
    if num_warps is None and os.environ.get("REP_THEORY_TRITON_WARPS"):
        raw = os.environ["REP_THEORY_TRITON_WARPS"]
        try:
            num_warps = int(raw)
        except ValueError:
            raise ValueError(f"REP_THEORY_TRITON_WARPS must be a power of two from 1 to 32, got {raw!r}") from None
    if num_warps is not None:
        if num_warps not in (1, 2, 4, 8, 16, 32):
            raise ValueError(f"num_warps must be a power of two from 1 to 32, got {num_warps!r}")
        launch["num_warps"] = int(num_warps)
    else:
        launch["num_warps"] = default_warps(logits.shape[-1])
    return _TritonSumCrossEntropy64.apply(logits, labels, scale, launch)


def triton_ready(device: torch.device, reference) -> bool:
    """Whether the kernels may be used on ``device`` (:func:`rep_theory.training.triton_check.self_checked`):
    Triton installed, not turned off by ``REP_THEORY_TRITON=0``, and a self-check against ``reference``
    (the PyTorch path, ``reference(logits, labels, scale)``) passed once on the device: loss to 1e-12
    relative, gradient to 1e-6."""
    def check() -> str | None:
        gen = torch.Generator(device="cpu").manual_seed(0)
        logits = (torch.randn(3, 37, 120, generator=gen) * 30).to(device).requires_grad_()
        labels = torch.randint(0, 120, (3, 37), generator=gen).to(device)
        got = triton_sum_cross_entropy64(logits, labels, 0.25)
        (g_got,) = torch.autograd.grad(got, logits)
        ref = reference(logits, labels, 0.25)
        (g_ref,) = torch.autograd.grad(ref, logits)
        if bool(torch.isclose(got, ref, rtol=1e-12, atol=0.0)) and bool(torch.allclose(g_got, g_ref, rtol=1e-6,
                                                                                         atol=1e-9)):
            return None
        return f"loss {float(got)!r} vs {float(ref)!r}"

    return HAVE_TRITON and self_checked("float64 cross-entropy", device, check)
