"""The paper's three architectures as single-seed models.

Conventions:

* Inputs are two LongTensors ``a, b`` of element indices (``[batch]``; batched models: ``[seed,
  batch]``); outputs are logits over the ``n`` group elements for ``a * b``.
* Weights are stored ``W [d_in, d_out]`` and applied ``x @ W``; parameter names (state-dict keys)
  are the paper's, so its ``model.pt`` files load as they are.
* Initialisation is the paper's for the same seed, drawn from a local CPU generator seeded with
  ``seed`` (bit-identical to the paper's ``torch.manual_seed(seed)`` followed by the same draws,
  checked in the tests; the global RNG is untouched).  ``element_perm`` (``[n]``,
  ``element_perm[i]`` = package index of the init's element ``i``) draws the element-indexed rows
  in another element order, e.g. the paper's order for S5 (see :mod:`rep_theory.algebra.paper_order`).

Models
------
``OneLayerMLP(n, embed_dim, hidden_dim)``: ``W_x, W_y [n, embed]``, ``W [2 embed, hidden]``,
``W_U [hidden, n]``; ``logits = relu(cat(W_x[a], W_y[b]) @ W) @ W_U``, no biases.  Init:
``randn`` for ``W_x``, ``W_y`` (/ sqrt(embed)), ``W`` (/ sqrt(2 embed)), ``W_U`` (/ sqrt(hidden)).
Hook points ``embed_stack`` ``[batch, 2 embed]`` and ``hidden`` ``[batch, hidden]`` (post-ReLU).

``Transformer(n, d_model=128, n_heads=4, d_head=32, d_mlp=512)``: one TransformerLens-style
block (attention then MLP, ReLU, no LayerNorm), tokens ``(a, b, "=")`` with ``"=" = n``, logits
read at the last position over the ``n`` elements.  Parameter names and shapes as TransformerLens
(``embed.W_E [n+1, d_model]``, ``pos_embed.W_pos [3, d_model]``, ``blocks.0.attn.W_Q [head,
d_model, d_head]``, ..., ``unembed.W_U [d_model, n]``); biases exist but are zero and frozen
(``requires_grad=False``).  Causal attention scaled by ``1/sqrt(d_head)``, masked scores set to
``-1e5`` as TransformerLens did.  Init (TransformerLens ``init_weights`` for this config): every
``W_*`` parameter, in ``named_parameters`` order, ``normal(0, 0.8 / sqrt(d_model))``.
Hook points as TransformerLens: ``hook_embed``, ``hook_pos_embed``, ``blocks.0.hook_resid_pre``,
``blocks.0.attn.hook_{q,k,v,attn_scores,pattern,z}``, ``blocks.0.hook_attn_out``,
``blocks.0.hook_resid_mid``, ``blocks.0.mlp.hook_{pre,post}``, ``blocks.0.hook_mlp_out``,
``blocks.0.hook_resid_post``.

``BilinearNet(n, embed_dim)``: ``logits = (W_x[a] * W_y[b]) @ W_U``, ``W_U [embed, n]``, all
/ sqrt(embed); hook point ``hidden``.

``WuMLP(n, hidden_dim)``: Wu, Jaburi, Drori and Gross's network (ICLR 2025, arXiv 2410.07476),
``logits = relu(W_l[a] + W_r[b]) @ W_U`` with ``W_l, W_r [n, hidden]``, ``W_U [hidden, n]``, no
embedding layer, no biases.  Init (their code's ``MLP4``): ``W_l, W_r`` standard normal, ``W_U``
uniform in ``+-1/sqrt(hidden)``.  Hook point ``hidden`` (post-ReLU), as ``OneLayerMLP``.

Every single-seed model offers what the metrics read: ``n``, ``hidden_hook_name``,
``embedding_left()`` / ``embedding_right()`` ``[n, hidden]``, ``unembedding()`` ``[n, hidden]`` (each
computed in an optional ``dtype``), ``hidden_all_pairs()`` ``[pair, hidden]``,
``hidden_from_embeddings(left, right)`` and ``hidden_all_pairs_float64()`` (the MLPs; ``None`` for
the transformer), ``logits_all_pairs()`` ``[pair, n]`` and ``logits_from_hidden(hidden, pairs)`` (in
the dtype of ``hidden`` for the MLPs); see :class:`GroupModel`.

Seed-batched forms: :mod:`rep_theory.training.batched`.
"""

