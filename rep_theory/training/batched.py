"""The seed-batched training forms of the paper's architectures.

Seed-batched forms (``BatchedOneLayerMLP`` ...) stack each parameter over a leading ``seed`` axis;
seed ``i`` is initialised exactly as the single model with ``seeds[i]``.  Their forward passes
use exact reparametrisations for speed (same function and gradients up to float rounding): the
MLP gathers rows of ``W_x @ W[:embed]`` instead of multiplying the concatenated embeddings, and
the Transformer evaluates only the last position, from per-element key, value and score tables.

Parameter names, shapes (with the leading ``seed`` axis) and initialisation follow
:mod:`rep_theory.training.models`; :meth:`BatchedModel.single_state_dict` gives one seed's weights in
the single-seed model's layout.
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rep_theory.training.models import (_DEFAULT_CHUNK_ELEMENTS, IGNORED_PAPER_KEYS, BilinearNet, GroupModel,
                                        OneLayerMLP, Transformer, WuMLP, width_args)

__all__ = ["BatchedModel", "BatchedOneLayerMLP", "BatchedTransformer", "BatchedBilinearNet", "BatchedWuMLP",
           "make_batched_model", "BATCHED_MODELS"]


# =================================================================================================
# Seed-batched models
# =================================================================================================
def _flat_index(idx: torch.Tensor, rows: int) -> torch.Tensor:
    """``[seed, batch]`` row indices into a ``[seed, rows, ...]`` tensor -> flat ``[seed*batch]`` indices."""
    offsets = torch.arange(idx.shape[0], device=idx.device)[:, None] * rows
    return (idx + offsets).reshape(-1)


class _GatherRows(torch.autograd.Function):
    """``flat_table[flat_idx]`` with a backward chosen per device, both deterministic.

    On CUDA the gradient is accumulated with ``index_put_(accumulate=True)`` (what advanced indexing
    uses): ``index_add_`` there relies on atomic adds, whose varying summation order late in
    training (losses ~1e-6) AdamW amplifies into different runs.  On the CPU ``index_add_`` is
    sequential, hence deterministic, and several times faster than ``index_put_``.
    """

    @staticmethod
    def forward(ctx, flat_table: torch.Tensor, flat_idx: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(flat_idx)
        ctx.rows = flat_table.shape[0]
        return flat_table.index_select(0, flat_idx)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (flat_idx,) = ctx.saved_tensors
        out = grad.new_zeros((ctx.rows, *grad.shape[1:]))
        if grad.is_cuda:
            out.index_put_((flat_idx,), grad, accumulate=True)
        else:
            out.index_add_(0, flat_idx, grad)
        return out, None


class _PairHidden(torch.autograd.Function):
    """``relu(flat_x[ia] + flat_y[ib])`` ``[n_rows, hidden]`` as one autograd node.

    The same numbers as ``F.relu(flat_x[ia] + flat_y[ib])``, with the sum and the ReLU done in place and
    the two gradient scatters sharing one masked gradient: this is the hot path of seed-batched MLP
    training (on CUDA with Triton, :mod:`rep_theory.training.gather_triton` computes the same bits in
    fewer passes).
    """

    @staticmethod
    def forward(ctx, flat_x: torch.Tensor, flat_y: torch.Tensor, ia: torch.Tensor, ib: torch.Tensor) -> torch.Tensor:
        hidden = flat_x.index_select(0, ia).add_(flat_y.index_select(0, ib)).relu_()
        ctx.save_for_backward(hidden, ia, ib)
        ctx.table_rows = flat_x.shape[0]
        return hidden

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        hidden, ia, ib = ctx.saved_tensors
        g = torch.ops.aten.threshold_backward(grad, hidden, 0)  # relu backward
        out = []
        for idx in (ia, ib):
            acc = g.new_zeros((ctx.table_rows, g.shape[1]))
            if g.is_cuda:  # deterministic accumulation on CUDA (see _GatherRows)
                acc.index_put_((idx,), g, accumulate=True)
            else:
                acc.index_add_(0, idx, g)
            out.append(acc)
        return out[0], out[1], None, None


def _triton_gathers(device: torch.device, table: torch.Tensor) -> bool:
    """Whether the row gathers of ``table [table_rows, width]`` run as Triton kernels on ``device``: CUDA,
    Triton installed, self-check passed, and a dtype and width the kernels take (``gather_triton.supports``)."""
    if device.type != "cuda":
        return False
    from rep_theory.training.gather_triton import gather_ready, supports

    return supports(table) and gather_ready(device, _PairHidden.apply, _GatherRows.apply)


def _pair_hidden(Lx: torch.Tensor, Ly: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``relu(Lx[s, a[s]] + Ly[s, b[s]])`` ``[seed, batch, hidden]`` for ``Lx, Ly [seed, rows, hidden]``,
    ``a, b [seed, batch]``."""
    s, rows, width = Lx.shape
    flat_x, flat_y = Lx.reshape(s * rows, width), Ly.reshape(s * rows, width)
    ia, ib = _flat_index(a, rows), _flat_index(b, rows)
    if _triton_gathers(Lx.device, flat_x):
        from rep_theory.training.gather_triton import pair_hidden

        hidden = pair_hidden(flat_x, flat_y, ia, ib)
    else:
        hidden = _PairHidden.apply(flat_x, flat_y, ia, ib)
    return hidden.reshape(s, a.shape[1], width)


