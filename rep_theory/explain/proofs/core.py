"""What every verifier shares: the result record, the FLOP ledger, the network as three matrices,
brute force, and the deviation bound of a real network from an idealised one.

A verifier is a program that outputs a number ``bound`` with the guarantee ``bound <= accuracy``
over all ``|G|^2`` input pairs; its length is counted in floating-point operations, analytically,
per operation (Gross, Agrawal, Kwa, Ong, Yip, Gibson, Noubir and Chan, "Compact Proofs of Model
Performance via Mechanistic Interpretability", NeurIPS 2024, arXiv 2406.11779: a proof is a
program; plot its length against its tightness).

The network (:class:`rep_theory.training.models.OneLayerMLP`, no biases) as three float64 matrices
``L = W_x W[:e]``, ``R = W_y W[e:]`` and ``U = W_U^T`` (each ``[n, m]``)::

    logit(z | x, y) = sum_i U[z, i] relu(L[x, i] + R[y, i])

A pair ``(x, y)`` counts as correct when the logit of ``x y`` exceeds every other logit strictly
(a tie is an error), evaluated in float64 from the stored weights: that is the *exact accuracy*
every bound is compared with.

The deviation lemma (every verifier but brute force uses it).  Let an idealised network have
``L~, R~, U~`` and hidden ``h~ = relu(L~[x] + R~[y])``; write ``dU = U - U~``.  For the correct
answer ``z* = xy`` and any ``z``, the real margin minus the ideal margin is::

    sum_i (dU[z*,i] - dU[z,i]) h_i  +  sum_i (U~[z*,i] - U~[z,i]) (h_i - h~_i)

and since ``h_i >= 0`` its absolute value is at most::

    eps(x, y) = sum_i  c_i h_i(x, y)  +  d_i |h_i(x, y) - h~_i(x, y)|,      c_i = range_z dU[:, i],  d_i = range_z U~[:, i]

with ``|h_i - h~_i| <= |dL[x,i] + dR[y,i]|`` (ReLU is 1-Lipschitz; Wu, Jaburi, Drori and Gross,
ICLR 2025, arXiv 2410.07476, section 6) as the cheaper, looser option.  One ``eps`` per pair,
not per ``(pair, z)``: ``O(|G|^2 m)`` where brute force costs ``O(|G|^3 m)``.
"""

from __future__ import annotations

import dataclasses
import time

import torch

from rep_theory.algebra.groups import Group

__all__ = ["VerifyResult", "Flops", "mlp_matrices", "brute_margins", "deviation_bound", "hidden",
           "rounding_slack", "logit_scale", "fallback_failures", "Timer", "PAIR_CHUNK", "readout_key_irreps",
           "check_key_irreps", "check_matrices"]

PAIR_CHUNK = 1 << 22
"""Largest number of float64 entries one block of a ``[pairs, m]`` computation holds."""


@dataclasses.dataclass
class VerifyResult:
    """The outcome of one verifier on one network.

    Attributes
    ----------
    method : str
    bound : float              certified lower bound on the accuracy over all ``n^2`` pairs, in [0, 1]
    seconds : float            wall time of the proof (the part counted in ``flops``)
    fit_seconds : float        wall time of fitting the explanation (not part of the proof)
    flops : int                floating-point operations of the proof, counted analytically
    n_pairs : int              ``n^2``
    certified : int            pairs the proof certifies correct (``bound = certified / n_pairs``)
    failures : dict str -> int why the other pairs were not certified (method-specific keys)
    details : dict             other method-specific numbers (ideal margin, circuits, ...)
    certified_mask : bool ``[n, n]`` or None   which pairs (row ``x``, column ``y``); not written to JSON
    """

    method: str
    bound: float
    seconds: float
    fit_seconds: float
    flops: int
    n_pairs: int
    certified: int
    failures: dict = dataclasses.field(default_factory=dict)
    details: dict = dataclasses.field(default_factory=dict)
    certified_mask: torch.Tensor | None = dataclasses.field(default=None, repr=False)

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out.pop("certified_mask")
        return out


