"""The Fourier transform on a finite group, over its real irreps.

Definition (the standard non-commutative Fourier transform, e.g. Diaconis, "Group Representations
in Probability and Statistics", 1988, ch. 2; used for grokked networks by Stander, Yu, Fan and
Biderman, "Grokking Group Multiplication with Cosets", ICML 2024, arXiv 2312.06581)::

    fhat(rho) = sum_g f(g) rho(g)                                   [d, d] for each real irrep rho

with the package's matrices (:mod:`rep_theory.algebra.irreps`: orthogonal, ``rho(a) @ rho(b) == rho(ab)``,
``ab = G.table[a, b]``).

Plancherel weights for real irreps of every Frobenius-Schur type
---------------------------------------------------------------
A real irrep of dimension ``d`` has a commutant of real dimension ``c`` = 1 (``kind == "real"``),
2 (``"complex"``: the realification of a pair of conjugate complex irreps of dimension ``d/2``) or 4
(``"quaternionic"``: twice a quaternionic complex irrep of dimension ``d/2``).  Its matrix
coefficients span only ``d^2 / c`` dimensions, and the projection of ``f`` onto its isotypic
component (the span of the matrix coefficients ``g -> rho(g)_ij``) is::

    P_rho f (g) = (d / (c |G|)) sum_h f(h) chi(h^-1 g) = (d / (c |G|)) tr(fhat(rho)^T rho(g))

(the sum of the complex isotypic projections ``(d_pi / |G|) sum_h f(h) chi_pi(h^-1 g)`` over the
constituents ``pi``: ``chi = chi_pi + conj(chi_pi)`` with ``d_pi = d/2`` for complex type,
``chi = 2 chi_pi`` with ``d_pi = d/2`` for quaternionic type).  Hence, with the *Plancherel weight*
``w_rho = d / (c |G|)``:

* inversion (exact for every kind): ``f(g) = sum_rho w_rho tr(fhat(rho)^T rho(g))``;
* Plancherel: ``||f||^2 = sum_rho w_rho ||fhat(rho)||_F^2``, and ``||P_rho f||^2 = w_rho ||fhat(rho)||_F^2``.

For groups whose irreps are all of real type (S_n, D_n) the weight is the familiar ``d / |G|``.

Shapes: a function on ``G`` is ``[n, *batch]`` (element axis first, any trailing batch axes); a
transform is ``{irrep name: [*batch, d, d]}``; powers are ``{irrep name: [*batch]}``.  All
arithmetic is float64 on the input's device.  A function of zero energy has NaN powers (0/0).
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import torch

from rep_theory.algebra.groups import Group, get_group

__all__ = ["fourier", "inverse_fourier", "fourier_power", "isotypic_projection", "plancherel_weights",
           "convolve", "pair_fourier_power", "COMMUTANT_DIMS"]

COMMUTANT_DIMS = {"real": 1, "complex": 2, "quaternionic": 4}
"""Frobenius-Schur kind -> real dimension ``c`` of the commutant (divides the Plancherel weight)."""


class _Stacked:
    """All irreps of one group as one ``[n, D]`` matrix (``D = sum d^2``), so a transform is one matmul."""

    def __init__(self, G: Group):
        irreps = G.irreps()
        n = G.order
        self.names = tuple(r.name for r in irreps)
        self.dims = tuple(r.dim for r in irreps)
        self.kinds = tuple(r.kind for r in irreps)
        self.offsets = tuple(int(x) for x in np.cumsum([0] + [d * d for d in self.dims]))
        # column offsets[k] + i*d + j holds rho_k(g)_ij
        self.matrix = torch.cat([r.matrices.reshape(n, -1).to(torch.float64) for r in irreps], dim=1).contiguous()
        self.weights = {r.name: r.dim / (COMMUTANT_DIMS[r.kind] * n) for r in irreps}
        self.column_weights = torch.cat([torch.full((r.dim * r.dim,), self.weights[r.name], dtype=torch.float64)
                                         for r in irreps])
        self._on: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        key = str(device)
        if key not in self._on:
            self._on[key] = (self.matrix.to(device), self.column_weights.to(device))
        return self._on[key]


_STACKED: dict[tuple[str, int], _Stacked] = {}


def _stacked(G: Group) -> _Stacked:
    # Groups are values keyed by name (see rep_theory.groups), so the name and order identify the irreps.
    key = G.digest  # by the table's content: two groups may share a name
    if key not in _STACKED:
        _STACKED[key] = _Stacked(G)
    return _STACKED[key]


def _as_function(G: Group, f, what: str = "f") -> torch.Tensor:
    """``f`` as a float64 tensor ``[n, *batch]``; a ``ValueError`` names a wrong leading axis."""
    x = torch.as_tensor(f)
    if x.ndim == 0 or x.shape[0] != G.order:
        raise ValueError(f"{what} must have shape [n, *batch] with n = |{G.name}| = {G.order}, "
                         f"got shape {tuple(x.shape)}")
    if x.is_complex():
        raise TypeError(f"{what} must be real, got dtype {x.dtype}")
    return x.to(torch.float64)


def _flat(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    """``[n, *batch] -> ([n, B], batch shape)``."""
    return x.reshape(x.shape[0], -1), tuple(x.shape[1:])


def plancherel_weights(G: Group | str) -> dict[str, float]:
    """``{irrep name: d / (c |G|)}``, the weight of ``||fhat(rho)||_F^2`` in Plancherel's identity.

    ``c`` is the commutant dimension (:data:`COMMUTANT_DIMS`): 1, 2 or 4 for real, complex and
    quaternionic kinds.  ``sum_rho w_rho d^2 == 1`` (the weights of the delta function at the identity).
    """
    return dict(_stacked(get_group(G)).weights)


def fourier(G: Group | str, f) -> dict[str, torch.Tensor]:
    """The Fourier transform ``fhat(rho) = sum_g f(g) rho(g)`` for every real irrep of ``G``.

    Parameters
    ----------
    G : Group or spec
    f : array ``[n, *batch]``
        Values on the elements (index order of ``G``), any trailing batch axes.

    Returns
    -------
    dict name -> float64 tensor ``[*batch, d, d]``, in ``G.irreps()`` order.

    >>> import torch; from rep_theory.groups import get_group
    >>> G = get_group("S3")
    >>> fhat = fourier(G, torch.eye(6))        # column k: the delta at element k, so fhat[k] = rho(k)
    >>> [tuple(v.shape) for v in fhat.values()]
    [(6, 1, 1), (6, 1, 1), (6, 2, 2)]
    >>> bool(torch.equal(fhat["standard"], G.irrep("standard").matrices))
    True
    """
    G = get_group(G)
    x = _as_function(G, f)
    flat, batch = _flat(x)
    st = _stacked(G)
    M, _ = st.on(flat.device)
    coeffs = flat.T @ M                                                    # [B, D]
    out = {}
    for k, name in enumerate(st.names):
        d = st.dims[k]
        out[name] = coeffs[:, st.offsets[k]:st.offsets[k + 1]].reshape(*batch, d, d)
    return out


def inverse_fourier(G: Group | str, fhat: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The function ``f(g) = sum_rho w_rho tr(fhat(rho)^T rho(g))`` (``w``: :func:`plancherel_weights`).

    Exact inverse of :func:`fourier` for every group and every irrep kind.  Irreps absent from
    ``fhat`` count as zero (so a partial spectrum gives the sum of its isotypic components); an
    unknown name raises.  For complex and quaternionic irreps only the part of ``fhat(rho)`` in the
    image of :func:`fourier` matters: ``fourier(G, inverse_fourier(G, X))`` is the orthogonal
    projection of ``X`` onto that ``d^2 / c``-dimensional image.

    Parameters
    ----------
    fhat : mapping name -> array ``[*batch, d, d]`` (the same ``batch`` for every irrep)

    Returns
    -------
    float64 tensor ``[n, *batch]``.
    """
    G = get_group(G)
    st = _stacked(G)
    unknown = [name for name in fhat if name not in st.names]
    if unknown:
        raise KeyError(f"{unknown} are not irreps of {G.name}; expected names among {list(st.names)}")
    if not fhat:
        raise ValueError("inverse_fourier needs at least one irrep's coefficients, got an empty mapping")
    batch = None
    blocks = []
    device = None
    for k, name in enumerate(st.names):
        d = st.dims[k]
        if name not in fhat:
            blocks.append(None)
            continue
        v = torch.as_tensor(fhat[name]).to(torch.float64)
        if v.ndim < 2 or tuple(v.shape[-2:]) != (d, d):
            raise ValueError(f"fhat[{name!r}] must have shape [*batch, {d}, {d}], got {tuple(v.shape)}")
        if batch is None:
            batch, device = tuple(v.shape[:-2]), v.device
        elif tuple(v.shape[:-2]) != batch:
            raise ValueError(f"fhat[{name!r}] has batch shape {tuple(v.shape[:-2])}, but another irrep has {batch}")
        blocks.append(v.reshape(-1, d * d))
    B = math.prod(batch)
    coeffs = torch.cat([b.to(device) if b is not None else torch.zeros((B, d * d), dtype=torch.float64, device=device)
                        for b, d in zip(blocks, st.dims)], dim=1)          # [B, D]
    M, w = st.on(device)
    return (M @ (coeffs * w).T).reshape(G.order, *batch)