_SPLIT_ROWS = 2048  # rows per partial product of a weight gradient on CUDA (0: one cuBLAS product)
_SPLIT_DEVICES = ("cuda",)  # device types whose weight gradients are split (the CPU keeps one product)


@functools.lru_cache(maxsize=256)
def _row_blocks(rows: int, split_rows: int) -> tuple[int, int]:
    """``(blocks, size)``: ``rows`` cut into blocks of about ``split_rows`` rows.  Equal blocks where a
    size within a factor 2 of ``split_rows`` divides ``rows`` (the nearest such size), so that a
    contiguous ``[seed, rows, d]`` reshapes to ``[seed*blocks, size, d]`` without a copy; else
    ``rows // split_rows`` blocks of ``split_rows`` and a remainder."""
    for delta in range(split_rows + 1):
        for size in (split_rows - delta, split_rows + delta):
            if max(1, split_rows // 2) <= size <= 2 * split_rows and rows % size == 0 and rows // size >= 2:
                return rows // size, size
    return rows // split_rows, split_rows


def _weight_grad(x: torch.Tensor, grad: torch.Tensor, split_rows: int) -> torch.Tensor:
    """``x^T @ grad`` per seed, ``[seed, d_in, d_out]``, for ``x [seed, batch, d_in]``, ``grad [seed, batch, d_out]``.

    The reduction runs over the long ``batch`` axis with a small output, so one batched product
    leaves most of a large GPU idle (an S6 MLP's unembedding: 4 seeds x 128 x 720 outputs, 23k to
    130k rows).  With ``split_rows`` it is a sum of partial products over blocks of about that many
    rows (split-K, :func:`_row_blocks`), summed in a fixed order: deterministic, and equal up to
    float32 rounding.
    """
    s, rows, d_in = x.shape
    k, size = _row_blocks(rows, split_rows) if split_rows > 0 else (0, 0)
    if k < 2:
        return torch.bmm(x.transpose(1, 2), grad)
    main = k * size
    xs = x[:, :main].reshape(s * k, size, d_in)                    # [seed*block, size, d_in]: a view when main == rows
    gs = grad[:, :main].reshape(s * k, size, grad.shape[2])        # [seed*block, size, d_out]
    out = torch.bmm(xs.transpose(1, 2), gs).reshape(s, k, d_in, grad.shape[2]).sum(1)
    if main < rows:
        out = torch.baddbmm(out, x[:, main:].transpose(1, 2), grad[:, main:])
    return out


class _BatchLinear(torch.autograd.Function):
    """``x @ W`` (``[seed, batch, d_in] @ [seed, d_in, d_out]``) with the weight gradient of :func:`_weight_grad`."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, W: torch.Tensor, split_rows: int) -> torch.Tensor:
        ctx.save_for_backward(x, W)
        ctx.split_rows = split_rows
        return torch.bmm(x, W)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, W = ctx.saved_tensors
        grad_x = torch.bmm(grad, W.transpose(1, 2)) if ctx.needs_input_grad[0] else None
        grad_W = _weight_grad(x, grad, ctx.split_rows) if ctx.needs_input_grad[1] else None
        return grad_x, grad_W, None


def batch_linear(x: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """``torch.bmm(x, W)`` for ``x [seed, batch, d_in]``, ``W [seed, d_in, d_out]``; on CUDA its weight
    gradient is split over row blocks (:func:`_weight_grad`).  On the CPU it is ``bmm`` itself, so CPU
    training keeps its exact numbers."""
    if x.device.type in _SPLIT_DEVICES and _SPLIT_ROWS > 0:
        return _BatchLinear.apply(x, W, _SPLIT_ROWS)
    return torch.bmm(x, W)


def _gather_rows(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``table [seed, rows, *rest]``, ``idx [seed, batch]`` -> ``[seed, batch, *rest]`` (``table[s, idx[s]]``)."""
    s, rows = table.shape[:2]
    flat_idx = _flat_index(idx, rows)
    flat_2d = table.reshape(s * rows, math.prod(table.shape[2:]))   # [seed*rows, width]
    if _triton_gathers(table.device, flat_2d):
        from rep_theory.training.gather_triton import gather_rows

        flat = gather_rows(flat_2d, flat_idx)
    else:
        flat = _GatherRows.apply(flat_2d, flat_idx)
    return flat.reshape(s, idx.shape[1], *table.shape[2:])


class BatchedModel(nn.Module):
    """Base class: parameters stacked over a leading ``seed`` axis, one independent model per seed.

    ``_KEYS`` maps each stacked parameter (or buffer) attribute to the single model's state-dict key.
    """

    _KEYS: dict[str, str] = {}
    single_class: type[GroupModel]

    def __init__(self, singles: Sequence[GroupModel], seeds: Sequence[int]):
        super().__init__()
        if len(singles) == 0:
            raise ValueError("a batched model needs at least one seed, got none")
        self.seeds = tuple(int(s) for s in seeds)
        self.n = singles[0].n
        self._single_args = self._args_of(singles[0])
        states = [m.state_dict() for m in singles]
        for attr, key in self._KEYS.items():
            stacked = torch.stack([sd[key].detach() for sd in states]).clone()
            param = dict(singles[0].named_parameters())[key]
            setattr(self, attr, nn.Parameter(stacked, requires_grad=param.requires_grad))

    # --- conversion ---------------------------------------------------------------------------
    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _args_of(self, single: GroupModel) -> dict:
        raise NotImplementedError

    def _make_single(self, seed: int) -> GroupModel:
        return self.single_class(self.n, **self._single_args, seed=seed)

    def single_state_dict(self, i: int) -> dict[str, torch.Tensor]:
        """The state dict of seed ``i`` (index into ``seeds``) as the single-seed model's, on CPU."""
        return {key: getattr(self, attr)[i].detach().cpu().clone() for attr, key in self._KEYS.items()}

    def load_single_state_dict(self, i: int, state_dict) -> None:
        """Overwrite seed ``i``'s parameters from a single-seed state dict."""
        state_dict = {k: v for k, v in state_dict.items() if k not in IGNORED_PAPER_KEYS}
        missing = sorted(set(self._KEYS.values()) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(self._KEYS.values()))
        if missing or unexpected:
            raise KeyError(f"state dict does not fit {self.single_class.__name__}: missing {missing}, unexpected {unexpected}")
        with torch.no_grad():
            for attr, key in self._KEYS.items():
                target = getattr(self, attr)
                value = state_dict[key]
                if tuple(value.shape) != tuple(target.shape[1:]):
                    raise ValueError(f"{key}: expected shape {tuple(target.shape[1:])}, got {tuple(value.shape)}")
                target[i].copy_(value.to(target.device, target.dtype))

    def to_single(self, i: int) -> GroupModel:
        """Seed ``i`` as a single-seed model (on this model's device)."""
        model = self._make_single(self.seeds[i])
        model.load_state_dict(self.single_state_dict(i))
        return model.to(self.device)

    @classmethod
    def from_single(cls, models: Sequence[GroupModel], seeds: Sequence[int]) -> "BatchedModel":
        """Stack single-seed models (same architecture) into one batched model."""
        raise NotImplementedError

    # --- computation --------------------------------------------------------------------------
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``[seed, batch, n]`` logits; ``a, b`` are ``[seed, batch]`` (each seed its own pairs)."""
        raise NotImplementedError

    @torch.no_grad()
    def logits_all_pairs(self, chunk_size: int | None = None) -> torch.Tensor:
        """``[seed, pair, n]``: every seed's logits on all pairs, row-major."""
        n = self.n
        if chunk_size is None:
            chunk_size = max(1, _DEFAULT_CHUNK_ELEMENTS // (n * self.n_seeds))
        p = torch.arange(n * n, device=self.device)
        out = []
        for start in range(0, n * n, chunk_size):
            q = p[start:start + chunk_size].expand(self.n_seeds, -1)
            out.append(self(q // n, q % n))
        return torch.cat(out, dim=1)


class BatchedOneLayerMLP(BatchedModel):
    """``OneLayerMLP`` for several seeds at once: ``W_x [seed, n, embed]`` ... ``W_U [seed, hidden, n]``.

    Forward: ``hidden = relu(Lx[a] + Ly[b])`` with ``Lx = W_x @ W[:embed]`` ``[seed, n, hidden]``
    (the same function as ``relu(cat(W_x[a], W_y[b]) @ W)``, at a fraction of the cost).

    ``router``: ``None`` (plain training), or a callable ``router(hidden, W_U, a, b) -> logits`` that
    computes the same logits with a routed backward pass (:class:`rep_theory.training.routing.Router`).
    """

    _KEYS = {"W_x": "W_x", "W_y": "W_y", "W": "W", "W_U": "W_U"}
    single_class = OneLayerMLP
    router = None

    def __init__(self, n: int, embed_dim: int = 256, hidden_dim: int = 128, *, seeds: Sequence[int],
                 element_perm: torch.Tensor | None = None, _singles: Sequence[GroupModel] | None = None):
        singles = _singles or [OneLayerMLP(n, embed_dim, hidden_dim, seed=s, element_perm=element_perm) for s in seeds]
        super().__init__(singles, seeds)
        self.embed_dim = embed_dim

    def _args_of(self, single):
        return {"embed_dim": single.embed_dim, "hidden_dim": single.hidden_dim}

    @classmethod
    def from_single(cls, models, seeds):
        m = models[0]
        return cls(m.n, m.embed_dim, m.hidden_dim, seeds=seeds, _singles=models)

    def element_tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Lx, Ly)``: ``[seed, n, hidden]`` each, ``W_x @ W[:embed]`` and ``W_y @ W[embed:]``."""
        e = self.embed_dim
        return torch.bmm(self.W_x, self.W[:, :e]), torch.bmm(self.W_y, self.W[:, e:])

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        Lx, Ly = self.element_tables()
        hidden = _pair_hidden(Lx, Ly, a, b)  # [seed, batch, hidden] = relu(Lx[a] + Ly[b])
        if self.router is not None:
            return self.router(hidden, self.W_U, a, b)
        return batch_linear(hidden, self.W_U)


class BatchedBilinearNet(BatchedModel):
    """``BilinearNet`` for several seeds at once."""

    _KEYS = {"W_x": "W_x", "W_y": "W_y", "W_U": "W_U"}
    single_class = BilinearNet

    def __init__(self, n: int, embed_dim: int = 256, *, seeds: Sequence[int],
                 element_perm: torch.Tensor | None = None, _singles: Sequence[GroupModel] | None = None):
        singles = _singles or [BilinearNet(n, embed_dim, seed=s, element_perm=element_perm) for s in seeds]
        super().__init__(singles, seeds)

    def _args_of(self, single):
        return {"embed_dim": single.embed_dim}

    @classmethod
    def from_single(cls, models, seeds):
        return cls(models[0].n, models[0].embed_dim, seeds=seeds, _singles=models)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.bmm(_gather_rows(self.W_x, a) * _gather_rows(self.W_y, b), self.W_U)


class BatchedWuMLP(BatchedModel):
    """``WuMLP`` for several seeds at once: ``hidden = relu(W_l[a] + W_r[b])`` by the fused gather of the MLP."""

    _KEYS = {"W_l": "W_l", "W_r": "W_r", "W_U": "W_U"}
    single_class = WuMLP

    def __init__(self, n: int, hidden_dim: int = 128, *, seeds: Sequence[int],
                 element_perm: torch.Tensor | None = None, _singles: Sequence[GroupModel] | None = None):
        singles = _singles or [WuMLP(n, hidden_dim, seed=s, element_perm=element_perm) for s in seeds]
        super().__init__(singles, seeds)

    def _args_of(self, single):
        return {"hidden_dim": single.hidden_dim}

    @classmethod
    def from_single(cls, models, seeds):
        return cls(models[0].n, models[0].hidden_dim, seeds=seeds, _singles=models)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return batch_linear(_pair_hidden(self.W_l, self.W_r, a, b), self.W_U)


class BatchedTransformer(BatchedModel):
    """``Transformer`` for several seeds at once, evaluated at the last position only.

    With one layer, the logits at the last position depend on the other positions only through
    their keys and values, so per-element tables (keys, values and the scores against the fixed
    query of the ``"="`` token) replace the full three-position forward pass.
    """

    _KEYS = {
        "W_E": "embed.W_E", "W_pos": "pos_embed.W_pos",
        "W_Q": "blocks.0.attn.W_Q", "W_K": "blocks.0.attn.W_K", "W_V": "blocks.0.attn.W_V",
        "W_O": "blocks.0.attn.W_O", "b_Q": "blocks.0.attn.b_Q", "b_K": "blocks.0.attn.b_K",
        "b_V": "blocks.0.attn.b_V", "b_O": "blocks.0.attn.b_O",
        "W_in": "blocks.0.mlp.W_in", "b_in": "blocks.0.mlp.b_in", "W_out": "blocks.0.mlp.W_out",
        "b_out": "blocks.0.mlp.b_out", "W_U": "unembed.W_U", "b_U": "unembed.b_U",
    }
    single_class = Transformer

    def __init__(self, n: int, d_model: int = 128, n_heads: int = 4, d_head: int = 32, d_mlp: int = 512, *,
                 seeds: Sequence[int], element_perm: torch.Tensor | None = None,
                 _singles: Sequence[GroupModel] | None = None):
        singles = _singles or [Transformer(n, d_model, n_heads, d_head, d_mlp, seed=s, element_perm=element_perm)
                               for s in seeds]
        super().__init__(singles, seeds)
        self.scale = 1.0 / math.sqrt(singles[0].d_head)

    def _args_of(self, single):
        return {"d_model": single.d_model, "n_heads": single.n_heads, "d_head": single.d_head, "d_mlp": single.d_mlp}

    @classmethod
    def from_single(cls, models, seeds):
        m = models[0]
        return cls(m.n, m.d_model, m.n_heads, m.d_head, m.d_mlp, seeds=seeds, _singles=models)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        n = self.n
        W_E, W_pos = self.W_E, self.W_pos                      # [seed, n+1, d_model], [seed, 3, d_model]
        x0 = W_E[:, :n] + W_pos[:, 0:1]                        # [seed, n, d_model]: token a at position 0
        x1 = W_E[:, :n] + W_pos[:, 1:2]                        # [seed, n, d_model]: token b at position 1
        x2 = W_E[:, n] + W_pos[:, 2]                           # [seed, d_model]: "=" at position 2
        q = torch.einsum("sd,shdk->shk", x2, self.W_Q) + self.b_Q            # [seed, head, d_head]
        k0 = torch.einsum("snd,shdk->snhk", x0, self.W_K) + self.b_K[:, None]  # [seed, n, head, d_head]
        k1 = torch.einsum("snd,shdk->snhk", x1, self.W_K) + self.b_K[:, None]
        k2 = torch.einsum("sd,shdk->shk", x2, self.W_K) + self.b_K           # [seed, head, d_head]
        s0 = torch.einsum("snhk,shk->snh", k0, q) * self.scale               # [seed, n, head]
        s1 = torch.einsum("snhk,shk->snh", k1, q) * self.scale
        s2 = torch.einsum("shk,shk->sh", k2, q) * self.scale                 # [seed, head]
        v0 = torch.einsum("snd,shdk->snhk", x0, self.W_V) + self.b_V[:, None]  # [seed, n, head, d_head]
        v1 = torch.einsum("snd,shdk->snhk", x1, self.W_V) + self.b_V[:, None]
        v2 = torch.einsum("sd,shdk->shk", x2, self.W_V) + self.b_V           # [seed, head, d_head]
        batch = a.shape[1]
        scores = torch.stack([_gather_rows(s0, a), _gather_rows(s1, b),
                              s2[:, None].expand(-1, batch, -1)], dim=-1)    # [seed, batch, head, 3]
        pattern = torch.softmax(scores, dim=-1)
        z = (pattern[..., 0:1] * _gather_rows(v0, a) + pattern[..., 1:2] * _gather_rows(v1, b)
             + pattern[..., 2:3] * v2[:, None])                              # [seed, batch, head, d_head]
        s_, hk = z.shape[0], z.shape[2] * z.shape[3]
        attn_out = (batch_linear(z.reshape(s_, batch, hk), self.W_O.reshape(s_, hk, -1))
                    + self.b_O[:, None])                                     # [seed, batch, d_model]
        resid_mid = attn_out + x2[:, None]
        post = F.relu(batch_linear(resid_mid, self.W_in) + self.b_in[:, None])  # [seed, batch, d_mlp]
        resid = resid_mid + batch_linear(post, self.W_out) + self.b_out[:, None]
        return batch_linear(resid, self.W_U) + self.b_U[:, None]


BATCHED_MODELS: dict[str, type[BatchedModel]] = {
    "OneLayerMLP": BatchedOneLayerMLP, "Transformer": BatchedTransformer, "BilinearNet": BatchedBilinearNet,
    "WuMLP": BatchedWuMLP}
"""Canonical model name -> seed-batched class."""


def make_batched_model(model: str, n: int, *, seeds: Sequence[int], embed_dim: int = 256, hidden_dim: int = 128,
                       element_perm: torch.Tensor | None = None) -> BatchedModel:
    """Build a seed-batched model by canonical name; seed ``i`` initialised as ``make_model(..., seed=seeds[i])``."""
    widths = width_args(model, embed_dim, hidden_dim, BATCHED_MODELS)
    return BATCHED_MODELS[model](n, *widths, seeds=seeds, element_perm=element_perm)