class Flops:
    """A ledger of floating-point operations, one entry per named step.

    Conventions: a multiply-add is 2, an addition, subtraction, comparison, ``abs`` or ``relu`` is 1;
    index arithmetic and memory moves are free.
    """

    def __init__(self):
        self.steps: dict[str, int] = {}

    def add(self, step: str, count: int | float) -> None:
        self.steps[step] = self.steps.get(step, 0) + int(count)

    @property
    def total(self) -> int:
        return int(sum(self.steps.values()))


class Timer:
    """Accumulating wall-clock stopwatch: ``with timer: ...`` adds the block's duration to ``seconds``."""

    def __init__(self):
        self.seconds = 0.0

    def __enter__(self):
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds += time.perf_counter() - self._start


def mlp_matrices(model, flops: Flops | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(L, R, U)``, each float64 ``[n, m]``, of a :class:`~rep_theory.training.models.OneLayerMLP`.

    The verifiers read only these (``logit(z|x,y) = sum_i U[z,i] relu(L[x,i] + R[y,i])``); the
    products cost ``2 n e m`` each, recorded under ``"embed"`` in ``flops``.  A
    :class:`~rep_theory.training.models.WuMLP` (weights ``W_l, W_r [n, m]``, ``W_U [m, n]``) gives
    ``(W_l, W_r, W_U^T)`` at no cost.
    """
    wu = ("W_l", "W_r", "W_U")
    needed = ("W_x", "W_y", "W", "W_U")
    if all(hasattr(model, k) for k in wu) and not hasattr(model, "W_x"):
        n, m = model.W_l.shape
        if model.W_r.shape != (n, m) or model.W_U.shape != (m, n):
            raise ValueError(f"inconsistent WuMLP shapes: W_l {tuple(model.W_l.shape)}, W_r {tuple(model.W_r.shape)}, "
                             f"W_U {tuple(model.W_U.shape)}; expected W_r [{n}, {m}] and W_U [{m}, {n}]")
    elif all(hasattr(model, k) for k in needed) and not hasattr(model, "blocks"):
        (n, e), (rows, m) = model.W_x.shape, model.W.shape
        if rows != 2 * e or model.W_U.shape[1] != n:
            raise ValueError(f"inconsistent OneLayerMLP shapes: W_x {tuple(model.W_x.shape)}, W {tuple(model.W.shape)}, "
                             f"W_U {tuple(model.W_U.shape)}; expected W [2*{e}, m] and W_U [m, {n}]")
        if flops is not None:
            flops.add("embed", 2 * 2 * n * e * m)
    else:
        raise TypeError(f"the verifiers handle OneLayerMLP (weights {needed}) and WuMLP (weights {wu}) "
                        f"networks; got {type(model).__name__}")
    with torch.no_grad():   # the model's own float64 views, as the metrics read them
        L, R, U = (x.detach().to("cpu").contiguous() for x in (
            model.embedding_left(torch.float64), model.embedding_right(torch.float64), model.unembedding(torch.float64)))
    return L, R, U


def check_matrices(G, L, R, U) -> None:
    """``TypeError``/``ValueError`` naming the problem unless ``G`` is a :class:`Group` and ``L, R, U``
    are float64 tensors ``[n, m]`` (:func:`mlp_matrices`' output for a network on ``G``)."""
    if not isinstance(G, Group):
        raise TypeError(f"G must be a Group (rep_theory.algebra.groups.get_group), got {type(G).__name__}")
    for name, x in (("L", L), ("R", R), ("U", U)):
        if not isinstance(x, torch.Tensor) or x.dtype != torch.float64 or x.ndim != 2:
            raise ValueError(f"{name} must be a float64 tensor [n, m] (see mlp_matrices), got "
                             f"{type(x).__name__ if not isinstance(x, torch.Tensor) else f'{x.dtype} {tuple(x.shape)}'}")
    if not L.shape == R.shape == U.shape or L.shape[0] != G.order:
        raise ValueError(f"L, R and U must all be [n, m] with n = |{G.name}| = {G.order}, got {tuple(L.shape)}, "
                         f"{tuple(R.shape)} and {tuple(U.shape)}")


def readout_key_irreps(G, Uhat: dict, weights: dict, key_irreps=None, key_power: float = 0.05) -> list[str]:
    """The key irreps of the readout: ``key_irreps`` as given (checked), else the non-trivial irreps
    holding at least ``key_power`` of ``U``'s non-trivial Fourier power ``w_rho ||Uhat_rho||^2``.

    ``Uhat``: ``{irrep name: [m, d, d]}`` in ``G.irreps()`` order (trivial first); ``weights``: the
    Plancherel weights.  Raises ``KeyError`` naming unknown irreps.
    """
    names = list(Uhat)
    if key_irreps is None:
        if not 0 < key_power <= 1:
            raise ValueError(f"key_power must lie in (0, 1] (a share of the readout's power), got {key_power}")
        power = {k: weights[k] * float(Uhat[k].pow(2).sum()) for k in names[1:]}
        total = sum(power.values())
        return [k for k in names[1:] if total > 0 and power[k] / total >= key_power]
    return check_key_irreps(G, key_irreps)


def check_key_irreps(G, key_irreps) -> list[str]:
    """``key_irreps`` as a list, after checking each is a non-trivial irrep of ``G`` (``KeyError``
    naming the unknown ones and the choices otherwise) named once (``ValueError`` naming repeats)."""
    names = [r.name for r in G.irreps()]
    unknown = [k for k in key_irreps if k not in names[1:]]
    if unknown:
        raise KeyError(f"key irreps {unknown} are not non-trivial irreps of {G.name}; expected among {names[1:]}")
    repeated = sorted({k for k in key_irreps if list(key_irreps).count(k) > 1})
    if repeated:   # a repeat would count that irrep's part of the readout twice
        raise ValueError(f"key irreps {repeated} are listed more than once in {list(key_irreps)}; name each once")
    return list(key_irreps)


def _row_blocks(n: int, m: int) -> list[tuple[int, int]]:
    rows = max(1, PAIR_CHUNK // max(n * m, 1))
    return [(s, min(n, s + rows)) for s in range(0, n, rows)]


def hidden(L: torch.Tensor, R: torch.Tensor, rows: slice) -> torch.Tensor:
    """``[len(rows), n, m]``: ``relu(L[x] + R[y])`` for ``x`` in ``rows`` and every ``y``."""
    return torch.relu(L[rows, None, :] + R[None, :, :])


def brute_margins(L: torch.Tensor, R: torch.Tensor, U: torch.Tensor, table: torch.Tensor,
                  flops: Flops | None = None, pairs: torch.Tensor | None = None) -> torch.Tensor:
    """Exact margins ``logit(xy) - max_{z != xy} logit(z)``, float64.

    ``pairs``: None for all pairs (returns ``[n, n]``), or a LongTensor ``[k, 2]`` of ``(x, y)``
    (returns ``[k]``).  Cost per pair: ``2 m`` (hidden) + ``2 n m`` (readout) + ``n`` (max).
    """
    n, m = L.shape
    if pairs is None:
        out = torch.empty((n, n), dtype=torch.float64)
        for s, t in _row_blocks(n, m * max(1, n // 8)):
            logits = hidden(L, R, slice(s, t)) @ U.T                        # [rows, y, z]
            target = table[s:t]                                             # [rows, y]
            right = logits.gather(2, target[..., None])[..., 0]
            logits.scatter_(2, target[..., None], float("-inf"))
            out[s:t] = right - logits.max(2).values
        count = n * n
    else:
        x, y = pairs[:, 0], pairs[:, 1]
        out = torch.empty(len(pairs), dtype=torch.float64)
        step = max(1, PAIR_CHUNK // max(n, m))
        for s in range(0, len(pairs), step):
            xs, ys = x[s:s + step], y[s:s + step]
            logits = torch.relu(L[xs] + R[ys]) @ U.T                       # [k, z]
            target = table[xs, ys]
            right = logits.gather(1, target[:, None])[:, 0]
            logits.scatter_(1, target[:, None], float("-inf"))
            out[s:s + step] = right - logits.max(1).values
        count = len(pairs)
    if flops is not None:
        flops.add("hidden", 2 * count * m)
        flops.add("readout", 2 * count * n * m)
        flops.add("max", count * n)
    return out


def deviation_bound(L: torch.Tensor, R: torch.Tensor, U: torch.Tensor, Lt: torch.Tensor, Rt: torch.Tensor,
                    Ut: torch.Tensor, *, lipschitz: bool, flops: Flops | None = None,
                    keep_hidden: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``eps [n, n]``: the bound of the module docstring on ``|real margin - ideal margin|`` per pair.

    ``Lt, Rt, Ut`` ``[n, m]``: the idealised network (zero columns for neurons the explanation
    leaves out).  ``lipschitz``: bound ``|h - h~|`` by ``|dL[x] + dR[y]|`` (Wu et al.) instead of
    computing it.  With ``keep_hidden`` also returns the real hidden layer ``[n, n, m]`` (for a
    fallback that finishes some pairs by brute force), else ``None``.
    """
    n, m = L.shape
    c = (U - Ut).amax(0) - (U - Ut).amin(0)                                 # [m] range of dU
    d = Ut.amax(0) - Ut.amin(0)                                             # [m] range of U~
    explained = d > 0
    dL, dR = (L - Lt)[:, explained], (R - Rt)[:, explained]
    eps = torch.empty((n, n), dtype=torch.float64)
    kept = torch.empty((n, n, m), dtype=torch.float64) if keep_hidden else None
    for s, t in _row_blocks(n, m):
        rows = slice(s, t)
        h = hidden(L, R, rows)                                              # [r, n, m]
        if kept is not None:
            kept[rows] = h
        block = h @ c
        if lipschitz:
            gap = (dL[rows, None, :] + dR[None, :, :]).abs()
        else:
            gap = (h[..., explained] - hidden(Lt[:, explained], Rt[:, explained], rows)).abs()
        eps[rows] = block + gap @ d[explained]
    if flops is not None:
        k = int(explained.sum())
        flops.add("ranges", 2 * 2 * 2 * n * m)
        flops.add("hidden", 2 * n * n * m)
        flops.add("deviation", 2 * n * n * m + 2 * n * n * k + (2 * n * m if lipschitz else 0)
                  + (2 if lipschitz else 3) * n * n * k)
    return eps, kept


def fallback_failures(margins: torch.Tensor, slack: float) -> dict:
    """The failure counts of a hybrid proof's brute-force fallback, from the margins ``[k]`` it computed
    on the ``k`` pairs the explanation left: ``wrong_by_brute_force`` (margin <= 0),
    ``within_rounding`` (0 < margin <= ``slack``: the pair may be right, but a computation in another
    order could call it a tie, so it is not certified) and ``explanation_uncertified`` (``k``)."""
    return {"wrong_by_brute_force": int((margins <= 0).sum()),
            "within_rounding": int(((margins > 0) & (margins <= slack)).sum()),
            "explanation_uncertified": int(margins.numel())}


def logit_scale(L: torch.Tensor, R: torch.Tensor, U: torch.Tensor) -> float:
    """``sum_i max|U_i| (max|L_i| + max|R_i|)``: a bound on the sum of the absolute values of the terms of
    any logit of the network ``(L, R, U)`` (each ``[n, m]``), the scale of its rounding."""
    return float((U.abs().amax(0) * (L.abs().amax(0) + R.abs().amax(0))).sum()) if U.numel() else 0.0


def rounding_slack(L: torch.Tensor, R: torch.Tensor, U: torch.Tensor, *extra: float) -> float:
    """An explicit allowance for float64 rounding, ``1e-9`` times a bound on the sum of the absolute
    values of the terms of any logit (``sum_i max|U_i| (max|L_i| + max|R_i|)``) plus ``extra``.

    Recursive summation of ``k`` terms errs by at most about ``k u`` times the sum of their absolute
    values (``u = 2^-53``; Higham, "Accuracy and Stability of Numerical Algorithms", 2002, sec. 3.1);
    with ``k`` in the thousands that is below ``1e-12`` of the scale, so ``1e-9`` is generous.  A
    pair is certified only when its ideal margin exceeds its deviation bound by more than this.
    ``extra`` must include the scale of every other quantity the proof computes with rounding, such
    as an idealised network's (:func:`logit_scale` of its weights): an ideal of huge terms can round to
    a margin of any sign.
    """
    return 1e-9 * (logit_scale(L, R, U) + sum(abs(float(v)) for v in extra)) + 1e-12
