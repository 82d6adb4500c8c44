"""GCR metrics of one checkpoint: how much of each weight and activation lives in each irrep.

Conventions
-----------
* Pairs: all ``n^2`` pairs ``(a, b)`` in row-major order, pair index ``p = a*n + b``; the label of a
  pair is its product ``ab = table[a, b]``.
* Dimension names in shape comments: ``n`` (group order), ``pair`` (``n^2``), ``d`` (irrep dim),
  ``r`` (numerical rank of an irrep's matrix-coefficient space), ``hidden``, ``k`` (any feature axis).
* Every projection, norm and cross-entropy here is float64, whatever the model's dtype.
* So are the products of weights the metrics read (``embedding_left/right(float64)``,
  ``unembedding(float64)``), and, for the MLPs, the hidden layer and the logits, computed from the
  stored weights (``hidden_from_embeddings``: ``relu(E_left[a] + E_right[b])``, then
  ``logits_from_hidden``): an MLP checkpoint's metrics are the same on every device up to float64
  rounding.  The transformer's hidden layer and logits come from its forward in the model's dtype.
  (Before ``METRICS_REVISION`` 2 all of these were float32: values differ by a median of about
  1e-9 relative and by up to a few 1e-6, see the README.)

Bases
-----
For an irrep ``rho`` the functions ``g -> rho(g)_ij`` span a subspace of ``R^n``; ``Q_rho`` ``[n, r]``
is an orthonormal basis of it, of its *numerical* rank ``r`` (``d^2`` for an absolutely irreducible
irrep, ``d^2/2`` for one of complex type such as a cyclic ``freq_k``, ``d^2/4`` quaternionic).
The pair bases are never materialised: ``Q^a = Q_rho[a] / sqrt(n)``, ``Q^b = Q_rho[b] / sqrt(n)``
and ``Q^ab = Q_rho[ab] / sqrt(n)`` are orthonormal in ``R^(n^2)`` (each element is hit by exactly
``n`` pairs), so for any ``X [pair, k]``::

    (Q^a)^T X  = Q_rho^T (sum_b X[a, b]) / sqrt(n)                  (rows aggregated by a)
    (Q^ab)^T X = Q_rho^T (sum_{ab = g} X[a, b]) / sqrt(n)            (rows aggregated by product)
    (Q^ab (Q^ab)^T X)[a, b] = project(X_by_product, Q_rho)[ab] / n

Every pair-level projection is thus the one :func:`project` applied to an ``[n, k]`` aggregate that
is computed once per checkpoint.  Likewise the logit similarity against
``T_rho[(a, b), c] = chi_rho(a b c^-1)`` only needs the centred logits aggregated by product and the
``[n, n]`` gather ``K_rho[g, c] = chi_rho(g c^-1)``; nothing of size ``n^3`` is ever built.

Metric definitions (reproduce the paper's ``summary_metrics.json``; see the README, "Evaluating runs")
------------------------------------------------------------------------------------------
* ``percent_{x,y}_embed_R_rep`` / ``percent_unembed_R_rep``: :func:`fve` of the total embeddings
  ``[n, k]`` (uncentred) and of the unembedding ``[n, k]`` on ``Q_rho``.
* ``percent_hidden_{x,y,xy}_R_rep``: FVE of the hidden layer on all pairs, centred over pairs, on
  ``Q^a``, ``Q^b``, ``Q^ab``; ``total_percent_hidden_R_rep`` is their sum.
* ``logit_R_rep_trace_similarity`` (non-trivial irreps): cosine of ``vec(L)`` (logits on all pairs
  centred over the output axis) and ``vec(T_rho)``.  ``percent_logits_explained`` sums its square.
* ``logit_restricted_loss_R_rep``: cross-entropy on all pairs of the component of ``vec(L)`` along
  ``T_rho`` (``sim * |L| * T/|T|``); ``logit_excluded_loss_R_rep``: of ``L`` minus that component,
  on the training pairs only.  The ``total_logit_*`` versions use the sum over key irreps.
* ``hidden_restricted_loss_R_rep``: the *uncentred* hidden layer projected on ``Q^ab``, read out by
  the linear unembedding (``hidden @ unembedding().T``), cross-entropy on all pairs;
  ``hidden_excluded_loss_R_rep``: the hidden layer minus that projection, on the training pairs.
  ``total_hidden_*`` project on the sum of the key irreps' ``Q^ab``.
* Key irreps: non-trivial irreps whose similarity exceeds ``threshold`` (paper: 0.005) on the final
  model; ``percent_*_explained`` sum the per-irrep FVEs over them.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
import re
from typing import Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F

from rep_theory.algebra.groups import Group
from rep_theory.analysis.bases import IrrepBases, aggregate_pairs, fve, orthonormal_basis, project
from rep_theory.analysis.thresholds import KEY_THRESHOLD, ORDER_RULES, ORDER_THRESHOLD
from rep_theory.training.rundir import METRICS_REVISION  # the arithmetic below (re-exported)

__all__ = [
    "orthonormal_basis", "project", "fve", "aggregate_pairs", "product_kernel", "logit_similarity",
    "shifted_cross_entropy_sums", "IrrepBases", "CheckpointAggregates", "pair_mask", "checkpoint_aggregates",
    "checkpoint_metrics", "METRICS_REVISION",
    "metric_names", "select_key_irreps", "learning_order",
    "KEY_THRESHOLD", "ORDER_THRESHOLD", "ORDER_RULES", "CYCLIC_HIDDEN_BASIS_KEYS",
]


CYCLIC_HIDDEN_BASIS_KEYS = ("percent_hidden_x", "percent_hidden_y", "percent_hidden_xy",
                            "total_percent_hidden", "hidden_excluded_loss", "hidden_restricted_loss",
                            "total_hidden_excluded_loss", "total_hidden_restricted_loss",
                            "test_loss_restricted_loss_ratio", "percent_hidden_explained",
                            "percent_hidden_xy_explained")
"""Key prefixes whose paper values are not reproducible for cyclic groups: the paper built its
hidden-layer bases for 2-d cyclic irreps by a plain QR of four rank-2 columns (see the README, "Evaluating runs")."""

_CHUNK_BYTES = 1 << 26      # ~64 MiB per [chunk, max(n, hidden)] float64 block
_READOUT_BYTES = 1 << 28    # stored [n, n] per-irrep readout tables per pass over the training pairs
_STORE_BYTES = 1 << 28      # training-pair logits kept from pass 1 for pass 2 (else recomputed)


# --------------------------------------------------------------------------------------------------
# Pure functions
# --------------------------------------------------------------------------------------------------
def product_kernel(character: torch.Tensor, product_index: torch.Tensor) -> torch.Tensor:
    """``K [n, n]`` with ``K[g, c] = chi(g c^-1)``, gathered through ``product_index[g, c] = table[g, inv[c]]``.

    The trace tensor of the paper is ``T[(a, b), c] = K[ab, c]``: one row of ``K`` per pair.
    """
    return character.to(torch.float64)[product_index]


def logit_similarity(logits_by_product: torch.Tensor, kernel: torch.Tensor, *,
                     logits_sq: torch.Tensor | float) -> torch.Tensor:
    """Cosine of ``vec(L)`` and ``vec(T_rho)`` (0-d tensor) from aggregates.

    ``logits_by_product [n, n]``: logits centred over the output axis, summed over the pairs with
    each product (``aggregate_pairs(L_centred, products, n)``); ``kernel [n, n]`` from
    :func:`product_kernel`; ``logits_sq``: ``||L_centred||^2`` over all pairs.  Uses
    ``<L, T> = <L_by_product, K>`` and ``||T||^2 = n ||K||^2``.  Constant logits give 0.
    """
    n = kernel.shape[0]
    t_norm = math.sqrt(n) * kernel.pow(2).sum().sqrt()
    l_norm = torch.as_tensor(logits_sq, dtype=torch.float64, device=kernel.device).sqrt()
    if l_norm == 0:  # constant logits carry no irrep
        return torch.zeros((), dtype=torch.float64, device=kernel.device)
    return (logits_by_product * kernel).sum() / (l_norm * t_norm)


def select_key_irreps(similarities: Mapping[str, float], *, threshold: float = KEY_THRESHOLD) -> list[str]:
    """Names (in the given order) of the irreps whose final logit similarity exceeds ``threshold``."""
    return [name for name, sim in similarities.items() if float(sim) > threshold]


def learning_order(history: Sequence[Mapping[str, float]], key_irreps: Sequence[str], *,
                   threshold: float = ORDER_THRESHOLD, rule: str = "package") -> list[str]:
    """Key irreps sorted by the first checkpoint at which their similarity exceeds ``threshold``.

    ``history``: one mapping per checkpoint in increasing epoch order, holding
    ``logit_<irrep>_rep_trace_similarity``.

    ``rule="package"`` (default): irreps that cross at the same checkpoint are ordered by their
    similarity there (largest first); irreps that never cross come last, in the order of
    ``key_irreps``.

    ``rule="paper"``: the paper's ``determine_key_rep_order.py`` (Chughtai et al. 2023): at each
    checkpoint at most one irrep is added, the first in ``key_irreps`` order that crosses and is not
    yet listed; irreps never added come last in ``key_irreps`` order.  When ``key_irreps`` is empty
    the paper falls back to the irreps whose similarity at the last checkpoint exceeds
    ``threshold`` (in the order the history lists them).
    """
    if rule not in ORDER_RULES:
        raise ValueError(f"unknown learning-order rule {rule!r}; expected one of {ORDER_RULES}")
    if rule == "paper":
        return _paper_learning_order(history, key_irreps, threshold)
    crossing: dict[str, tuple[int, float]] = {}
    for step, row in enumerate(history):
        for name in key_irreps:
            if name in crossing:
                continue
            sim = float(row[f"logit_{name}_rep_trace_similarity"])
            if sim > threshold:
                crossing[name] = (step, -sim)
    learnt = sorted(crossing, key=lambda name: crossing[name])
    return learnt + [name for name in key_irreps if name not in crossing]



_SIMILARITY_KEY = re.compile(r"^logit_(?P<name>.+)_rep_trace_similarity$")


def _paper_learning_order(history: Sequence[Mapping[str, float]], key_irreps: Sequence[str],
                          threshold: float) -> list[str]:
    keys = list(key_irreps)
    if not keys and history:  # the paper's fallback: final similarity above the threshold
        keys = [m["name"] for k, v in history[-1].items()
                if (m := _SIMILARITY_KEY.match(k)) and m["name"] != "trivial" and float(v) > threshold]
    order: list[str] = []
    for row in history:
        for name in keys:
            if name not in order and float(row[f"logit_{name}_rep_trace_similarity"]) > threshold:
                order.append(name)
                break
    return order + [name for name in keys if name not in order]


def metric_names(irrep_names: Sequence[str]) -> list[str]:
    """Every metric key, in the paper's order (``irrep_names`` with the trivial irrep first)."""
    keys = ["train_loss", "test_loss", "train_acc", "test_acc", "all_loss"]
    for name in irrep_names:
        if name != "trivial":
            keys += [f"logit_{name}_rep_trace_similarity", f"logit_excluded_loss_{name}_rep",
                     f"logit_restricted_loss_{name}_rep"]
        keys += [f"percent_x_embed_{name}_rep", f"percent_y_embed_{name}_rep", f"percent_unembed_{name}_rep",
                 f"percent_hidden_x_{name}_rep", f"percent_hidden_y_{name}_rep", f"percent_hidden_xy_{name}_rep",
                 f"total_percent_hidden_{name}_rep", f"hidden_excluded_loss_{name}_rep",
                 f"hidden_restricted_loss_{name}_rep"]
    keys += ["percent_logits_explained", "total_logit_excluded_loss", "total_logit_restricted_loss",
             "total_hidden_excluded_loss", "total_hidden_restricted_loss", "test_loss_restricted_loss_ratio",
             "sum_of_squared_weights", "percent_hidden_explained", "percent_hidden_xy_explained",
             "percent_x_embed_explained", "percent_y_embed_explained", "percent_unembed_explained", "epoch"]
    return keys


