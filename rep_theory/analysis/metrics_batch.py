"""The metrics of several checkpoints of one run at once: :func:`checkpoint_metrics_many`.

Evaluating a run means ~600-700 checkpoints of the same architecture on the same group.  For small
groups (S4: 576 pairs) :func:`rep_theory.analysis.metrics.checkpoint_metrics` spends most of its
time in per-call overhead (hundreds of small float64 ops, a Python loop over the irreps), not in
arithmetic.  Here that part runs on a leading ``ckpt`` axis of ``k`` checkpoints: one op per
metric for all ``k``.

Each checkpoint's pass 1 over all pairs is the one-by-one path's own
(:func:`rep_theory.analysis.metrics.checkpoint_aggregates`: the model's float32 forward, the
per-pair losses, the ``[n, k]`` sums, the squared norms and the training pairs' readout), so those
are bit for bit the same; ``evaluate_run`` runs it in loader threads, overlapping the metrics of
the checkpoints before.  The matmul of the excluded losses also stays one ``bmm`` per checkpoint
(a 4-d ``matmul`` was seen to round differently): the excluded losses are small differences of
O(1) terms, so a 1-ulp change in their tables moves a late-training loss by ~1e-10 relative.

Everything else is float64 with another summation order: the metrics agree with the one-by-one
path to ~1e-15 relative (``tests/test_metrics_batch.py`` checks every metric to 1e-10).

Memory: a checkpoint's aggregates are ``[n, hidden]`` sums plus its training pairs' ``[n_train, n]``
centred logits and readout; :func:`ckpt_batch_size` picks ``k`` within a budget and returns 0 when
the one-by-one path would not keep those between its passes (large groups: use the chunked
one-by-one path, which also wins there since arithmetic dominates).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

from rep_theory.analysis.bases import IrrepBases
from rep_theory.analysis.metrics import (_STORE_BYTES, KEY_THRESHOLD, CheckpointAggregates, checkpoint_aggregates,
                                         label_slots, pair_mask, product_kernel)

__all__ = ["checkpoint_metrics_many", "metrics_from_aggregates", "ckpt_batch_size", "MAX_CKPT_BATCH"]

MAX_CKPT_BATCH = 64
"""Checkpoints per pass at most (beyond this the overhead is already amortised)."""

_BATCH_BYTES = 1 << 28  # float64 working set of one pass, all k checkpoints together


def ckpt_batch_size(n: int, hidden: int, n_train: int, *, n_irreps: int | None = None,
                    budget: int = _BATCH_BYTES, limit: int = MAX_CKPT_BATCH) -> int:
    """Checkpoints per pass for a group of order ``n`` (``n_irreps`` irreps, default ``n``: an upper
    bound) and hidden width ``hidden``; 0: use the one-by-one path (a checkpoint does not fit
    ``budget``, or the one-by-one path would not keep the training pairs' logits between its
    passes, see ``metrics._STORE_BYTES``)."""
    if 2 * 8 * n_train * n > _STORE_BYTES:
        return 0
    tables = (n if n_irreps is None else n_irreps) + 1
    # float64 per checkpoint: aggregates, kept training rows and their padded copy, the [n, n]
    # tables (logit, hidden; raw and exponentiated), the [n_train, tables] sums and losses
    per_ckpt = 8 * (3 * n * hidden + n * n + 3 * n_train * n + 4 * tables * n * n + 4 * n_train * tables)
    return max(0, min(limit, budget // per_ckpt))


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
    aggregates = []
    with torch.inference_mode():
        train_mask = pair_mask(train_pairs, bases)
        for state in states:
            model.load_state_dict(state)
            aggregates.append(checkpoint_aggregates(model, bases, train_mask=train_mask, chunk_size=chunk_size))
    return metrics_from_aggregates(aggregates, bases, train_pairs=train_pairs, key_irreps=key_irreps,
                                   key_threshold=key_threshold, epochs=epochs)


def metrics_from_aggregates(aggregates: Sequence[CheckpointAggregates], bases: IrrepBases, *,
                            train_pairs: torch.Tensor, key_irreps: Sequence[str] | None = None,
                            key_threshold: float = KEY_THRESHOLD,
                            epochs: Sequence[float] | None = None) -> list[dict[str, float]]:
    """The metric rows of ``k`` checkpoints from their :func:`rep_theory.analysis.metrics.checkpoint_aggregates`
    (made with the training pairs kept, as they are whenever :func:`ckpt_batch_size` is not 0).

    ``epochs[i]`` becomes row ``i``'s ``epoch``; other arguments as
    :func:`rep_theory.analysis.metrics.checkpoint_metrics`.
    """
    if epochs is not None and len(epochs) != len(aggregates):
        raise ValueError(f"got {len(aggregates)} checkpoints' aggregates but {len(epochs)} epochs")
    if not aggregates:
        return []
    if any(agg.store is None for agg in aggregates):
        raise ValueError("aggregates without the training pairs' logits kept (store=None): this group is too "
                         "large for the batched path; use checkpoint_metrics one checkpoint at a time")
    n, dev = bases.n, bases.device
    n_pairs = n * n
    k = len(aggregates)
    f64 = dict(dtype=torch.float64, device=dev)
    with torch.inference_mode():
        train_mask = pair_mask(train_pairs, bases)
        has_test = bool((~train_mask).any())

        def stacked(field: str) -> torch.Tensor:                                  # [k, ...]
            return torch.stack([getattr(agg, field) for agg in aggregates])

        pair_loss, pair_correct = stacked("pair_loss"), stacked("pair_correct").double()   # [k, pair]
        h_left, h_right, h_prod = stacked("h_left"), stacked("h_right"), stacked("h_prod")  # [k, n, hidden]
        h_sq, l_prod, l_sq = stacked("h_sq"), stacked("l_prod"), stacked("l_sq")
        U64, E_left, E_right = stacked("U64"), stacked("E_left"), stacked("E_right")
        ssw = [agg.sum_sq_weights for agg in aggregates]
        # the training pairs' rows, in pair order (pass 1 kept them chunk by chunk)
        train_labels = torch.cat([lab for lab, _, _ in aggregates[0].store])           # [m]
        train_centred = torch.stack([torch.cat([c for _, c, _ in agg.store]) for agg in aggregates])  # [k, m, n]
        readout = torch.stack([torch.cat([r for _, _, r in agg.store]) for agg in aggregates])        # [k, m, n]
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
        n_train = max(1, len(train_labels))
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