from __future__ import annotations

import math
from typing import Iterator

import einops
import torch
import torch.nn.functional as F
from torch import nn

from rep_theory.checks import check_int
from rep_theory.training.hooks import HookedRootModule, HookPoint

__all__ = ["GroupModel", "OneLayerMLP", "Transformer", "BilinearNet", "WuMLP", "make_model", "SINGLE_MODELS",
           "IGNORED_PAPER_KEYS"]

IGNORED_PAPER_KEYS = ("x_embed", "y_embed", "blocks.0.attn.mask", "blocks.0.attn.IGNORE")
"""Extra keys in the paper's transformer state dicts (aliases of ``W_E`` and fixed buffers), dropped on load."""

_ATTN_IGNORE = -1e5
_DEFAULT_CHUNK_ELEMENTS = 1 << 24  # floats per chunk of an all-pairs computation


def _generator(seed: int) -> torch.Generator:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got seed={seed!r}")
    g = torch.Generator(device="cpu")
    g.manual_seed(seed)
    return g


def _check_element_perm(element_perm, n: int) -> torch.Tensor | None:
    if element_perm is None:
        return None
    perm = torch.as_tensor(element_perm, dtype=torch.long).cpu()
    if perm.shape != (n,) or not torch.equal(torch.sort(perm).values, torch.arange(n)):
        raise ValueError(f"element_perm must be a permutation of 0..{n - 1} of shape [{n}], got shape {tuple(perm.shape)}")
    return perm


