"""Row gathers of the seed-batched models and their gradients as Triton kernels (CUDA).

The seed-batched MLP's hidden layer is ``relu(Lx[a] + Ly[b])`` (``rep_theory.training.batched``:
``_PairHidden``).  In PyTorch that is two ``index_select`` passes, an add and a ReLU, each writing a
``[seed * batch, hidden]`` tensor, and a backward of a ReLU mask and two ``index_put_(accumulate=True)``
scatters (the deterministic scatter on CUDA, which sorts its indices on every call).  Here:

* the forward is one kernel that reads the two table rows of each pair and writes the hidden row once;
* each scatter is one kernel per table row that adds that row's gradient rows **sequentially in the
  order of the pairs** (a stable sort of the indices gives each table row its list), with the ReLU mask
  applied on the fly.  Sequential, fixed order: deterministic, and the same additions in the same order
  as ``index_add_`` on the CPU and as ``index_put_(accumulate=True)`` on CUDA (which also sums each
  index's rows in their stable-sorted order), so the same bits.

``gather_rows`` is the plain gather (no second table, no mask) with the same scatter, for the
Transformer's per-element tables.  Used by ``batched`` for CUDA tensors when Triton is installed and the
kernels pass a self-check on the device (:func:`gather_ready`, bit-for-bit against the PyTorch path);
``REP_THEORY_TRITON=0`` turns them off, as it does the loss kernels.

Tested on the CPU through Triton's interpreter (``TRITON_INTERPRET=1``, ``tests/test_gather_triton.py``)
against ``index_select`` / ``index_add_`` bit for bit, and on CUDA in ``tests/test_gpu.py``.
"""

from __future__ import annotations

import torch

from rep_theory.training.triton_check import on_device, self_checked

__all__ = ["HAVE_TRITON", "pair_hidden", "gather_rows", "gather_ready", "supports", "MAX_WIDTH"]

try:  # Triton ships with CUDA builds of torch; the CPU build has none
    import triton
    import triton.language as tl
    HAVE_TRITON = True
except ImportError:  # pragma: no cover - depends on the installation
    HAVE_TRITON = False

_ROWS_PER_PROGRAM = 32   # forward: pairs per program
MAX_WIDTH = 1024         # widest table row the kernels take (the scatter holds 16 rows of it in one warp)
_SOURCES_PER_LOAD = 16   # scatter: gradient rows loaded at once (then added one by one, in order)


if HAVE_TRITON:
    @triton.jit
    def _gather_kernel(x_ptr, y_ptr, ia_ptr, ib_ptr, out_ptr, n_rows, width,
                       PAIR: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_W: tl.constexpr):
        # out[r] = relu(x[ia[r]] + y[ib[r]]) if PAIR else x[ia[r]]          [n_rows, width]
        rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
        cols = tl.arange(0, BLOCK_W)
        mask = (rows < n_rows)[:, None] & (cols < width)[None, :]
        ia = tl.load(ia_ptr + rows, mask=rows < n_rows, other=0).to(tl.int64)
        h = tl.load(x_ptr + ia[:, None] * width + cols[None, :], mask=mask, other=0.0)
        if PAIR:
            ib = tl.load(ib_ptr + rows, mask=rows < n_rows, other=0).to(tl.int64)
            h = h + tl.load(y_ptr + ib[:, None] * width + cols[None, :], mask=mask, other=0.0)
            h = tl.where(h < 0, 0.0, h)  # relu_, NaN kept (as clamp_min_)
        tl.store(out_ptr + rows[:, None] * width + cols[None, :], h, mask=mask)

    @triton.jit
    def _scatter_kernel(grad_ptr, hidden_ptr, order_ptr, starts_ptr, out_ptr, width,
                        MASKED: tl.constexpr, BLOCK_J: tl.constexpr, BLOCK_W: tl.constexpr):
        # out[t] = sum over j in [starts[t], starts[t+1]) of g[order[j]], added in j's order, where
        # g = grad, masked by hidden > 0 (threshold_backward's rule) when MASKED
        t = tl.program_id(0).to(tl.int64)
        start = tl.load(starts_ptr + t)
        end = tl.load(starts_ptr + t + 1)
        cols = tl.arange(0, BLOCK_W)
        cmask = cols < width
        jj = tl.arange(0, BLOCK_J)
        acc = tl.zeros([BLOCK_W], dtype=out_ptr.dtype.element_ty)
        for j0 in range(start, end, BLOCK_J):
            offs = j0 + jj
            jmask = offs < end
            src = tl.load(order_ptr + offs, mask=jmask, other=0).to(tl.int64)
            mask = jmask[:, None] & cmask[None, :]
            g = tl.load(grad_ptr + src[:, None] * width + cols[None, :], mask=mask, other=0.0)
            if MASKED:
                h = tl.load(hidden_ptr + src[:, None] * width + cols[None, :], mask=mask, other=0.0)
                g = tl.where(h <= 0, 0.0, g)
            # one row at a time, in order (each masked sum has one term): the sequential sum of index_add_
            for k in tl.static_range(BLOCK_J):
                acc += tl.sum(tl.where(jj[:, None] == k, g, 0.0), axis=0)
        tl.store(out_ptr + t * width + cols, acc, mask=cmask)