def fourier_power(G: Group | str, f) -> dict[str, torch.Tensor]:
    """Fraction of ``||f||^2`` in each irrep's isotypic component: ``w_rho ||fhat(rho)||_F^2 / ||f||^2``.

    The fractions sum to 1 for every batch entry (Plancherel).  A matrix coefficient
    ``g -> rho(g)_ij`` has all its power in ``rho``; a constant function has all its power in
    ``trivial``; centre ``f`` first to ignore its mean.

    Parameters
    ----------
    f : array ``[n, *batch]``

    Returns
    -------
    dict name -> float64 ``[*batch]`` (NaN where ``f`` is identically zero).
    """
    G = get_group(G)
    x = _as_function(G, f)
    flat, batch = _flat(x)
    total = flat.pow(2).sum(0)                                             # [B]
    st = _stacked(G)
    out = {}
    for name, fh in fourier(G, flat).items():
        out[name] = (st.weights[name] * fh.pow(2).sum((-2, -1)) / total).reshape(batch)
    return out


def isotypic_projection(G: Group | str, f, irrep: str) -> torch.Tensor:
    """``P_rho f`` ``[n, *batch]``: the component of ``f`` in the span of ``rho``'s matrix coefficients."""
    G = get_group(G)
    fh = fourier(G, f)
    if irrep not in fh:
        raise KeyError(f"{irrep!r} is not an irrep of {G.name}; expected one of {list(fh)}")
    return inverse_fourier(G, {irrep: fh[irrep]})