def _as(w: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    return w if dtype is None else w.to(dtype)


def _relu_sum_all_pairs(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """``[pair, hidden]``: ``relu(left[a] + right[b])`` for every pair ``a*n + b``; ``left, right [n, hidden]``."""
    return F.relu(left[:, None, :] + right[None, :, :]).reshape(left.shape[0] * right.shape[0], -1)


def _reorder_rows(w: torch.Tensor, perm: torch.Tensor | None) -> torch.Tensor:
    """Rows drawn in the init's element order -> package order: ``out[perm[i]] = w[i]``."""
    if perm is None:
        return w
    out = torch.empty_like(w)
    out[perm] = w
    return out


# =================================================================================================
# Single-seed models
# =================================================================================================
class GroupModel(HookedRootModule):
    """Base class of the single-seed models: the interface the metrics rely on.

    Subclasses define ``forward(a, b) -> [batch, n]``, ``hidden_hook_name``, the embedding and
    unembedding views and :meth:`logits_from_hidden`.
    """

    n: int
    hidden_hook_name: str

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def embedding_left(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``[n, hidden]``: the total embedding of the left input in the hidden layer's space, computed
        in ``dtype`` (default: the weights' dtype; the metrics ask for float64)."""
        raise NotImplementedError

    def embedding_right(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``[n, hidden]``: the same for the right input."""
        raise NotImplementedError

    def unembedding(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``[n, hidden]``: the map from the hidden layer to the logits, transposed, in ``dtype``."""
        raise NotImplementedError

    def logits_from_hidden(self, hidden: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """``[n_pairs, n]``: the logits when the hidden layer of ``pairs`` is replaced by ``hidden``.

        ``hidden`` is ``[n_pairs, hidden]``; ``pairs`` a LongTensor ``[n_pairs]`` of pair indices
        ``a*n + b`` (the MLP and bilinear logits do not depend on it).
        """
        raise NotImplementedError

    def _chunks(self, width: int, chunk_size: int | None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = self.n
        if chunk_size is None:
            chunk_size = max(1, _DEFAULT_CHUNK_ELEMENTS // max(width, 1))
        pairs = torch.arange(n * n, device=self.device)
        for start in range(0, n * n, chunk_size):
            p = pairs[start:start + chunk_size]
            yield p // n, p % n

    @torch.no_grad()
    def hidden_all_pairs(self, chunk_size: int | None = None) -> torch.Tensor:
        """``[pair, hidden]``: the hidden layer (hook ``hidden_hook_name``) on all pairs, row-major."""
        name = self.hidden_hook_name
        out = []
        for a, b in self._chunks(self._widest(), chunk_size):
            _, cache = self.run_with_cache(a, b, names_filter=name)
            h = cache[name]
            out.append(h[:, -1] if h.ndim == 3 else h)  # transformer: last position
        return out[0].contiguous() if len(out) == 1 else torch.cat(out)

    @torch.no_grad()
    def hidden_all_pairs_float64(self) -> torch.Tensor | None:
        """``[pair, hidden]`` float64: the hidden layer on all pairs in float64 arithmetic from the
        stored weights, or ``None`` where a model has no such form (the transformer).

        The MLPs' hidden layer is a function of one table per input (:meth:`hidden_from_embeddings`),
        so this costs ``O(n^2 hidden)`` (for ``OneLayerMLP``, whose float32 forward costs
        ``O(n^2 embed hidden)``, much less than the forward) and gives the same numbers on every device
        up to float64 rounding (``OneLayerMLP``'s float32 products round differently per device and BLAS).
        """
        return self.hidden_from_embeddings(self.embedding_left(torch.float64), self.embedding_right(torch.float64))

    def hidden_from_embeddings(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor | None:
        """``[pair, hidden]``: the hidden layer of every pair ``a*n + b`` from ``left = embedding_left()``
        and ``right = embedding_right()`` (``[n, hidden]``, any dtype), where the model's hidden layer is
        such a function (the MLPs: ``relu(left[a] + right[b])``; bilinear: ``left[a] * right[b]``);
        ``None`` otherwise (the transformer)."""
        return None

    @torch.no_grad()
    def logits_all_pairs(self, chunk_size: int | None = None) -> torch.Tensor:
        """``[pair, n]``: the logits on all pairs, row-major."""
        return torch.cat([self(a, b) for a, b in self._chunks(self._widest(), chunk_size)])

    def _widest(self) -> int:
        return max(max(p.shape) for p in self.parameters())


class _PairReadout(GroupModel):
    """The MLPs' readout: ``logits = hidden @ W_U`` with ``W_U [hidden, n]``, shared by the models below."""

    hidden_hook_name = "hidden"

    def unembedding(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        return _as(self.W_U, dtype).T

    def logits_from_hidden(self, hidden: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        return hidden @ self.W_U.to(hidden.dtype)


class OneLayerMLP(_PairReadout):
    """The paper's one-hidden-layer MLP (see the module docstring)."""

    def __init__(self, n: int, embed_dim: int = 256, hidden_dim: int = 128, *, seed: int = 0,
                 element_perm: torch.Tensor | None = None):
        super().__init__()
        self.n = check_int("n", n, low=1)
        self.embed_dim = check_int("embed_dim", embed_dim, low=1)
        self.hidden_dim = check_int("hidden_dim", hidden_dim, low=1)
        perm = _check_element_perm(element_perm, n)
        g = _generator(seed)
        e, h = embed_dim, hidden_dim
        W_x = torch.randn(n, e, generator=g) / math.sqrt(e)
        W_y = torch.randn(n, e, generator=g) / math.sqrt(e)
        W = torch.randn(2 * e, h, generator=g) / math.sqrt(2 * e)
        W_U = torch.randn(h, n, generator=g) / math.sqrt(h)
        self.W_x = nn.Parameter(_reorder_rows(W_x, perm))                  # [n, embed]
        self.W_y = nn.Parameter(_reorder_rows(W_y, perm))                  # [n, embed]
        self.W = nn.Parameter(W)                                           # [2 embed, hidden]
        self.W_U = nn.Parameter(_reorder_rows(W_U.T, perm).T.contiguous())  # [hidden, n]
        self.embed_stack = HookPoint()  # [batch, 2 embed]
        self.hidden = HookPoint()       # [batch, hidden], post-ReLU
        self.setup()

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``[batch, n]`` logits for LongTensors ``a, b`` ``[batch]``."""
        stack = self.embed_stack(torch.cat([self.W_x[a], self.W_y[b]], dim=-1))
        hidden = self.hidden(F.relu(stack @ self.W))
        return hidden @ self.W_U

    def embedding_left(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        return _as(self.W_x, dtype) @ _as(self.W[:self.embed_dim], dtype)

    def embedding_right(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        return _as(self.W_y, dtype) @ _as(self.W[self.embed_dim:], dtype)

    def hidden_from_embeddings(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return _relu_sum_all_pairs(left, right)


class BilinearNet(_PairReadout):
    """The paper's bilinear network: ``logits = (W_x[a] * W_y[b]) @ W_U``."""

    def __init__(self, n: int, embed_dim: int = 256, *, seed: int = 0,
                 element_perm: torch.Tensor | None = None):
        super().__init__()
        self.n = check_int("n", n, low=1)
        self.embed_dim = check_int("embed_dim", embed_dim, low=1)
        perm = _check_element_perm(element_perm, n)
        g = _generator(seed)
        e = embed_dim
        W_x = torch.randn(n, e, generator=g) / math.sqrt(e)
        W_y = torch.randn(n, e, generator=g) / math.sqrt(e)
        W_U = torch.randn(e, n, generator=g) / math.sqrt(e)
        self.W_x = nn.Parameter(_reorder_rows(W_x, perm))                  # [n, embed]
        self.W_y = nn.Parameter(_reorder_rows(W_y, perm))                  # [n, embed]
        self.W_U = nn.Parameter(_reorder_rows(W_U.T, perm).T.contiguous())  # [embed, n]
        self.hidden = HookPoint()  # [batch, embed]
        self.setup()

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.hidden(self.W_x[a] * self.W_y[b]) @ self.W_U

    def embedding_left(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        return _as(self.W_x, dtype)

    def embedding_right(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        return _as(self.W_y, dtype)

    def hidden_from_embeddings(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return (left[:, None, :] * right[None, :, :]).reshape(left.shape[0] * right.shape[0], -1)


class WuMLP(_PairReadout):
    """Wu et al.'s one-hidden-layer MLP: ``logits = relu(W_l[a] + W_r[b]) @ W_U`` (see the module docstring)."""

    def __init__(self, n: int, hidden_dim: int = 128, *, seed: int = 0, element_perm: torch.Tensor | None = None):
        super().__init__()
        self.n = check_int("n", n, low=1)
        self.hidden_dim = check_int("hidden_dim", hidden_dim, low=1)
        perm = _check_element_perm(element_perm, n)
        g = _generator(seed)
        m = hidden_dim
        W_l = torch.randn(n, m, generator=g)
        W_r = torch.randn(n, m, generator=g)
        bound = 1.0 / math.sqrt(m)
        W_U = (torch.rand(m, n, generator=g) * 2 - 1) * bound
        self.W_l = nn.Parameter(_reorder_rows(W_l, perm))                  # [n, hidden]
        self.W_r = nn.Parameter(_reorder_rows(W_r, perm))                  # [n, hidden]
        self.W_U = nn.Parameter(_reorder_rows(W_U.T, perm).T.contiguous())  # [hidden, n]
        self.hidden = HookPoint()  # [batch, hidden], post-ReLU
        self.setup()

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.hidden(F.relu(self.W_l[a] + self.W_r[b])) @ self.W_U

    def embedding_left(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        return _as(self.W_l, dtype)

    def embedding_right(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        return _as(self.W_r, dtype)

    def hidden_from_embeddings(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return _relu_sum_all_pairs(left, right)


# --- transformer components (TransformerLens names) -------------------------------------------------
class _Embed(nn.Module):
    def __init__(self, d_vocab: int, d_model: int):
        super().__init__()
        self.W_E = nn.Parameter(torch.zeros(d_vocab, d_model))  # [d_vocab, d_model]


class _PosEmbed(nn.Module):
    def __init__(self, n_ctx: int, d_model: int):
        super().__init__()
        self.W_pos = nn.Parameter(torch.zeros(n_ctx, d_model))  # [pos, d_model]


class _Attention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_head: int, n_ctx: int):
        super().__init__()
        # Registration order matters: it is the init order (W_Q, W_K, W_V, W_O, then biases).
        self.W_Q = nn.Parameter(torch.zeros(n_heads, d_model, d_head))
        self.W_K = nn.Parameter(torch.zeros(n_heads, d_model, d_head))
        self.W_V = nn.Parameter(torch.zeros(n_heads, d_model, d_head))
        self.W_O = nn.Parameter(torch.zeros(n_heads, d_head, d_model))
        self.b_Q = nn.Parameter(torch.zeros(n_heads, d_head), requires_grad=False)
        self.b_K = nn.Parameter(torch.zeros(n_heads, d_head), requires_grad=False)
        self.b_V = nn.Parameter(torch.zeros(n_heads, d_head), requires_grad=False)
        self.b_O = nn.Parameter(torch.zeros(d_model), requires_grad=False)
        self.register_buffer("mask", torch.tril(torch.ones(n_ctx, n_ctx, dtype=torch.bool)), persistent=False)
        self.scale = 1.0 / math.sqrt(d_head)
        self.hook_q = HookPoint()            # [batch, pos, head, d_head]
        self.hook_k = HookPoint()            # [batch, pos, head, d_head]
        self.hook_v = HookPoint()            # [batch, pos, head, d_head]
        self.hook_attn_scores = HookPoint()  # [batch, head, query_pos, key_pos]
        self.hook_pattern = HookPoint()      # [batch, head, query_pos, key_pos]
        self.hook_z = HookPoint()            # [batch, pos, head, d_head]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.hook_q(einops.einsum(x, self.W_Q, "batch pos d_model, head d_model d_head -> batch pos head d_head") + self.b_Q)
        k = self.hook_k(einops.einsum(x, self.W_K, "batch pos d_model, head d_model d_head -> batch pos head d_head") + self.b_K)
        v = self.hook_v(einops.einsum(x, self.W_V, "batch pos d_model, head d_model d_head -> batch pos head d_head") + self.b_V)
        scores = einops.einsum(q, k, "batch q_pos head d_head, batch k_pos head d_head -> batch head q_pos k_pos") * self.scale
        n_pos = x.shape[1]
        scores = torch.where(self.mask[:n_pos, :n_pos], scores, torch.full_like(scores, _ATTN_IGNORE))
        pattern = self.hook_pattern(torch.softmax(self.hook_attn_scores(scores), dim=-1))
        z = self.hook_z(einops.einsum(v, pattern, "batch k_pos head d_head, batch head q_pos k_pos -> batch q_pos head d_head"))
        return einops.einsum(z, self.W_O, "batch pos head d_head, head d_head d_model -> batch pos d_model") + self.b_O


class _MLP(nn.Module):
    def __init__(self, d_model: int, d_mlp: int):
        super().__init__()
        self.W_in = nn.Parameter(torch.zeros(d_model, d_mlp))
        self.b_in = nn.Parameter(torch.zeros(d_mlp), requires_grad=False)
        self.W_out = nn.Parameter(torch.zeros(d_mlp, d_model))
        self.b_out = nn.Parameter(torch.zeros(d_model), requires_grad=False)
        self.hook_pre = HookPoint()   # [batch, pos, d_mlp]
        self.hook_post = HookPoint()  # [batch, pos, d_mlp]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.hook_pre(x @ self.W_in + self.b_in)
        post = self.hook_post(F.relu(pre))
        return post @ self.W_out + self.b_out


class _Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_head: int, d_mlp: int, n_ctx: int):
        super().__init__()
        self.attn = _Attention(d_model, n_heads, d_head, n_ctx)
        self.mlp = _MLP(d_model, d_mlp)
        self.hook_resid_pre = HookPoint()   # [batch, pos, d_model]
        self.hook_attn_out = HookPoint()    # [batch, pos, d_model]
        self.hook_resid_mid = HookPoint()   # [batch, pos, d_model]
        self.hook_mlp_out = HookPoint()     # [batch, pos, d_model]
        self.hook_resid_post = HookPoint()  # [batch, pos, d_model]

    def forward(self, resid: torch.Tensor) -> torch.Tensor:
        resid = self.hook_resid_pre(resid)
        resid_mid = self.hook_resid_mid(resid + self.hook_attn_out(self.attn(resid)))
        return self.hook_resid_post(resid_mid + self.hook_mlp_out(self.mlp(resid_mid)))


class _Unembed(nn.Module):
    def __init__(self, d_model: int, d_vocab_out: int):
        super().__init__()
        self.W_U = nn.Parameter(torch.zeros(d_model, d_vocab_out))
        self.b_U = nn.Parameter(torch.zeros(d_vocab_out), requires_grad=False)


class Transformer(GroupModel):
    """The paper's one-layer transformer (TransformerLens layout; see the module docstring)."""

    hidden_hook_name = "blocks.0.mlp.hook_post"
    n_ctx = 3

    def __init__(self, n: int, d_model: int = 128, n_heads: int = 4, d_head: int = 32, d_mlp: int = 512,
                 *, seed: int = 0, element_perm: torch.Tensor | None = None):
        super().__init__()
        self.n = check_int("n", n, low=1)
        self.d_model = check_int("d_model", d_model, low=1)
        self.n_heads = check_int("n_heads", n_heads, low=1)
        self.d_head = check_int("d_head", d_head, low=1)
        self.d_mlp = check_int("d_mlp", d_mlp, low=1)
        self.init_range = 0.8 / math.sqrt(d_model)
        self.embed = _Embed(n + 1, d_model)
        self.hook_embed = HookPoint()      # [batch, pos, d_model]
        self.pos_embed = _PosEmbed(self.n_ctx, d_model)
        self.hook_pos_embed = HookPoint()  # [batch, pos, d_model]
        self.blocks = nn.ModuleList([_Block(d_model, n_heads, d_head, d_mlp, self.n_ctx)])
        self.unembed = _Unembed(d_model, n)
        perm = _check_element_perm(element_perm, n)
        g = _generator(seed)
        with torch.no_grad():
            for name, param in self.named_parameters():
                if "W_" in name:
                    param.normal_(0.0, self.init_range, generator=g)
            if perm is not None:
                self.embed.W_E[:n] = _reorder_rows(self.embed.W_E[:n].clone(), perm)
                self.unembed.W_U.copy_(_reorder_rows(self.unembed.W_U.T.clone(), perm).T)
        self.setup()

    def tokens(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``[batch, 3]`` token sequences ``(a, b, n)``."""
        return torch.stack([a, b, torch.full_like(a, self.n)], dim=-1)

    def _resid_mid(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        tokens = self.tokens(a, b)
        embed = self.hook_embed(self.embed.W_E[tokens])
        pos = self.hook_pos_embed(self.pos_embed.W_pos.expand(tokens.shape[0], -1, -1))
        block = self.blocks[0]
        resid = block.hook_resid_pre(embed + pos)
        return block.hook_resid_mid(resid + block.hook_attn_out(block.attn(resid)))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``[batch, n]`` logits at the last position for LongTensors ``a, b`` ``[batch]``."""
        tokens = self.tokens(a, b)
        embed = self.hook_embed(self.embed.W_E[tokens])
        pos = self.hook_pos_embed(self.pos_embed.W_pos.expand(tokens.shape[0], -1, -1))
        resid = self.blocks[0](embed + pos)
        return resid[:, -1] @ self.unembed.W_U + self.unembed.b_U

    def embedding_left(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        return _as(self.embed.W_E[:self.n], dtype)

    def embedding_right(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        return _as(self.embed.W_E[:self.n], dtype)

    def unembedding(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        return (_as(self.blocks[0].mlp.W_out, dtype) @ _as(self.unembed.W_U, dtype)).T

    def logits_from_hidden(self, hidden: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        pairs = pairs.to(hidden.device)
        resid_mid = self._resid_mid(pairs // self.n, pairs % self.n)[:, -1]
        mlp = self.blocks[0].mlp
        resid = resid_mid + hidden @ mlp.W_out + mlp.b_out
        return resid @ self.unembed.W_U + self.unembed.b_U

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As ``nn.Module.load_state_dict``, dropping the paper's extra keys (:data:`IGNORED_PAPER_KEYS`)."""
        state_dict = {k: v for k, v in state_dict.items() if k not in IGNORED_PAPER_KEYS}
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


SINGLE_MODELS: dict[str, type[GroupModel]] = {
    "OneLayerMLP": OneLayerMLP, "Transformer": Transformer, "BilinearNet": BilinearNet, "WuMLP": WuMLP}
"""Canonical model name -> single-seed class."""


def width_args(model: str, embed_dim: int, hidden_dim: int, known) -> tuple[int, ...]:
    """Positional width arguments of each architecture (the transformer's widths are fixed)."""
    widths = {"OneLayerMLP": (embed_dim, hidden_dim), "Transformer": (), "BilinearNet": (embed_dim,),
              "WuMLP": (hidden_dim,)}
    if model not in widths or model not in known:
        raise ValueError(f"unknown model {model!r}; expected one of {list(known)}")
    return widths[model]


def make_model(model: str, n: int, *, seed: int = 0, embed_dim: int = 256, hidden_dim: int = 128,
               element_perm: torch.Tensor | None = None) -> GroupModel:
    """Build a single-seed model by canonical name (``embed_dim``/``hidden_dim`` ignored where unused)."""
    widths = width_args(model, embed_dim, hidden_dim, SINGLE_MODELS)
    return SINGLE_MODELS[model](n, *widths, seed=seed, element_perm=element_perm)