def _block(width: int) -> int:
    return max(16, 1 << (int(width) - 1).bit_length())


def _scatter(grad: torch.Tensor, idx: torch.Tensor, n_table_rows: int, hidden: torch.Tensor | None) -> torch.Tensor:
    """``out[t] = sum_{r: idx[r] == t} g[r]`` ``[n_table_rows, width]``, rows added in the order of ``r``;
    ``g = grad`` masked by ``hidden > 0`` when ``hidden`` is given.  ``grad [n_rows, width]`` contiguous."""
    out = torch.empty((n_table_rows, grad.shape[1]), dtype=grad.dtype, device=grad.device)
    if n_table_rows == 0:
        return out
    # a stable sort lists each table row's sources in their original order; int32 keys sort faster
    keys = idx.to(torch.int32) if n_table_rows < 2 ** 31 else idx
    sorted_keys, order = torch.sort(keys, stable=True)
    starts = torch.searchsorted(sorted_keys, torch.arange(n_table_rows + 1, device=idx.device, dtype=keys.dtype))
    with on_device(grad.device):
        _scatter_kernel[(n_table_rows,)](grad, hidden if hidden is not None else grad, order, starts, out,
                                         grad.shape[1], MASKED=hidden is not None, BLOCK_J=_SOURCES_PER_LOAD,
                                         BLOCK_W=_block(grad.shape[1]), num_warps=1)
    return out


class _TritonPairHidden(torch.autograd.Function):
    @staticmethod
    def forward(ctx, flat_x: torch.Tensor, flat_y: torch.Tensor, ia: torch.Tensor, ib: torch.Tensor) -> torch.Tensor:
        flat_x, flat_y = flat_x.contiguous(), flat_y.contiguous()
        hidden = torch.empty((ia.numel(), flat_x.shape[1]), dtype=flat_x.dtype, device=flat_x.device)
        if ia.numel() and flat_x.shape[1]:
            grid = (triton.cdiv(ia.numel(), _ROWS_PER_PROGRAM),)
            with on_device(flat_x.device):
                _gather_kernel[grid](flat_x, flat_y, ia, ib, hidden, ia.numel(), flat_x.shape[1], PAIR=True,
                                     BLOCK_R=_ROWS_PER_PROGRAM, BLOCK_W=_block(flat_x.shape[1]))
        ctx.save_for_backward(hidden, ia, ib)
        ctx.table_rows = flat_x.shape[0]
        return hidden

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        hidden, ia, ib = ctx.saved_tensors
        g = grad.contiguous()
        return _scatter(g, ia, ctx.table_rows, hidden), _scatter(g, ib, ctx.table_rows, hidden), None, None


class _TritonGatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, flat_table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        flat_table = flat_table.contiguous()
        out = torch.empty((idx.numel(), flat_table.shape[1]), dtype=flat_table.dtype, device=flat_table.device)
        if idx.numel() and flat_table.shape[1]:
            grid = (triton.cdiv(idx.numel(), _ROWS_PER_PROGRAM),)
            with on_device(flat_table.device):
                _gather_kernel[grid](flat_table, flat_table, idx, idx, out, idx.numel(), flat_table.shape[1],
                                     PAIR=False, BLOCK_R=_ROWS_PER_PROGRAM, BLOCK_W=_block(flat_table.shape[1]))
        ctx.save_for_backward(idx)
        ctx.table_rows = flat_table.shape[0]
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (idx,) = ctx.saved_tensors
        return _scatter(grad.contiguous(), idx, ctx.table_rows, None), None


def supports(table: torch.Tensor) -> bool:
    """Whether the kernels take this table ``[table_rows, width]``: float32 or float64 (the scatter adds in
    the table's dtype; half precision would not match the PyTorch path's float32 accumulation) and
    ``2 <= width <= MAX_WIDTH`` (for width 1, CUDA's ``index_put_`` sums long runs of duplicates by warp
    shuffles, in another order; wider rows would spill the scatter's registers)."""
    return table.dtype in (torch.float32, torch.float64) and 2 <= table.shape[-1] <= MAX_WIDTH


