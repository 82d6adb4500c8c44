"""Per-neuron rho-set structure of a trained one-layer MLP.

Wu, Jaburi, Drori and Gross, "Towards a Unified and Verified Understanding of Group-Operation
Networks" (ICLR 2025, arXiv 2410.07476) explain each neuron of such a network as a *projected
rho-set*: for an irrep ``rho``, a vector ``a`` and a rho-set ``B`` (a finite set of vectors permuted
by ``rho(G)``, e.g. the orbit of one ``b``), the idealised network is::

    f(z | x, y) = - sum_{b, b' in B} b^T rho(z) b' ReLU[b^T rho(x) a - a^T rho(y) b']

one neuron per pair ``(b, b')``.  Its three functions on the group (see
:func:`rep_theory.explain.cosets.neuron_functions`) have Fourier coefficients of rank one
(Schur orthogonality, real-type ``rho`` of dimension ``d``: ``sum_x rho(x)_ij rho(x)_kl = (n/d) d_ik d_jl``)::

    left(x)  =  b^T rho(x) a    ->  fhat(rho) =  (n/d) b a^T
    right(y) = -a^T rho(y) b'   ->  fhat(rho) = -(n/d) a b'^T
    unembed(z) = -b^T rho(z) b' ->  fhat(rho) = -(n/d) b b'^T

so for each neuron :func:`analyse_neurons` measures

1. the irrep it lives in: the non-trivial irrep holding most of the centred energy of its left and
   right functions (Fourier power, :mod:`rep_theory.algebra.fourier`); the per-neuron hidden-layer
   fractions of :func:`rep_theory.analysis.neurons.neuron_irrep_fractions` come alongside;
2. the rank-one ratio ``sigma_1^2 / ||A||_F^2`` of each coefficient matrix ``A`` in that irrep
   (for complex or quaternionic irreps, of commutant dimension ``c`` = 2 or 4, a rank-one neuron
   over C or H has real rank ``c``, so the top ``c`` singular values count);
3. ``b`` (unit left singular vector of the left matrix), ``a`` (its right singular vector, scaled
   so that ``left = b^T rho(x) a`` on its rho part), ``b'`` (the right matrix's right singular vector);
4. the rho-set ``b`` generates: ``b`` is first snapped to the fixed space of the largest subgroup
   ``H`` with ``||P_H b||^2 >= fixed_threshold`` (``P_H`` the average of ``rho(h)``, the projector on
   the ``H``-fixed vectors; a trained ``b`` is only approximately fixed), then closed under ``rho(G)``
   with :func:`rep_theory.algebra.rhosets.rho_set`: its size and stabiliser;
5. the idealisation error: each function replaced by its mean plus the rank-``c`` truncation of its
   coefficient in that irrep; the pre-activation MSE over all pairs (absolute and relative to the
   pre-activation's variance), the unembedding's relative error, and the change in loss (all pairs)
   when only that neuron is idealised, and when all are.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from rep_theory.algebra.fourier import COMMUTANT_DIMS, fourier, inverse_fourier, plancherel_weights
from rep_theory.algebra.groups import Group
from rep_theory.algebra.rhosets import rho_set
from rep_theory.algebra.subgroups import subgroups as all_subgroups
from rep_theory.analysis.neurons import neuron_irrep_fractions
from rep_theory.explain.cosets import neuron_functions

__all__ = ["NeuronReport", "analyse_neurons", "idealised_functions", "pair_loss", "CSV_COLUMNS"]

_CHUNK_ELEMENTS = 1 << 22  # float64 logits per chunk of the all-pairs loss


@dataclasses.dataclass(frozen=True, eq=False)
class NeuronReport:
    """What :func:`analyse_neurons` found; per-neuron tensors are ``[hidden]``.

    Attributes
    ----------
    group : str
    irrep_names : list of str            the non-trivial irreps, columns of the fraction matrices
    irrep : list of str                  each neuron's irrep (``""`` for a neuron with no centred energy)
    embed_power : float64 ``[hidden, k]`` fraction of the left+right functions' centred energy per irrep
    hidden_fractions : float64 ``[hidden, k]`` or None  :func:`~rep_theory.analysis.neurons.neuron_irrep_fractions`
    rank_one : dict ``{"left", "right", "unembed": float64 [hidden]}``  ``sigma_1^2 / ||A||_F^2`` (top ``c``)
    a, b, b_prime : list of float64 ``[d]`` tensors (``d`` of the neuron's irrep; empty for none)
    a_cosine : float64 ``[hidden]``      ``|cos|`` between ``a`` read from the left and from the right matrix
    fixed_fraction : float64 ``[hidden]`` ``||P_H b||^2`` for the chosen ``H``
    set_size, stabilizer_order, stabilizer_class : long ``[hidden]`` the rho-set of (snapped) ``b``
    stabilizer_name : list of str
    right_set_size : long ``[hidden]``   the same for ``b'``
    preact_mse, preact_rel_error, unembed_rel_error : float64 ``[hidden]``
    loss : float                         the model's loss on all pairs
    loss_change : float64 ``[hidden]``   loss with that neuron idealised, minus ``loss``
    loss_all_idealised, acc_all_idealised : float
    """

    group: str
    irrep_names: list
    irrep: list
    embed_power: torch.Tensor
    hidden_fractions: torch.Tensor | None
    rank_one: dict
    a: list
    b: list
    b_prime: list
    a_cosine: torch.Tensor
    fixed_fraction: torch.Tensor
    set_size: torch.Tensor
    stabilizer_order: torch.Tensor
    stabilizer_class: torch.Tensor
    stabilizer_name: list
    right_set_size: torch.Tensor
    preact_mse: torch.Tensor
    preact_rel_error: torch.Tensor
    unembed_rel_error: torch.Tensor
    loss: float
    loss_change: torch.Tensor
    loss_all_idealised: float
    acc_all_idealised: float

    @property
    def hidden(self) -> int:
        return len(self.irrep)

    def rows(self) -> list[dict]:
        """One dict per neuron with the scalar columns of :data:`CSV_COLUMNS` (fractions as ``power_<irrep>``)."""
        out = []
        for j in range(self.hidden):
            row = {"neuron": j, "irrep": self.irrep[j]}
            for k, name in enumerate(self.irrep_names):
                row[f"power_{name}"] = float(self.embed_power[j, k])
            if self.hidden_fractions is not None:
                for k, name in enumerate(self.irrep_names):
                    row[f"hidden_{name}"] = float(self.hidden_fractions[j, k])
            row.update({f"rank_one_{f}": float(v[j]) for f, v in self.rank_one.items()})
            row.update(a_cosine=float(self.a_cosine[j]), fixed_fraction=float(self.fixed_fraction[j]),
                       rho_set_size=int(self.set_size[j]), right_rho_set_size=int(self.right_set_size[j]),
                       stabilizer_order=int(self.stabilizer_order[j]),
                       stabilizer_class=int(self.stabilizer_class[j]), stabilizer=self.stabilizer_name[j],
                       preact_mse=float(self.preact_mse[j]), preact_rel_error=float(self.preact_rel_error[j]),
                       unembed_rel_error=float(self.unembed_rel_error[j]), loss_change=float(self.loss_change[j]))
            out.append(row)
        return out

    def summary(self, rank_one_level: float = 0.9) -> dict:
        """Counts per irrep and rho-set size, rank-one counts at ``rank_one_level``, the losses."""
        live = [j for j, r in enumerate(self.irrep) if r]
        rank_one_all = torch.stack([v for v in self.rank_one.values()]).min(0).values
        per_irrep: dict[str, dict] = {}
        for j in live:
            entry = per_irrep.setdefault(self.irrep[j], {"neurons": 0, "rank_one": 0, "rho_set_sizes": {}})
            entry["neurons"] += 1
            entry["rank_one"] += int(rank_one_all[j] >= rank_one_level)
            size = str(int(self.set_size[j]))
            entry["rho_set_sizes"][size] = entry["rho_set_sizes"].get(size, 0) + 1
        return {"group": self.group, "hidden": self.hidden, "live_neurons": len(live),
                "rank_one_level": rank_one_level,
                "rank_one_neurons": int((rank_one_all[live] >= rank_one_level).sum()) if live else 0,
                "irreps": per_irrep,
                "median_preact_rel_error": float(self.preact_rel_error[live].median()) if live else math.nan,
                "loss": self.loss, "loss_all_idealised": self.loss_all_idealised,
                "acc_all_idealised": self.acc_all_idealised}


CSV_COLUMNS = ("neuron", "irrep", "rank_one_left", "rank_one_right", "rank_one_unembed", "a_cosine",
               "fixed_fraction", "rho_set_size", "right_rho_set_size", "stabilizer_order", "stabilizer_class",
               "stabilizer", "preact_mse", "preact_rel_error", "unembed_rel_error", "loss_change")
"""The fixed scalar columns of :meth:`NeuronReport.rows` (the ``power_*``/``hidden_*`` columns come too)."""


def _truncate(A: torch.Tensor, c: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(ratio [k], U [k, d], S [k], Vt [k, d])`` of ``A [k, d, d]``: top-``c`` energy share and top singular triple."""
    U, S, Vt = torch.linalg.svd(A)
    total = S.pow(2).sum(-1)
    ratio = S[:, :c].pow(2).sum(-1) / torch.where(total > 0, total, torch.ones_like(total))
    ratio = torch.where(total > 0, ratio, torch.full_like(ratio, math.nan))
    return ratio, U[:, :, 0], S[:, 0], Vt[:, 0, :]


def _rank_c(A: torch.Tensor, c: int) -> torch.Tensor:
    U, S, Vt = torch.linalg.svd(A)
    return (U[..., :, :c] * S[..., None, :c]) @ Vt[..., :c, :]


def idealised_functions(G: Group, funcs: dict[str, torch.Tensor], irrep: list[str]) -> dict[str, torch.Tensor]:
    """Each function ``[n, hidden]`` replaced by its mean plus the rank-``c`` truncation of its
    coefficient in the neuron's irrep (columns whose irrep is ``""`` are kept as they are)."""
    kinds = {r.name: (r.kind, r.dim) for r in G.irreps()}
    out = {}
    for name, f in funcs.items():
        g = f.clone()
        fh = fourier(G, f)                                                  # name -> [hidden, d, d]
        for rho in sorted(set(r for r in irrep if r)):
            cols = torch.tensor([j for j, r in enumerate(irrep) if r == rho])
            A = _rank_c(fh[rho][cols], COMMUTANT_DIMS[kinds[rho][0]])
            g[:, cols] = f[:, cols].mean(0, keepdim=True) + inverse_fourier(G, {rho: A})
        out[name] = g
    return out


def pair_loss(G: Group, left: torch.Tensor, right: torch.Tensor, unembed: torch.Tensor,
              *, swap: dict[str, torch.Tensor] | None = None, progress: bool = False):
    """Cross-entropy over all pairs of the MLP ``relu(left[a] + right[b]) @ unembed.T``, float64.

    Returns ``(loss, acc)``; with ``swap`` (the same three keys, idealised functions) also
    ``loss_with[j]`` ``[hidden]``: the loss when neuron ``j`` alone uses the ``swap`` functions.
    """
    n, hidden = left.shape
    target = G.table.reshape(-1)
    total, correct = 0.0, 0
    per = torch.zeros(hidden, dtype=torch.float64)
    rows = max(1, _CHUNK_ELEMENTS // max(n, 1))
    chunks = range(0, n * n, rows)
    bar = None
    if progress and swap is not None:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(chunks) * hidden, desc="idealising neurons", leave=False)
    for start in chunks:
        p = torch.arange(start, min(start + rows, n * n))
        a, b, t = p // n, p % n, target[p]
        act = torch.relu(left[a] + right[b])                                # [m, hidden]
        logits = act @ unembed.T                                            # [m, n]
        total += float(torch.nn.functional.cross_entropy(logits, t, reduction="sum"))
        correct += int((logits.argmax(1) == t).sum())
        if swap is not None:
            new_act = torch.relu(swap["left"][a] + swap["right"][b])
            for j in range(hidden):
                changed = logits + new_act[:, j:j + 1] * swap["unembed"][:, j] - act[:, j:j + 1] * unembed[:, j]
                per[j] += float(torch.nn.functional.cross_entropy(changed, t, reduction="sum"))
                if bar is not None:
                    bar.update(1)
    if bar is not None:
        bar.close()
    loss, acc = total / (n * n), correct / (n * n)
    return (loss, acc) if swap is None else (loss, acc, per / (n * n))


def _projectors(G: Group, rho) -> tuple[torch.Tensor, torch.Tensor, list]:
    """``(P [S, d, d], orders [S], subgroups)``: the fixed-space projector of every subgroup in ``rho``."""
    subs = all_subgroups(G)
    R = rho.matrices.to(torch.float64)
    P = torch.stack([R[torch.tensor(H.elements)].mean(0) for H in subs])
    return (P + P.transpose(1, 2)) / 2, torch.tensor([H.order for H in subs], dtype=torch.float64), subs


def _snap(G: Group, rho, vectors: torch.Tensor, threshold: float, cache: dict):
    """Per row of ``vectors [k, d]`` (unit): ``(snapped [k, d], fraction [k])`` in the fixed space of
    the largest subgroup ``H`` with ``||P_H v||^2 >= threshold`` (ties: the largest fraction)."""
    if rho.name not in cache:
        cache[rho.name] = _projectors(G, rho)
    P, orders, _ = cache[rho.name]
    proj = torch.einsum("sij,kj->ksi", P, vectors)                          # [k, S, d]
    frac = (proj * vectors[:, None, :]).sum(-1)                            # = ||P v||^2 (P a projector)
    score = torch.where(frac >= threshold - 1e-12, orders + frac / 2, torch.full_like(frac, -1.0))
    best = score.argmax(1)                                                  # the trivial group always passes
    k = torch.arange(vectors.shape[0])
    snapped = proj[k, best]
    return snapped / snapped.norm(dim=1, keepdim=True), frac[k, best]


def analyse_neurons(model, G: Group, *, fixed_threshold: float = 0.9, hidden_fractions: bool = True,
                    loss_changes: bool = True, progress: bool = False) -> NeuronReport:
    """The rho-set analysis of every hidden neuron of a one-layer MLP ``model`` on ``G`` (module docstring).

    ``hidden_fractions``: also compute the hidden-layer fractions (all ``n^2`` pairs);
    ``loss_changes``: also the per-neuron change in loss (``n^2 * n * hidden`` work; NaN otherwise).
    """
    if not isinstance(G, Group):
        raise TypeError(f"G must be a Group (rep_theory.algebra.groups.get_group), got {type(G).__name__}")
    if not 0 < fixed_threshold <= 1:
        raise ValueError(f"fixed_threshold must lie in (0, 1], got {fixed_threshold}")
    funcs = neuron_functions(model)
    n, hidden = funcs["left"].shape
    if n != G.order:
        raise ValueError(f"the model has {n} input elements, but |{G.name}| = {G.order}")
    irreps = [r for r in G.irreps() if r.name != "trivial"]
    names = [r.name for r in irreps]
    weights = plancherel_weights(G)
    fh = {f: fourier(G, funcs[f]) for f in funcs}                           # f -> name -> [hidden, d, d]

    # 1. the irrep: Fourier power of the centred left and right functions together
    energy = sum((funcs[f] - funcs[f].mean(0)).pow(2).sum(0) for f in ("left", "right"))     # [hidden]
    power = torch.stack([weights[r] * sum(fh[f][r].pow(2).sum((-2, -1)) for f in ("left", "right"))
                         for r in names], dim=1)
    live = energy > 1e-24 * max(float(energy.max()) if hidden else 0.0, 1e-300)
    embed_power = power / torch.where(live, energy, torch.ones_like(energy))[:, None]
    best = embed_power.argmax(1)
    irrep = [names[int(best[j])] if live[j] else "" for j in range(hidden)]

    rank_one = {f: torch.full((hidden,), math.nan, dtype=torch.float64) for f in funcs}
    a_list, b_list, bp_list = [torch.zeros(0)] * hidden, [torch.zeros(0)] * hidden, [torch.zeros(0)] * hidden
    a_cos = torch.full((hidden,), math.nan, dtype=torch.float64)
    fixed = torch.full((hidden,), math.nan, dtype=torch.float64)
    size, stab_order, stab_class = (torch.zeros(hidden, dtype=torch.long) for _ in range(3))
    right_size = torch.zeros(hidden, dtype=torch.long)
    stab_name = [""] * hidden
    cache: dict = {}
    for rho in irreps:
        cols = [j for j in range(hidden) if irrep[j] == rho.name]
        if not cols:
            continue
        idx = torch.tensor(cols)
        c = COMMUTANT_DIMS[rho.kind]
        svd = {}
        for f in funcs:
            ratio, U, S, V = _truncate(fh[f][rho.name][idx], c)
            rank_one[f][idx] = ratio
            svd[f] = (U, S, V)
        # 2./3. vectors: left = b^T rho a -> (n/d) b a^T;  right = a^T rho b' -> (n/d) a b'^T
        UL, SL, VL = svd["left"]
        UR, SR, VR = svd["right"]
        a_left = VL * (SL * rho.dim / n)[:, None]
        a_cos[idx] = (VL * UR).sum(1).abs()
        sign = torch.sign((VL * UR).sum(1))
        sign[sign == 0] = 1
        b_prime = VR * sign[:, None]                                        # orient a_right like a_left
        # 4. rho-sets of b and b'
        snapped, frac = _snap(G, rho, UL, fixed_threshold, cache)
        snapped_r, _ = _snap(G, rho, b_prime, fixed_threshold, cache)
        fixed[idx] = frac
        for k, j in enumerate(cols):
            a_list[j], b_list[j], bp_list[j] = a_left[k], UL[k], b_prime[k]
            rs = rho_set(G, rho, snapped[k], atol=1e-6)
            size[j], stab_order[j] = rs.size, rs.stabilizer.order
            stab_class[j], stab_name[j] = rs.stabilizer.class_index, rs.stabilizer.name
            right_size[j] = rho_set(G, rho, snapped_r[k], atol=1e-6).size

    # 5. idealisation errors
    ideal = idealised_functions(G, funcs, irrep)
    err_l, err_r = (ideal[f] - funcs[f] for f in ("left", "right"))
    # e(x, y) = e_l(x) + e_r(y): mean over pairs of e^2, with the cross term of the means
    mse = err_l.pow(2).mean(0) + err_r.pow(2).mean(0) + 2 * err_l.mean(0) * err_r.mean(0)
    variance = funcs["left"].var(0, unbiased=False) + funcs["right"].var(0, unbiased=False)
    rel = mse / torch.where(variance > 0, variance, torch.full_like(variance, math.nan))
    u = funcs["unembed"]
    u_rel = (ideal["unembed"] - u).pow(2).sum(0) / (u - u.mean(0)).pow(2).sum(0)
    if loss_changes:
        loss, _, per = pair_loss(G, funcs["left"], funcs["right"], funcs["unembed"], swap=ideal, progress=progress)
        change = per - loss
    else:
        loss, _ = pair_loss(G, funcs["left"], funcs["right"], funcs["unembed"])
        change = torch.full((hidden,), math.nan, dtype=torch.float64)
    loss_ideal, acc_ideal = pair_loss(G, ideal["left"], ideal["right"], ideal["unembed"])
    hf = neuron_irrep_fractions(model, G, irreps=names)[0].to(torch.float64) if hidden_fractions else None
    return NeuronReport(G.name, names, irrep, embed_power, hf, rank_one, a_list, b_list, bp_list, a_cos, fixed,
                        size, stab_order, stab_class, stab_name, right_size, mse, rel, u_rel, loss, change,
                        loss_ideal, acc_ideal)