# --------------------------------------------------------------------------------------------------
# One checkpoint
# --------------------------------------------------------------------------------------------------
def _default_chunk_size(n: int, hidden: int) -> int:
    """Pairs per chunk: ~``_CHUNK_BYTES`` per ``[chunk, max(n, hidden)]`` float64 block."""
    return max(256, _CHUNK_BYTES // (8 * max(n, hidden)))


def _chunks(index: torch.Tensor, size: int) -> Iterable[torch.Tensor]:
    for start in range(0, len(index), size):
        yield index[start:start + size]


def _train_blocks(model, H, U64, labels, train_idx, chunk_size, store):
    """``(labels, centred logits, hidden readout)`` ``[chunk]``, ``[chunk, n]``, ``[chunk, n]`` over the
    training pairs: from ``store`` when pass 1 kept them, else recomputed chunk by chunk."""
    if store is not None:
        yield from store
        return
    for idx in _chunks(train_idx, chunk_size):
        h = H[idx]
        logits = model.logits_from_hidden(h, idx).to(torch.float64)
        yield labels[idx], logits - logits.mean(-1, keepdim=True), h.to(torch.float64) @ U64.T


def shifted_cross_entropy_sums(base: torch.Tensor, labels: torch.Tensor, tables: torch.Tensor) -> torch.Tensor:
    """``[J]``: ``sum_p cross_entropy(base[p] - tables[j, labels[p]], labels[p])`` for every ``j``.

    ``base [m, n]``, ``labels [m]``, ``tables [J, n, n]`` (float64).  The excluded losses are of this
    form (logits minus a component that depends on the pair through its product only).  Since
    ``exp(x - y) = exp(x) exp(-y)``, the ``J`` log-sum-exps of each row become one ``exp`` per entry
    and a batched matrix product over the rows grouped by label; rows whose sum would underflow
    (shifted logits more than ~690 apart) are redone directly.
    """
    return _ShiftedTables(tables).cross_entropy_sums(base, labels)


def label_slots(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Group rows by label: row ``i`` goes to slot ``(group[i], rank[i])`` of a padded
    ``[len(uniq), counts.max(), ...]`` tensor.  ``labels [m]`` -> ``(group [m], rank [m], uniq, counts)``."""
    order = torch.argsort(labels, stable=True)
    uniq, counts = torch.unique_consecutive(labels[order], return_counts=True)
    sorted_group = torch.repeat_interleave(torch.arange(len(uniq), device=labels.device), counts)
    sorted_rank = torch.arange(len(labels), device=labels.device) - (torch.cumsum(counts, 0) - counts)[sorted_group]
    group, rank = torch.empty_like(order), torch.empty_like(order)
    group[order], rank[order] = sorted_group, sorted_rank
    return group, rank, uniq, counts


class _ShiftedTables:
    """``tables [J, n, n]`` prepared once for :func:`shifted_cross_entropy_sums` over many row blocks."""

    def __init__(self, tables: torch.Tensor):
        self.tables = tables
        self.shift = tables.min(2).values                                   # [J, n]
        self.exp_tables = torch.exp(self.shift[:, :, None] - tables)        # [J, n, n], in (0, 1]
        self.diag_minus_shift = tables.diagonal(dim1=1, dim2=2) - self.shift  # [J, n]

    def cross_entropy_sums(self, base: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        n_rows, n = base.shape
        if n_rows == 0:
            return base.new_zeros(self.tables.shape[0])
        group, rank, uniq, counts = label_slots(labels)
        row_max = base.max(1).values                                        # [m]
        padded = base.new_empty((len(uniq), int(counts.max()), n))          # unused slots stay garbage:
        padded[group, rank] = torch.exp(base - row_max[:, None])            # rows of a matmul are independent
        sums = torch.bmm(padded, self.exp_tables[:, uniq, :].permute(1, 2, 0))[group, rank]   # [m, J]
        # loss = logsumexp_c(x_c - T_gc) - (x_g - T_gg), logsumexp = row_max - shift_g + log(sums)
        offset = (row_max - base.gather(1, labels[:, None])[:, 0])[:, None] + self.diag_minus_shift[:, labels].T
        losses = offset + torch.log(sums)
        tiny = sums < 1e-290
        if tiny.any():
            rows, jobs = tiny.nonzero(as_tuple=True)
            shifted = base[rows] - self.tables[jobs, labels[rows]]
            losses[rows, jobs] = torch.logsumexp(shifted, 1) - shifted.gather(1, labels[rows, None])[:, 0]
        return losses.sum(0)


@dataclasses.dataclass
class CheckpointAggregates:
    """What a checkpoint's metrics need from its model, made by :func:`checkpoint_aggregates`: pass 1
    over all pairs (``[n, k]`` sums, per-pair losses) and the float64 weights read by the metrics.
    Every metric is computed from it, by :func:`checkpoint_metrics` (one) or by
    :func:`rep_theory.analysis.metrics_batch.metrics_from_aggregates` (several together)."""

    pair_loss: torch.Tensor       # [pair] cross-entropy of the model's logits
    pair_correct: torch.Tensor    # [pair] bool
    h_left: torch.Tensor          # [n, hidden] hidden layer summed over the pairs with each a
    h_right: torch.Tensor         # [n, hidden] ... with each b
    h_prod: torch.Tensor          # [n, hidden] ... with each product ab
    h_sq: torch.Tensor            # ||H||^2
    l_prod: torch.Tensor          # [n, n] centred logits summed over the pairs with each product
    l_sq: torch.Tensor            # ||L_centred||^2
    store: list | None            # training pairs' (labels, centred logits, readout) chunks when kept
    U64: torch.Tensor             # [n, hidden] unembedding(float64)
    E_left: torch.Tensor          # [n, k] embedding_left(float64)
    E_right: torch.Tensor         # [n, k] embedding_right(float64)
    sum_sq_weights: float         # sum of the squares of every parameter
    H: torch.Tensor | None        # [pair, hidden] hidden layer (float64 for the MLPs, else model dtype),
                                  # kept for pass 2 when store is None


def pair_mask(pairs: torch.Tensor, bases: IrrepBases) -> torch.Tensor:
    """``[pair]`` bool on ``bases.device``: True at the pair indices ``pairs``, a 1-d integer tensor of
    distinct indices in ``[0, n^2)``, not empty (the training pairs; the rest may be empty)."""
    n_pairs = bases.n * bases.n
    if not isinstance(pairs, torch.Tensor):
        raise TypeError(f"train_pairs must be a 1-d LongTensor of pair indices, got {type(pairs).__name__}")
    if pairs.ndim != 1 or pairs.dtype.is_floating_point or pairs.dtype.is_complex or pairs.dtype == torch.bool:
        raise ValueError(f"train_pairs must be a 1-d integer tensor of pair indices a*n + b, got shape "
                         f"{tuple(pairs.shape)} and dtype {pairs.dtype}")
    if pairs.numel() == 0:
        raise ValueError("train_pairs is empty: the training metrics need at least one training pair")
    low, high = int(pairs.min()), int(pairs.max())
    if low < 0 or high >= n_pairs:
        raise ValueError(f"train_pairs must lie in [0, {n_pairs}) for {bases.group.name}, got values from {low} to {high}")
    mask = torch.zeros(n_pairs, dtype=torch.bool, device=bases.device)
    mask[pairs.to(bases.device)] = True
    if int(mask.sum()) != pairs.numel():
        raise ValueError(f"train_pairs repeats pair indices ({pairs.numel()} given, {int(mask.sum())} distinct)")
    return mask


def _hidden_for_metrics(model, E_left: torch.Tensor, E_right: torch.Tensor) -> torch.Tensor:
    """``[pair, hidden]``: from the float64 embeddings where the model's hidden layer is a function of
    them (the MLPs, ``hidden_from_embeddings``), else its forward's hidden layer in the model's dtype."""
    from_embeddings = getattr(model, "hidden_from_embeddings", None)
    H = from_embeddings(E_left, E_right) if callable(from_embeddings) else None
    return model.hidden_all_pairs().detach() if H is None else H


def checkpoint_aggregates(model, bases: IrrepBases, *, train_mask: torch.Tensor,
                          chunk_size: int | None = None) -> CheckpointAggregates:
    """Pass 1 over all pairs of ``model``, in chunks of whole rows ``a`` (``train_mask [pair]`` bool).

    Call under ``torch.inference_mode()``.  ``evaluate_run`` runs it in loader threads, overlapping
    the metrics of the previous checkpoints; the numbers do not depend on where it runs.
    """
    n, dev = bases.n, bases.device
    E_left = model.embedding_left(torch.float64).detach().to(dev)     # [n, k]
    E_right = model.embedding_right(torch.float64).detach().to(dev)   # [n, k]
    H = _hidden_for_metrics(model, E_left, E_right).to(dev)           # [pair, hidden]
    if H.shape[0] != n * n:
        raise ValueError(f"hidden_all_pairs() returned {H.shape[0]} rows; expected n^2 = {n * n} "
                         f"(group {bases.group.name})")
    d_hidden = H.shape[1]
    if chunk_size is None:
        chunk_size = _default_chunk_size(n, d_hidden)
    U64 = model.unembedding(torch.float64).detach().to(dev)           # [n, hidden]
    # keep the training pairs' centred logits and hidden readout for pass 2 when they fit
    store = [] if 2 * 8 * int(train_mask.sum()) * n <= _STORE_BYTES else None
    labels = bases.product
    rows_per_chunk = max(1, chunk_size // n)
    parts: dict[str, list[torch.Tensor]] = {key: [] for key in (
        "pair_loss", "pair_correct", "h_left", "h_right", "h_prod", "h_sq", "l_prod", "l_sq")}
    for a0 in range(0, n, rows_per_chunk):  # per chunk, then added up (a small group is one chunk)
        a1 = min(n, a0 + rows_per_chunk)
        lo, hi = a0 * n, a1 * n
        h = H[lo:hi]
        h64 = h.to(torch.float64)
        h_rows = h64.view(a1 - a0, n, d_hidden)
        parts["h_left"].append(h_rows.sum(1))
        parts["h_right"].append(h_rows.sum(0))
        parts["h_prod"].append(bases.sum_by_product(h64, a0))
        parts["h_sq"].append(torch.linalg.vector_norm(h64).square())
        logits = model.logits_from_hidden(h, torch.arange(lo, hi, device=dev)).to(torch.float64)  # [chunk, n]
        chunk_labels = labels[lo:hi]
        parts["pair_loss"].append(F.cross_entropy(logits, chunk_labels, reduction="none"))
        parts["pair_correct"].append(logits.argmax(-1) == chunk_labels)
        centred = logits - logits.mean(-1, keepdim=True)
        parts["l_sq"].append(torch.linalg.vector_norm(centred).square())
        parts["l_prod"].append(bases.sum_by_product(centred, a0))
        if store is not None:
            keep = train_mask[lo:hi]
            store.append((chunk_labels[keep], centred[keep], h64[keep] @ U64.T))
    concat = {key: parts[key][0] if len(parts[key]) == 1 else torch.cat(parts[key])
              for key in ("pair_loss", "pair_correct", "h_left")}
    added = {key: functools.reduce(operator.add, parts[key]) for key in ("h_right", "h_prod", "h_sq", "l_prod", "l_sq")}
    return CheckpointAggregates(
        **concat, **added, store=store, U64=U64,
        E_left=E_left, E_right=E_right,
        sum_sq_weights=float(sum(torch.linalg.vector_norm(p.detach(), dtype=torch.float64).square()
                                 for p in model.parameters())),
        H=H if store is None else None)


def _excluded_loss_sums(model, bases: IrrepBases, H: torch.Tensor, U64: torch.Tensor, train_idx: torch.Tensor,
                        chunk_size: int, store, tables: dict[tuple[str, str | None], torch.Tensor]) -> dict:
    """Pass 2 over the training pairs: ``{(kind, name): sum of cross-entropies}``.

    ``tables[(kind, name)]`` ``[n, n]`` is subtracted from the hidden readout (``kind == "h"``) or the
    centred logits (``"l"``) of each pair, by its product.  Tables are batched to bound memory.
    """
    n, labels = bases.n, bases.product
    per_batch = max(1, _READOUT_BYTES // (8 * n * n))
    keys = list(tables)
    sums = {}
    for start in range(0, len(keys), per_batch):
        batch = keys[start:start + per_batch]
        by_kind = {}
        for kind in ("h", "l"):
            names = [key for key in batch if key[0] == kind]
            if names:
                by_kind[kind] = (names, _ShiftedTables(torch.stack([tables[key] for key in names])))
        for lab, centred, readout in _train_blocks(model, H, U64, labels, train_idx, chunk_size, store):
            for kind, (names, shifted) in by_kind.items():
                values = shifted.cross_entropy_sums(readout if kind == "h" else centred, lab)
                for key, value in zip(names, values):
                    sums[key] = sums.get(key, 0.0) + value
    return sums


def checkpoint_metrics(model, bases: IrrepBases | Group | str, *, train_pairs: torch.Tensor,
                       key_irreps: Sequence[str] | None = None, key_threshold: float = KEY_THRESHOLD,
                       epoch: float | None = None, chunk_size: int | None = None) -> dict[str, float]:
    """Every metric of one model, keyed and ordered as the paper's ``summary_metrics.json``.

    Parameters
    ----------
    model
        Any model of :mod:`rep_theory.training.models`: uses ``hidden_from_embeddings`` (else
        ``hidden_all_pairs()``), ``logits_from_hidden``,
        ``embedding_left/right(float64)``, ``unembedding(float64)`` and ``parameters()``.
    bases
        :class:`IrrepBases` (or a group / spec, turned into one).
    train_pairs
        ``[n_train]`` LongTensor of training pair indices (package order); the rest is the test set.
    key_irreps
        Irreps the ``total_*`` and ``percent_*_explained`` metrics use; ``None``: this model's own,
        i.e. :func:`select_key_irreps` of its similarities with ``key_threshold``.
    epoch
        Stored as ``epoch`` (float) when given.
    chunk_size
        Pairs per chunk (default: ~64 MiB float64 blocks), bounding the memory beyond the hidden layer.
    """
    if not isinstance(bases, IrrepBases):
        bases = IrrepBases.for_group(bases)
    n, dev = bases.n, bases.device
    n_pairs = n * n
    if not callable(getattr(model, "hidden_all_pairs", None)):
        raise TypeError(f"model must be one of rep_theory.training.models' networks (with hidden_all_pairs), "
                        f"got {type(model).__name__}")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if not math.isfinite(key_threshold):
        raise ValueError(f"key_threshold must be a finite number, got {key_threshold}")
    with torch.inference_mode():
        train_mask = pair_mask(train_pairs, bases)
        train_idx = torch.arange(n_pairs, device=dev)[train_mask]
        agg = checkpoint_aggregates(model, bases, train_mask=train_mask, chunk_size=chunk_size)
        U64, E_left, E_right = agg.U64, agg.E_left, agg.E_right
        if chunk_size is None:
            chunk_size = _default_chunk_size(n, U64.shape[1])

        has_test = bool((~train_mask).any())
        out: dict[str, float] = {
            "train_loss": float(agg.pair_loss[train_mask].mean()),
            "test_loss": float(agg.pair_loss[~train_mask].mean()) if has_test else float("nan"),
            "train_acc": float(agg.pair_correct[train_mask].double().mean()),
            "test_acc": float(agg.pair_correct[~train_mask].double().mean()) if has_test else float("nan"),
            "all_loss": float(agg.pair_loss.mean()),
        }

        # Centre the hidden layer over pairs: every aggregate holds n pairs.
        h_mean = agg.h_left.sum(0) / n_pairs                               # [hidden]
        pair_total = n * (agg.h_sq - n_pairs * h_mean.pow(2).sum())        # n ||H_centred||^2
        targets = torch.arange(n, device=dev)
        sims: dict[str, torch.Tensor] = {}
        tables: dict[tuple[str, str | None], torch.Tensor] = {}   # [n, n] restricted logits by product
        hidden_proj: dict[str, torch.Tensor] = {}                 # [n, hidden] projected hidden by product
        for name in bases.names:
            Q = bases.bases[name]
            if name != "trivial":
                K = product_kernel(bases.characters[name], bases.product_index)
                sims[name] = logit_similarity(agg.l_prod, K, logits_sq=agg.l_sq)
                # the component of vec(L) along T: sim * |L| * T / |T|, with |T| = sqrt(n) |K|
                tables[("l", name)] = sims[name] * agg.l_sq.sqrt() / (math.sqrt(n) * K.pow(2).sum().sqrt()) * K
                out[f"logit_{name}_rep_trace_similarity"] = float(sims[name])
                out[f"logit_excluded_loss_{name}_rep"] = math.nan                 # filled after pass 2
                out[f"logit_restricted_loss_{name}_rep"] = float(F.cross_entropy(tables[("l", name)], targets))
            out[f"percent_x_embed_{name}_rep"] = float(fve(E_left, Q))
            out[f"percent_y_embed_{name}_rep"] = float(fve(E_right, Q))
            out[f"percent_unembed_{name}_rep"] = float(fve(U64, Q))
            parts = [float(fve(x - n * h_mean, Q, total_sq=pair_total)) for x in (agg.h_left, agg.h_right, agg.h_prod)]
            for part, value in zip(("x", "y", "xy"), parts):
                out[f"percent_hidden_{part}_{name}_rep"] = value
            out[f"total_percent_hidden_{name}_rep"] = sum(parts)
            hidden_proj[name] = project(agg.h_prod, Q) / n
            tables[("h", name)] = hidden_proj[name] @ U64.T
            out[f"hidden_excluded_loss_{name}_rep"] = math.nan                    # filled after pass 2
            out[f"hidden_restricted_loss_{name}_rep"] = float(F.cross_entropy(tables[("h", name)], targets))

        if key_irreps is None:
            key_irreps = select_key_irreps({k: float(v) for k, v in sims.items()}, threshold=key_threshold)
        key_irreps = list(key_irreps)
        unknown = [k for k in key_irreps if k not in sims]
        if unknown:
            raise ValueError(f"key irreps {unknown} are not non-trivial irreps of {bases.group.name}; "
                             f"expected a subset of {list(sims)}")
        tables[("l", None)] = sum((tables[("l", k)] for k in key_irreps), torch.zeros((n, n), dtype=torch.float64, device=dev))
        tables[("h", None)] = sum((hidden_proj[k] for k in key_irreps), torch.zeros_like(agg.h_prod)) @ U64.T

        excluded = _excluded_loss_sums(model, bases, agg.H, U64, train_idx, chunk_size, agg.store, tables)
        n_train = max(1, len(train_idx))
        for name in bases.names:
            if name != "trivial":
                out[f"logit_excluded_loss_{name}_rep"] = float(excluded[("l", name)] / n_train)
            out[f"hidden_excluded_loss_{name}_rep"] = float(excluded[("h", name)] / n_train)
        out["percent_logits_explained"] = float(sum(float(s) ** 2 for s in sims.values()))
        out["total_logit_excluded_loss"] = float(excluded[("l", None)] / n_train)
        out["total_logit_restricted_loss"] = float(F.cross_entropy(tables[("l", None)], targets))
        out["total_hidden_excluded_loss"] = float(excluded[("h", None)] / n_train)
        out["total_hidden_restricted_loss"] = restricted = float(F.cross_entropy(tables[("h", None)], targets))
        out["test_loss_restricted_loss_ratio"] = out["test_loss"] / restricted if restricted > 0 else math.inf
        out["sum_of_squared_weights"] = agg.sum_sq_weights
        out["percent_hidden_explained"] = sum(out[f"total_percent_hidden_{k}_rep"] for k in key_irreps)
        out["percent_hidden_xy_explained"] = sum(out[f"percent_hidden_xy_{k}_rep"] for k in key_irreps)
        for part in ("x_embed", "y_embed", "unembed"):
            out[f"percent_{part}_explained"] = sum(out[f"percent_{part}_{k}_rep"] for k in key_irreps)
        if epoch is not None:
            out["epoch"] = float(epoch)
    return out