def _check_inputs(tables: tuple[torch.Tensor, ...], indices: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Host-side checks (no device synchronisation, so a CUDA graph can capture the call): 2-D tables of
    one shape prefix, dtype and device, 1-D integer indices of one length on that device; returns the
    indices contiguous.  Index values are not checked (that would synchronise): they must lie in
    ``[0, table_rows)``."""
    first = tables[0]
    for t in tables:
        if t.dim() != 2 or t.shape[1] != first.shape[1] or t.dtype != first.dtype or t.device != first.device:
            raise ValueError(f"tables must be 2-D with one width, dtype and device; got "
                             f"{[(tuple(x.shape), x.dtype, str(x.device)) for x in tables]}")
    for i in indices:
        if i.dim() != 1 or i.numel() != indices[0].numel() or i.dtype.is_floating_point or i.device != first.device:
            raise ValueError(f"indices must be 1-D integer tensors of one length on {first.device}; got "
                             f"{[(tuple(x.shape), x.dtype, str(x.device)) for x in indices]}")
    return tuple(i.contiguous() for i in indices)


def pair_hidden(flat_x: torch.Tensor, flat_y: torch.Tensor, ia: torch.Tensor, ib: torch.Tensor) -> torch.Tensor:
    """``relu(flat_x[ia] + flat_y[ib])`` ``[n_rows, width]`` by the Triton kernels.

    ``flat_x, flat_y [table_rows, width]``, ``ia, ib [n_rows]`` (int64, in ``[0, table_rows)``); on a device
    Triton runs on (CUDA, or the CPU under ``TRITON_INTERPRET=1``).  Same bits as the PyTorch path
    (``batched._PairHidden``), forward and backward."""
    if not HAVE_TRITON:
        raise RuntimeError("Triton is not installed; use rep_theory.training.batched._PairHidden")
    ia, ib = _check_inputs((flat_x, flat_y), (ia, ib))
    return _TritonPairHidden.apply(flat_x, flat_y, ia, ib)


def gather_rows(flat_table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``flat_table[idx]`` ``[n_rows, width]`` for ``flat_table [table_rows, width]``, ``idx [n_rows]``, by the
    Triton kernels (same bits as ``batched._GatherRows``, forward and backward)."""
    if not HAVE_TRITON:
        raise RuntimeError("Triton is not installed; use rep_theory.training.batched._GatherRows")
    (idx,) = _check_inputs((flat_table,), (idx,))
    return _TritonGatherRows.apply(flat_table, idx)


def gather_ready(device: torch.device, reference_pair, reference_gather) -> bool:
    """Whether the kernels may be used on ``device`` (:func:`rep_theory.training.triton_check.self_checked`):
    Triton installed, not turned off by ``REP_THEORY_TRITON=0``, and a self-check passed once on the
    device: on random tables with repeated and unused rows, :func:`pair_hidden` and :func:`gather_rows`
    equal ``reference_pair(flat_x, flat_y, ia, ib)`` and ``reference_gather(flat_table, idx)`` (the PyTorch
    paths, same signatures) bit for bit, and their gradients to float32 rounding."""
    def check() -> str | None:
        gen = torch.Generator(device="cpu").manual_seed(0)
        Lx, Ly = (torch.randn(33, 40, generator=gen).to(device).requires_grad_() for _ in range(2))
        a, b = (torch.randint(0, 30, (171,), generator=gen).to(device) for _ in range(2))  # rows 30-32 unused
        w = torch.randn(171, 40, generator=gen).to(device)
        table = torch.randn(33, 10, generator=gen).to(device).requires_grad_()
        wt = torch.randn(171, 10, generator=gen).to(device)
        results = []
        for pair, gather in ((pair_hidden, gather_rows), (reference_pair, reference_gather)):
            h = pair(Lx, Ly, a, b)
            t = gather(table, a)
            grads = torch.autograd.grad((h * w).sum() + (t * wt).sum(), (Lx, Ly, table))
            results.append((h, t, *grads))
        # the gathers are copies (equal bits); the sums may be ordered otherwise by the reference's own
        # kernels, so gradients are compared to float32 rounding (tests/test_gpu.py reports the bits)
        if all(torch.equal(x, y) for x, y in zip(results[0][:2], results[1][:2])) and all(
                torch.allclose(x, y, rtol=1e-5, atol=1e-6) for x, y in zip(results[0][2:], results[1][2:])):
            return None
        return f"largest difference {max(float((x - y).abs().max()) for x, y in zip(*results)):.3g}"

    return HAVE_TRITON and self_checked("row gathers", device, check)
