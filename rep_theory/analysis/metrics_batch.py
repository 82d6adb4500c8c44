"""The metrics of several checkpoints of one run at once: :func:`checkpoint_metrics_many`.

Evaluating a run means ~600-700 checkpoints of the same architecture on the same group.  For small
groups (S4: 576 pairs) :func:`rep_theory.analysis.metrics.checkpoint_metrics` spends most of its
time in per-call overhead (hundreds of small float64 ops, a Python loop over the irreps), not in
arithmetic.  Here the float64 part runs on a leading ``ckpt`` axis of ``k`` checkpoints: one op per
metric for all ``k``.

Kept per checkpoint, on purpose, so that the numbers are the one-by-one path's:

* the model's float32 computation (hidden layer on all pairs; logits in the same row chunks;
  embeddings, unembedding) through the same model methods: a batched float32 matmul may round
  differently, which would move the metrics by ~1e-7;
* the squared norms of the hidden layer and the logits (summed chunk by chunk as there) and the
  matmul of the excluded losses (one ``bmm`` per checkpoint; a 4-d ``matmul`` was seen to round
  differently): the excluded losses are small differences of O(1) terms, so a 1-ulp change in
  their tables moves a late-training loss by ~1e-10 relative.

Everything else is float64 with another summation order: the metrics agree with the one-by-one
path to ~1e-15 relative (``tests/test_metrics_batch.py`` checks every metric to 1e-10).

Memory: ``k`` checkpoints hold ``[k, pair, hidden + 4 n]`` float64 blocks; :func:`ckpt_batch_size`
picks ``k`` within a budget and returns 0 when even one checkpoint does not fit, or when the
one-by-one path would recompute the training pairs' logits in its second pass (large groups: use
the chunked one-by-one path, which also wins there since arithmetic dominates).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

from rep_theory.analysis.bases import IrrepBases
from rep_theory.analysis.metrics import _CHUNK_BYTES, _STORE_BYTES, KEY_THRESHOLD, label_slots, product_kernel

__all__ = ["checkpoint_metrics_many", "ckpt_batch_size", "MAX_CKPT_BATCH"]

MAX_CKPT_BATCH = 64
"""Checkpoints per pass at most (beyond this the overhead is already amortised)."""

_BATCH_BYTES = 1 << 28  # float64 working set of one pass, all k checkpoints together


def ckpt_batch_size(n: int, hidden: int, n_train: int, *, budget: int = _BATCH_BYTES,
                    limit: int = MAX_CKPT_BATCH) -> int:
    """Checkpoints per pass for a group of order ``n`` and hidden width ``hidden``; 0: use the
    one-by-one path (a checkpoint does not fit ``budget``, or the one-by-one path would not keep
    the training pairs' logits between its passes, see ``metrics._STORE_BYTES``)."""
    if 2 * 8 * n_train * n > _STORE_BYTES:
        return 0
    per_ckpt = 8 * n * n * (hidden + 4 * n) + 16 * n_train * n
    return max(0, min(limit, budget // per_ckpt))


def _forward(model, bases: IrrepBases, chunk_size: int | None) -> dict[str, torch.Tensor]:
    """The model-dependent part of one checkpoint, computed exactly as ``checkpoint_metrics`` does.

    The model's float32 values (hidden layer; logits in the same row chunks, since a matmul's
    rounding may depend on its shape) are bit for bit the one-by-one path's, and so are the squared
    norms, summed chunk by chunk as ``metrics._aggregate_pairs`` sums them: the logit similarities
    scale the tables of the excluded losses, which are small differences of O(1) terms and would
    amplify a 1-ulp difference there to ~1e-10 of a late-training loss.
    """
    n, dev = bases.n, bases.device
    H = model.hidden_all_pairs().detach().to(dev)
    if H.shape[0] != n * n:
        raise ValueError(f"hidden_all_pairs() returned {H.shape[0]} rows; expected n^2 = {n * n} "
                         f"(group {bases.group.name})")
    if chunk_size is None:
        chunk_size = max(256, _CHUNK_BYTES // (8 * max(n, H.shape[1])))
    rows_per_chunk = max(1, chunk_size // n)
    H64 = H.to(torch.float64)
    logits = torch.empty((n * n, n), dtype=torch.float64, device=dev)
    centred = torch.empty_like(logits)
    h_sq = torch.zeros((), dtype=torch.float64, device=dev)
    l_sq = torch.zeros((), dtype=torch.float64, device=dev)
    for a0 in range(0, n, rows_per_chunk):
        lo, hi = a0 * n, min(n, a0 + rows_per_chunk) * n
        chunk = model.logits_from_hidden(H[lo:hi], torch.arange(lo, hi, device=dev)).to(torch.float64)
        logits[lo:hi] = chunk
        centred[lo:hi] = chunk - chunk.mean(-1, keepdim=True)
        h_sq += torch.linalg.vector_norm(H64[lo:hi]).square()
        l_sq += torch.linalg.vector_norm(centred[lo:hi]).square()
    return {"H": H64, "logits": logits, "centred": centred, "h_sq": h_sq, "l_sq": l_sq,
            "U64": model.unembedding().detach().to(dev, torch.float64),
            "E_left": model.embedding_left().detach().to(dev, torch.float64),
            "E_right": model.embedding_right().detach().to(dev, torch.float64),
            "ssw": torch.as_tensor(float(sum(p.detach().to(torch.float64).pow(2).sum() for p in model.parameters())),
                                   dtype=torch.float64)}


def _sum_by_product(x: torch.Tensor, bases: IrrepBases) -> torch.Tensor:
    """``[k, n, c]``: ``x [k, pair, c]`` summed over the pairs with each product (``IrrepBases.sum_by_product``
    with a checkpoint axis: a gather along ``b = a^-1 g``, then a sum over ``a``)."""
    k, _, c = x.shape
    n = bases.n
    index = bases.right_factor[None, :, :, None].expand(k, n, n, c)
    return x.view(k, n, n, c).gather(2, index).sum(1)


def _fve(x: torch.Tensor, Q: torch.Tensor, total_sq: torch.Tensor | None = None) -> torch.Tensor:
    """``[k]``: :func:`rep_theory.analysis.bases.fve` of each ``x [k, n, c]``."""
    num = torch.matmul(Q.T, x).pow(2).sum((1, 2))
    return num / (x.pow(2).sum((1, 2)) if total_sq is None else total_sq)


def _mean_ce(tables: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``[k]``: ``F.cross_entropy(tables[i], targets)`` for ``tables [k, n, n]``."""
    k, n, _ = tables.shape
    return F.cross_entropy(tables.reshape(k * n, n), targets.repeat(k), reduction="none").view(k, n).mean(1)


def _shifted_ce_sums(base: torch.Tensor, labels: torch.Tensor, tables: torch.Tensor) -> torch.Tensor:
    """``[k, J]``: ``metrics.shifted_cross_entropy_sums(base[i], labels, tables[i])`` for every ``i``.

    ``base [k, m, n]``, ``labels [m]`` (shared), ``tables [k, J, n, n]``; the same algorithm with a
    leading checkpoint axis (rows grouped by label once, one batched matmul)."""
    k, m, n = base.shape
    if m == 0:
        return base.new_zeros((k, tables.shape[1]))
    shift = tables.min(3).values                                             # [k, J, n]
    exp_tables = torch.exp(shift[..., None] - tables)                        # [k, J, n, n], in (0, 1]
    diag_minus_shift = tables.diagonal(dim1=2, dim2=3) - shift               # [k, J, n]
    group, rank, uniq, counts = label_slots(labels)
    row_max = base.max(2).values                                             # [k, m]
    padded = base.new_empty((k, len(uniq), int(counts.max()), n))            # unused slots stay garbage:
    padded[:, group, rank] = torch.exp(base - row_max[..., None])            # matmul rows are independent
    right = exp_tables[:, :, uniq, :].permute(0, 2, 3, 1)                   # [k, U, n, J]
    # one bmm per checkpoint, as the one-by-one path: a 4-d matmul may round differently, and each
    # loss is a small difference of O(1) terms, so 1 ulp in a sum is ~1e-10 of a late-training loss
    sums = torch.stack([torch.bmm(padded[i], right[i]) for i in range(k)])[:, group, rank]  # [k, m, J]
    offset = (row_max - base.gather(2, labels[None, :, None].expand(k, m, 1))[..., 0])[..., None]
    losses = offset + diag_minus_shift[:, :, labels].transpose(1, 2) + torch.log(sums)
    tiny = sums < 1e-290
    if tiny.any():  # sums that underflowed: redo those entries directly
        ck, rows, jobs = tiny.nonzero(as_tuple=True)
        shifted = base[ck, rows] - tables[ck, jobs, labels[rows]]
        losses[ck, rows, jobs] = torch.logsumexp(shifted, 1) - shifted.gather(1, labels[rows, None])[:, 0]
    return losses.sum(1)


def checkpoint_metrics_many(model, states: Sequence[Mapping[str, torch.Tensor]], bases: IrrepBases, *,
                            train_pairs: torch.Tensor, key_irreps: Sequence[str] | None = None,
                            key_threshold: float = KEY_THRESHOLD, epochs: Sequence[float] | None = None,
                            chunk_size: int | None = None) -> list[dict[str, float]]:
    """``[checkpoint_metrics(model holding states[i], ...) for i]``, computed together.

    ``model``: a model of the run's architecture on ``bases.device``; each state dict is loaded
    into it in turn (it holds the last one afterwards).  ``epochs[i]`` becomes row ``i``'s
    ``epoch``.  Other arguments as :func:`rep_theory.analysis.metrics.checkpoint_metrics`.
    """
    if epochs is not None and len(epochs) != len(states):
        raise ValueError(f"got {len(states)} states but {len(epochs)} epochs")
    if not states:
        return []
    n, dev = bases.n, bases.device
    n_pairs = n * n
    f64 = dict(dtype=torch.float64, device=dev)
    with torch.inference_mode():
        train_mask = torch.zeros(n_pairs, dtype=torch.bool, device=dev)
        train_mask[train_pairs.to(dev)] = True
        train_idx = torch.arange(n_pairs, device=dev)[train_mask]
        has_test = bool((~train_mask).any())
        parts = []
        for state in states:
            model.load_state_dict(state)
            parts.append(_forward(model, bases, chunk_size))
        stacked = {key: torch.stack([p[key] for p in parts]) for key in parts[0]}   # [k, ...]
        del parts
        k = len(states)
        H, centred, U64 = stacked["H"], stacked["centred"], stacked["U64"]
        h_sq, l_sq, E_left, E_right = stacked["h_sq"], stacked["l_sq"], stacked["E_left"], stacked["E_right"]
        ssw = stacked["ssw"].tolist()
        # pass 1 (metrics._aggregate_pairs) for all k at once; per-row values are the same ops
        labels = bases.product
        logits = stacked.pop("logits")
        pair_loss = F.cross_entropy(logits.reshape(k * n_pairs, n), labels.repeat(k), reduction="none").view(k, n_pairs)
        pair_correct = (logits.argmax(-1) == labels).double()
        del logits
        h_rows = H.view(k, n, n, -1)
        h_left, h_right = h_rows.sum(2), h_rows.sum(1)                             # [k, n, hidden]
        h_prod, l_prod = _sum_by_product(H, bases), _sum_by_product(centred, bases)
        train_labels = labels[train_idx]
        train_centred = centred[:, train_idx]                                      # [k, m, n]
        readout = torch.matmul(H[:, train_idx], U64.transpose(1, 2))              # [k, m, n]
        del stacked, H, centred, h_rows
        cols: dict[str, torch.Tensor] = {
            "train_loss": pair_loss[:, train_mask].mean(1),
            "test_loss": pair_loss[:, ~train_mask].mean(1) if has_test else torch.full((k,), math.nan, **f64),
            "train_acc": pair_correct[:, train_mask].mean(1),
            "test_acc": pair_correct[:, ~train_mask].mean(1) if has_test else torch.full((k,), math.nan, **f64),
            "all_loss": pair_loss.mean(1),
        }

        h_mean = h_left.sum(1, keepdim=True) / n_pairs                           # [k, 1, hidden]
        pair_total = n * (h_sq - n_pairs * h_mean.pow(2).sum((1, 2)))           # [k]
        l_norm = l_sq.sqrt()
        targets = torch.arange(n, device=dev)
        sims, l_tables, h_proj, h_tables = {}, [], [], []
        for name in bases.names:
            Q = bases.bases[name]
            if name != "trivial":
                K = product_kernel(bases.characters[name], bases.product_index)
                t_norm = math.sqrt(n) * K.pow(2).sum().sqrt()
                # constant logits carry no irrep (logit_similarity's special case)
                sim = torch.where(l_norm == 0, torch.zeros_like(l_norm),
                                  (l_prod * K).sum((1, 2)) / (l_norm * t_norm))
                sims[name] = sim
                table = (sim * l_norm / t_norm)[:, None, None] * K                # [k, n, n]
                l_tables.append(table)
                cols[f"logit_{name}_rep_trace_similarity"] = sim
                cols[f"logit_excluded_loss_{name}_rep"] = None                   # filled after pass 2
                cols[f"logit_restricted_loss_{name}_rep"] = _mean_ce(table, targets)
            cols[f"percent_x_embed_{name}_rep"] = _fve(E_left, Q)
            cols[f"percent_y_embed_{name}_rep"] = _fve(E_right, Q)
            cols[f"percent_unembed_{name}_rep"] = _fve(U64, Q)
            parts = [_fve(x - n * h_mean, Q, pair_total) for x in (h_left, h_right, h_prod)]
            for part, value in zip(("x", "y", "xy"), parts):
                cols[f"percent_hidden_{part}_{name}_rep"] = value
            cols[f"total_percent_hidden_{name}_rep"] = parts[0] + parts[1] + parts[2]
            proj = torch.matmul(Q, torch.matmul(Q.T, h_prod)) / n                # [k, n, hidden]
            h_proj.append(proj)
            h_tables.append(torch.matmul(proj, U64.transpose(1, 2)))
            cols[f"hidden_excluded_loss_{name}_rep"] = None                      # filled after pass 2
            cols[f"hidden_restricted_loss_{name}_rep"] = _mean_ce(h_tables[-1], targets)

        # key irreps: given, or each checkpoint's own (as the one-by-one path selects them)
        nontrivial = [name for name in bases.names if name != "trivial"]
        sim_rows = torch.stack([sims[name] for name in nontrivial], 1).tolist() if nontrivial else [[]] * k
        if key_irreps is None:
            keys_of = [[name for name, s in zip(nontrivial, row) if s > key_threshold] for row in sim_rows]
        else:
            keys_of = [list(key_irreps)] * k
            unknown = [name for name in key_irreps if name not in sims]
            if unknown:
                raise ValueError(f"key irreps {unknown} are not non-trivial irreps of {bases.group.name}; "
                                 f"expected a subset of {list(sims)}")
        # the totals sum the key irreps' tables one after another in the one-by-one path's order
        # (the given key order, else irrep order), so they round alike; a 0/1 weight per
        # checkpoint selects each one's own key irreps (adding 0 * x is exact)
        order = list(key_irreps) if key_irreps is not None else list(bases.names)
        weight = {name: torch.tensor([float(name in keys) for keys in keys_of], **f64)[:, None, None]
                  for name in order}
        l_table_of = dict(zip(nontrivial, l_tables))
        h_proj_of = dict(zip(bases.names, h_proj))
        total_l = torch.zeros((k, n, n), **f64)
        total_h = torch.zeros_like(h_prod)
        for name in order:
            if name in l_table_of:
                total_l = total_l + (l_table_of[name] if key_irreps is not None else weight[name] * l_table_of[name])
            total_h = total_h + (h_proj_of[name] if key_irreps is not None else weight[name] * h_proj_of[name])
        total_h = torch.matmul(total_h, U64.transpose(1, 2))
        l_all = torch.stack([*l_tables, total_l], 1)                             # [k, I, n, n]
        h_all = torch.cat([torch.stack(h_tables, 1), total_h[:, None]], 1)       # [k, I + 1, n, n]

        # pass 2: excluded losses on the training pairs
        n_train = max(1, len(train_idx))
        l_excl = _shifted_ce_sums(train_centred, train_labels, l_all) / n_train  # [k, I]
        h_excl = _shifted_ce_sums(readout, train_labels, h_all) / n_train        # [k, I + 1]
        for j, name in enumerate(nontrivial):
            cols[f"logit_excluded_loss_{name}_rep"] = l_excl[:, j]
        for j, name in enumerate(bases.names):
            cols[f"hidden_excluded_loss_{name}_rep"] = h_excl[:, j]
        cols["percent_logits_explained"] = (torch.stack([sims[s] for s in nontrivial], 1).pow(2).sum(1)
                                            if nontrivial else torch.zeros(k, **f64))
        cols["total_logit_excluded_loss"] = l_excl[:, -1]
        cols["total_logit_restricted_loss"] = _mean_ce(total_l, targets)
        cols["total_hidden_excluded_loss"] = h_excl[:, -1]
        cols["total_hidden_restricted_loss"] = _mean_ce(total_h, targets)

        names = list(cols)
        values = torch.stack([cols[c] for c in names], 1).tolist()              # one host transfer
    rows = []
    for i in range(k):
        out = dict(zip(names, values[i]))
        restricted = out["total_hidden_restricted_loss"]
        row = dict(out)  # checkpoint_metrics' key order: these, then its derived values below
        row["test_loss_restricted_loss_ratio"] = out["test_loss"] / restricted if restricted > 0 else math.inf
        row["sum_of_squared_weights"] = ssw[i]
        keys = keys_of[i]
        row["percent_hidden_explained"] = sum(out[f"total_percent_hidden_{s}_rep"] for s in keys)
        row["percent_hidden_xy_explained"] = sum(out[f"percent_hidden_xy_{s}_rep"] for s in keys)
        for part in ("x_embed", "y_embed", "unembed"):
            row[f"percent_{part}_explained"] = sum(out[f"percent_{part}_{s}_rep"] for s in keys)
        if epochs is not None:
            row["epoch"] = float(epochs[i])
        rows.append(row)
    return rows