def convolve(G: Group | str, f, h) -> torch.Tensor:
    """``(f * h)(x) = sum_y f(y) h(y^-1 x)`` ``[n, *batch]`` (batch axes broadcast elementwise).

    With this transform's convention, ``fourier(f * h)[rho] == fourier(f)[rho] @ fourier(h)[rho]``
    (``f`` on the left), since ``rho(y) rho(y^-1 x) = rho(x)``.
    """
    G = get_group(G)
    x, y = _as_function(G, f, "f"), _as_function(G, h, "h")
    table, inv = G.table.to(x.device), G.inverses.to(x.device)
    # index[y, x] = y^-1 x: out[x] = sum_y f[y] h[index[y, x]]
    index = table[inv]
    bx, by = torch.broadcast_tensors(x[:1], y[:1])
    x = x.expand(G.order, *bx.shape[1:])
    y = y.expand(G.order, *by.shape[1:])
    return torch.einsum("y...,yx...->x...", x, y[index])


def pair_fourier_power(G: Group | str, F, *, centre: bool = True, pool: bool = False) -> dict:
    """Fourier power of functions on ``G x G`` in the parts that depend on ``a``, ``b`` or ``ab`` alone.

    For each irrep ``rho`` and each part ``p``, the fraction of ``||F||^2`` in the subspace of
    functions ``(a, b) -> phi(a)`` (``p = "x"``), ``phi(b)`` (``"y"``) or ``phi(ab)`` (``"xy"``)
    with ``phi`` in the isotypic component of ``rho`` (the span of ``g -> rho(g)_ij``).  The map
    ``phi -> ((a, b) -> phi(a)) / sqrt(n)`` is an isometry, so each fraction is the one-variable
    power of an aggregate::

        power_x[rho] = w_rho ||fhat_x(rho)||^2 / (n ||F||^2),   F_x(a) = sum_b F(a, b)

    (``F_y(b) = sum_a F(a, b)``, ``F_xy(g) = sum_{ab = g} F(a, b)``).  These are the package's
    hidden-layer FVE metrics (``percent_hidden_{x,y,xy}_<irrep>_rep`` of
    :func:`rep_theory.analysis.metrics.checkpoint_metrics`) restated as Fourier power: there ``F`` is the
    hidden layer, centred over pairs, and the ratio is pooled over hidden units (``pool=True``).

    For non-trivial irreps all these subspaces are mutually orthogonal, and orthogonal to the
    constants; the three trivial parts are all the constants.  ``"residual"`` is the fraction in
    none of them (interactions of ``a`` and ``b`` not through ``ab``): ``1 - constant part - sum of
    the non-trivial parts``.

    Parameters
    ----------
    F : array ``[n*n, *batch]``
        Values on pairs in row-major order: pair ``(a, b)`` at index ``a*n + b``.
    centre : subtract the mean over pairs of each batch entry first (as the metrics do)
    pool : return ratios of sums over all batch entries (0-d) instead of per-entry fractions

    Returns
    -------
    ``{"x": {name: [*batch]}, "y": {...}, "xy": {...}, "residual": [*batch]}`` (0-d tensors if ``pool``).
    """
    G = get_group(G)
    n = G.order
    x = torch.as_tensor(F)
    if x.ndim == 0 or x.shape[0] != n * n:
        raise ValueError(f"F must have shape [n*n, *batch] with n*n = {n * n} pairs of {G.name}, "
                         f"got shape {tuple(x.shape)}")
    x = x.to(torch.float64)
    flat, batch = x.reshape(n * n, -1), tuple(x.shape[1:])
    if centre:
        flat = flat - flat.mean(0, keepdim=True)
    rows = flat.reshape(n, n, -1)
    product = G.table.to(flat.device).reshape(-1)
    aggregates = {"x": rows.sum(1), "y": rows.sum(0),
                  "xy": torch.zeros((n, flat.shape[1]), dtype=torch.float64, device=flat.device).index_add_(0, product, flat)}
    total = flat.pow(2).sum(0)                                             # [B]
    if pool:
        total = total.sum()
    st = _stacked(G)
    out: dict = {}
    explained = torch.zeros_like(total)
    for part, agg in aggregates.items():
        out[part] = {}
        for name, fh in fourier(G, agg).items():
            num = st.weights[name] * fh.pow(2).sum((-2, -1)) / n           # [B]
            if pool:
                num = num.sum()
            out[part][name] = num / total if pool else (num / total).reshape(batch)
            if name != st.names[0] or part == "x":                         # count the constants once
                explained = explained + num
    residual = 1 - explained / total
    out["residual"] = residual if pool else residual.reshape(batch)
    return out
