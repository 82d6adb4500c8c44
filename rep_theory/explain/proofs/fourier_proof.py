"""Our verifier: the logits in the Fourier basis of the output, a bi-equivariant core per key irrep,
and the remaining readout split into an additive part (exact, from tables) and a small residual.

The explanation.  By Fourier inversion over the output ``z``, for every pair ``(x, y)``::

    logit(z | x, y) = sum_rho w_rho tr(rho(z)^T C_rho(x, y)),      C_rho(x, y) = sum_i h_i(x, y) Uhat_rho[i]

(``w_rho`` the Plancherel weight, ``Uhat_rho[i] = sum_z U[z, i] rho(z)``).  Writing ``z = x g y``
and using orthogonality, ``tr(rho(z)^T C) = tr(rho(g)^T rho(x)^T C rho(y)^T)``: a bi-equivariant
network (Wu et al. 2025's idealised rho-set circuits are one) has ``rho(x)^T C_rho(x, y) rho(y)^T``
independent of the pair.  The explanation is, per *key* irrep ``rho`` (those holding at least
``key_power`` of ``U``'s non-trivial Fourier power), ``n_cores`` ``d x d`` *cores* ``Phihat_rho``, fitted
on a sample of pairs; the other irreps are *the rest*.

The proof, per pair (``O(|G|^2 m (sum_K d^2 + r))`` against brute force's ``O(|G|^3 m)``):

1. ``h = relu(L[x] + R[y])`` and its two-way decomposition ``h = a(x) + b(y) + r(x, y)``
   (``a`` the mean over ``y``, ``b`` the centred mean over ``x`` (all rows, or a sample of
   ``column_sample`` rows), both part of the explanation: any ``a`` and ``b`` keep the proof sound);
2. key irreps: ``C_rho`` exactly; ``C_rho = sum_j beta_j D_j + Delta`` with ``D_j = rho(x) Phihat_j rho(y)``
   for ``n_cores`` orthonormal cores ``Phihat_j`` (so the ``D_j`` are orthonormal too) and ``Delta``
   orthogonal to them.  For ``z = x g y`` the key part of ``logit(xy) - logit(z)`` is
   ``sum_rho w_rho [sum_j beta_j (phi_j(e) - phi_j(g)) + tr((rho(xy) - rho(xgy))^T Delta_rho)]`` with
   ``phi_j(g) = tr(rho(g)^T Phihat_j)``; Cauchy-Schwarz on the second term, after removing its
   components along the ``D_j`` (which ``Delta`` is orthogonal to), gives ``>= -||Delta_rho|| s_rho(g)``,
   ``s_rho(g)^2 = 2d - 2 chi_rho(g) - sum_j (phi_j(e) - phi_j(g))^2``.  The first core is the mean core;
   its scale ``beta_1`` is required to be positive when it is so on every sampled pair (``positive``),
   else it enters like the others, the leading directions of what the mean leaves over the sample:
   with a free sign, split into positive and negative parts;
3. the rest's readout ``U_rest`` (``U`` minus its trivial and key isotypic parts): ``U_rest a(x)``
   and ``U_rest b(y)`` are two ``[n, n]`` tables, so their part of the margin is bounded below by
   ``T_a[x, xy] - max_z T_a[x, z] + T_b[y, xy] - max_z T_b[y, z]`` exactly; the residual's, for
   ``z = x g y``, by ``||U_rest r||_2 f(g)`` with ``f(g)^2 = sum_{rho outside K, non-trivial}
   w_rho ||I - rho(g)||_F^2`` (Cauchy-Schwarz over the irreps, then Plancherel:
   ``sum_rho w_rho ||C_rho||^2 = ||U_rest r||^2``), and ``||U_rest r||^2 = r^T G r`` (``G = U_rest^T U_rest``) is bounded
   by its ``rank`` leading eigen-directions exactly plus ``mu`` times the squared norm left over
   (``Lambda`` the Rayleigh quotients ``v_k^T G v_k``; ``mu`` certified numerically:
   ``mu (I - V V^T) - (G - V Lambda V^T)`` is positive semi-definite up to the ``tau`` that is added);
4. the minimum over ``g != e`` of the key and residual parts is taken over the Pareto-minimal ``g``
   only (with non-negative coefficients, a ``g`` whose every coefficient is no better than another's
   cannot be the minimum): one ``[rows, pairs]`` by ``[rows, P]`` product, ``P`` small.

A pair is certified when the sum exceeds the rounding slack; a pair whose first scale ``beta_1`` of
some ``positive`` key irrep is negative is not certified (``core_reversed``).  ``fourier_hybrid`` finishes every
uncertified pair by brute force.

Sound for any fitted core, key set, directions, ``mu >= 0`` and ``b``: the fit only decides how tight
the bound is.  Everything derived from the weights that the argument relies on (``Uhat_K``, ``U_rest``,
the quadratic bound's ``Lambda`` and ``tau``, the Pareto points, the cores' orthonormality) is computed
by the proof itself (:func:`fourier_certificate`), inside its time and FLOP count.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from rep_theory.algebra.fourier import fourier, plancherel_weights
from rep_theory.algebra.groups import Group
from rep_theory.explain.proofs.core import (Flops, brute_margins, check_key_irreps, check_matrices,
                                          fallback_failures, readout_key_irreps, rounding_slack)

__all__ = ["FourierExplanation", "FourierCertificate", "fit_fourier", "fourier_certificate", "fourier_proof",
           "hidden_block_rows"]


@dataclasses.dataclass
class FourierExplanation:
    """The explanation :func:`fourier_proof` reads: fitted from the weights, but trusted for nothing
    (any values keep the proof sound; they only decide how tight it is).

    key_irreps : list of names
    cores : dict name -> ``[c, d, d]`` float64, orthonormal (``Phihat_rho``; the first along the mean
        core); the proof checks the orthonormality
    positive : dict name -> bool   whether the first scale is constrained to be positive
    directions : float64 ``[m, rank]``   ``V``: the residual's kept directions (the leading
        eigenvectors of ``U_rest^T U_rest`` when fitted)
    mu : float   the residual's claimed tail eigenvalue; the proof certifies ``tau`` for it
    row_means : float64 ``[n, m]``   ``a(x)``, the hidden layer's mean over ``y`` when fitted
    column_means : float64 ``[n, m]``   ``b(y)``, its mean over ``x`` (all or sampled rows), centred
    spectrum : float64 ``[m]`` or None   the eigenvalues of ``U_rest^T U_rest`` in decreasing order, as
        fitted (:meth:`truncated` reads its ``mu`` from them; the proof does not read them)
    search : dict or None   how :func:`~rep_theory.explain.proofs.fourier_search.fit_fourier_search`
        chose this explanation's size (reported, not read by the proof)
    """

    key_irreps: list
    cores: dict
    positive: dict
    directions: torch.Tensor
    mu: float
    row_means: torch.Tensor
    column_means: torch.Tensor
    spectrum: torch.Tensor | None = None
    search: dict | None = None

    @property
    def n_cores(self) -> int:
        """The most cores of any key irrep (1-d irreps have one)."""
        return max((int(c.shape[0]) for c in self.cores.values()), default=1)

    @property
    def rank(self) -> int:
        return int(self.directions.shape[1])

    def truncated(self, n_cores: int, rank: int) -> "FourierExplanation":
        """The same explanation with the first ``n_cores`` cores per key irrep and the first ``rank``
        residual directions (``mu`` the next fitted eigenvalue): what :func:`fit_fourier` returns for
        that ``n_cores`` and ``rank`` up to rounding (its cores are orthonormalised in order, its
        directions sorted by eigenvalue).  Needs the fitted ``spectrum``."""
        if self.spectrum is None:
            raise ValueError("truncated() needs the fitted spectrum; this explanation has none")
        if not 1 <= n_cores <= self.n_cores:
            raise ValueError(f"n_cores must be in 1..{self.n_cores} (the cores fitted), got {n_cores}")
        if not 0 <= rank <= self.rank:
            raise ValueError(f"rank must be in 0..{self.rank} (the directions fitted), got {rank}")
        mu = float(self.spectrum[rank]) if rank < self.spectrum.numel() else 0.0
        return dataclasses.replace(self, cores={k: c[:n_cores] for k, c in self.cores.items()},
                                   directions=self.directions[:, :rank].contiguous(), mu=max(mu, 0.0), search=None)

    def summary(self) -> dict:
        out = {"key_irreps": list(self.key_irreps), "n_cores": self.n_cores, "rank": self.rank, "mu": self.mu}
        if self.search is not None:
            out["search"] = self.search
        return out


@dataclasses.dataclass
class FourierCertificate:
    """What :func:`fourier_proof` derives from the weights and the explanation before its pass over
    the pairs (:func:`fourier_certificate`; part of the proof's time and FLOPs).

    weights : float64 ``[m, sum_K d^2 + rank]``   the key irreps' ``Uhat`` (flattened) then ``V``
    rest_readout : float64 ``[n, m]``   ``U_rest``
    eigvals : float64 ``[rank]``   ``v_k^T G v_k`` (``G = U_rest^T U_rest``); mu, tau : float   the
        residual's quadratic-form bound ``r^T G r <= sum_k eigvals_k (v_k.r)^2 + mu (|r|^2 - |V^T r|^2) + tau |r|^2``
    points : float64 ``[rows, P]``   per key irrep ``w`` times the first core's ``phi`` gap (and its
        negative unless ``positive``), the other cores' gaps (``+`` and ``-``), ``-s``; then ``-f``;
        columns the Pareto-minimal ``g``
    defects : dict name -> float   ``kappa``, a bound on ``||Q Q^T - I||_2`` of the key irrep's cores
        (``c`` times the largest entry): what the proof allows for their departure from orthonormality
    """

    weights: torch.Tensor
    rest_readout: torch.Tensor
    eigvals: torch.Tensor
    mu: float
    tau: float
    points: torch.Tensor
    defects: dict = dataclasses.field(default_factory=dict)


def _pair_index(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.arange(n).repeat_interleave(n), torch.arange(n).repeat(n)


def _rest_readout(G: Group, U: torch.Tensor, Uhat: dict, key_irreps: list) -> torch.Tensor:
    """``U_rest [n, m]``: ``U`` without its trivial (mean) and key isotypic parts (Fourier inversion)."""
    w = plancherel_weights(G)
    irreps = {r.name: r for r in G.irreps()}
    U_rest = U - U.mean(0, keepdim=True)
    for k in key_irreps:
        U_rest = U_rest - w[k] * torch.einsum("zde,ide->zi", irreps[k].matrices, Uhat[k])
    return U_rest


def fit_fourier(G: Group, L: torch.Tensor, R: torch.Tensor, U: torch.Tensor, *, key_irreps=None,
                key_power: float = 0.05, rank: int = 16, sample: int = 2048, column_sample: int | None = None,
                n_cores: int = 1, seed: int = 0) -> FourierExplanation:
    """Fit the explanation: key irreps, ``n_cores`` cores per key irrep (the mean of
    ``rho(x)^T C rho(y)^T`` over ``sample`` random pairs, then the leading directions of what it
    leaves), the residual's ``rank`` leading directions and the next eigenvalue, and ``b(y)``."""
    check_matrices(G, L, R, U)
    if sample < 1:
        raise ValueError(f"sample must be >= 1 (pairs sampled to fit the cores), got {sample}")
    n, m = U.shape
    w = plancherel_weights(G)
    irreps = {r.name: r for r in G.irreps()}
    Uhat = fourier(G, U)                                                     # {name: [m, d, d]}
    key_irreps = readout_key_irreps(G, Uhat, w, key_irreps, key_power)
    if rank < 0:
        raise ValueError(f"rank must be >= 0, got {rank}")
    if n_cores < 1:
        raise ValueError(f"n_cores must be >= 1, got {n_cores}")
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randint(0, n * n, (min(sample, n * n),), generator=gen)
    xs, ys = pick // n, pick % n
    h = torch.relu(L[xs] + R[ys])                                            # [s, m]
    cores, positive = {}, {}
    for k in key_irreps:
        M = irreps[k].matrices
        d = M.shape[1]
        C = (h @ Uhat[k].reshape(m, d * d)).reshape(-1, d, d)
        samples = (M[xs].transpose(1, 2) @ C @ M[ys].transpose(1, 2)).reshape(-1, d * d)   # [s, d*d]
        mean = samples.mean(0)
        if n_cores == 1 or d == 1:
            basis = mean[None, :]
        else:  # the mean's direction first, then the leading directions of what it leaves
            rest_samples = samples - (samples @ mean)[:, None] * mean[None, :] / mean.pow(2).sum().clamp(min=1e-300)
            _, _, Vh = torch.linalg.svd(rest_samples, full_matrices=False)
            basis = torch.cat([mean[None, :], Vh[:n_cores - 1]], 0)
        basis, _ = torch.linalg.qr(basis.T)                                  # orthonormal columns [d*d, c]
        basis = basis.T * torch.sign((basis.T @ mean)[:, None] + 1e-300)     # the first along the mean
        cores[k] = basis.reshape(-1, d, d)                                   # [c, d, d] orthonormal cores
        # the first scale is kept non-negative (pairs where it is not are left uncertified) when it is
        # positive on every sampled pair; otherwise it enters split into + and - parts like the others
        positive[k] = bool((samples @ basis[0]).min() > 0)
    U_rest = _rest_readout(G, U, Uhat, key_irreps)
    lam, V = torch.linalg.eigh(U_rest.T @ U_rest)
    lam, V = lam.flip(0), V.flip(1)
    rank = min(rank, m)
    mu = float(lam[rank]) if rank < m else 0.0
    rows = torch.randperm(n, generator=gen)[:n if column_sample is None else min(n, column_sample)]
    a, b = _hidden_means(L, R, rows)
    return FourierExplanation(list(key_irreps), cores, positive, V[:, :rank].contiguous(), max(mu, 0.0),
                              a.contiguous(), (b - b.mean(0, keepdim=True)).contiguous(), spectrum=lam)


def _hidden_means(L: torch.Tensor, R: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``a [n, m]``: the mean of ``relu(L[x] + R[y])`` over every ``y``; ``b [n, m]``: its mean over
    the ``x`` in ``rows``.  In blocks of ``x`` of about 1 MiB (:func:`hidden_block_rows`): besides
    staying in cache, small blocks leave the memory allocator as the proof finds it (after blocks of
    tens of MiB, allocated and freed, the proof that follows ran 1.5-2x slower, its small
    allocations page-faulting afresh)."""
    n, m = L.shape
    chosen = torch.zeros(n, dtype=torch.bool)
    chosen[rows] = True
    a = torch.empty((n, m), dtype=torch.float64)
    b = torch.zeros((n, m), dtype=torch.float64)
    step = hidden_block_rows(n, m)
    for s in range(0, n, step):
        h = torch.relu(L[s:s + step, None, :] + R[None, :, :])               # [x, y, m]
        a[s:s + step] = h.mean(1)
        b += h[chosen[s:s + step]].sum(0)
    return a, b / max(int(chosen.sum()), 1)


def fourier_certificate(G: Group, U: torch.Tensor, fit: FourierExplanation, flops: Flops | None = None
                        ) -> FourierCertificate:
    """From the weights ``U [n, m]`` and the explanation, what the proof's pass over the pairs needs:
    the key irreps' Fourier coefficients and the rest of the readout (exact), the residual's
    quadratic-form bound certified for the explanation's directions and ``mu`` (``tau``, an upper bound of
    the largest eigenvalue of ``G - V diag(eigvals) V^T - mu (I - V V^T)`` plus an allowance for rounding),
    and the Pareto-minimal ``g`` of the per-``g`` coefficients.  Raises ``ValueError`` if a key
    irrep's cores are not orthonormal (the proof's split of ``C_rho`` relies on it)."""
    n, m = U.shape
    w = plancherel_weights(G)
    irreps = {r.name: r for r in G.irreps()}
    names = list(irreps)
    check_key_irreps(G, fit.key_irreps)
    _check_finite(fit)
    Uhat, rows, count, defects = {}, [], 0, {}
    for k in fit.key_irreps:
        M = irreps[k].matrices
        d = M.shape[1]
        unit = fit.cores[k]
        if unit.ndim != 3 or unit.shape[1:] != (d, d):
            raise ValueError(f"cores of {k} must have shape [c, {d}, {d}], got {tuple(unit.shape)}")
        flat = unit.reshape(unit.shape[0], -1)
        off = float((flat @ flat.T - torch.eye(flat.shape[0], dtype=flat.dtype)).abs().max())
        if not off <= 1e-12:
            raise ValueError(f"the cores of {k} are not orthonormal: |Q Q^T - I| reaches {off:.2e} (at most 1e-12)")
        # what is left of that departure enters the bounds explicitly (kappa >= ||Q Q^T - I||_2): in
        # ||Delta||^2 and s(g)^2 below and in the proof's slack (its module docstring, step 2)
        defects[k] = kappa = unit.shape[0] * off
        Uhat[k] = torch.einsum("zi,zde->ide", U, M)                          # [m, d, d]
        gaps = []
        for j in range(unit.shape[0]):
            phi = (M * unit[j]).sum((1, 2))                                  # [n]
            gaps.append(phi[0] - phi)
        gaps = torch.stack(gaps)                                             # [c, n]
        s2 = 2 * d - 2 * irreps[k].character - gaps.pow(2).sum(0)
        # s2 is a difference of O(d) terms: allow for its rounding so that s never falls below the truth,
        # and for the cores' departure from orthonormality (the projection's norm is >= (1 - kappa) |gaps|^2)
        s2 = s2 + 1e-12 * (2 * d + 2 * irreps[k].character.abs() + gaps.pow(2).sum(0)) + 2 * kappa * gaps.pow(2).sum(0)
        rows.append(w[k] * gaps[0])
        if not fit.positive[k]:
            rows.append(-w[k] * gaps[0])
        for j in range(1, unit.shape[0]):                                    # free-sign scales: + and - parts
            rows += [w[k] * gaps[j], -w[k] * gaps[j]]
        rows.append(-w[k] * s2.clamp(min=0).sqrt())
        count += 2 * n * m * d * d + unit.shape[0] * (2 * n * d * d + 6 * n) + 4 * n
    # the rest's factor per g: sqrt(sum_{rho outside K and trivial} w_rho ||I - rho(g)||_F^2)
    spread = torch.zeros(n, dtype=torch.float64)
    for k in names[1:]:
        if k not in fit.key_irreps:
            spread += w[k] * (2 * irreps[k].dim - 2 * irreps[k].character)
    rows.append(-spread.clamp(min=0).sqrt())
    table = torch.stack(rows)[:, 1:]
    points = _pareto(table)
    U_rest = _rest_readout(G, U, Uhat, fit.key_irreps)
    V = fit.directions.to(torch.float64)
    if not fit.mu >= 0:   # (r^2 - |V^T r|^2) is clamped at 0 in the proof, which needs mu >= 0
        raise ValueError(f"the explanation's mu must be >= 0, got {fit.mu}")
    if V.shape[0] != m:
        raise ValueError(f"the explanation's directions must have {m} rows (neurons), got {V.shape[0]}")
    tau, lam, form_flops = _residual_allowance(U_rest, V, float(fit.mu))
    weights = torch.cat([Uhat[k].reshape(m, -1) for k in fit.key_irreps] + [V], dim=1)
    if flops is not None:
        kd = sum(irreps[k].dim ** 2 for k in fit.key_irreps)
        flops.add("certificate: readout transform", count + 2 * n * m + 2 * n * m * kd)
        flops.add("certificate: pareto", n + n * n * table.shape[0] * 2)
        flops.add("certificate: residual form", form_flops)
    return FourierCertificate(weights.contiguous(), U_rest.contiguous(), lam, float(fit.mu), tau,
                              points.contiguous(), defects)


def _check_finite(fit: FourierExplanation) -> None:
    """``ValueError`` naming the first part of the explanation that is not finite (NaN or infinite)."""
    parts = {"mu": torch.tensor(float(fit.mu)), "directions": fit.directions, "row_means": fit.row_means,
             "column_means": fit.column_means, **{f"cores of {k}": fit.cores[k] for k in fit.key_irreps}}
    for name, value in parts.items():
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"the explanation's {name} must be finite, got NaN or infinite values")


def _residual_allowance(U_rest: torch.Tensor, V: torch.Tensor, mu: float) -> tuple[float, torch.Tensor, int]:
    """``(tau, lam, flops)`` such that ``r^T G r <= sum_k lam_k (v_k.r)^2 + mu (|r|^2 - |V^T r|^2) + tau |r|^2``
    for every ``r``, with ``G = U_rest^T U_rest`` (``[n, m]``), any ``V [m, rank]`` and ``mu >= 0``.

    ``r^T G r = sum_k lam_k (v_k.r)^2 + r^T E r`` with ``lam_k = v_k^T G v_k`` and ``E = G - V diag(lam) V^T``
    for any ``V``; ``tau`` is an upper bound of the largest eigenvalue of ``X = E - mu (I - V V^T)`` (at
    least 0) plus an allowance for rounding: the allowance itself when ``allowance I - X`` passes a
    Cholesky test (as it does for fitted directions), else the top eigenvalue.  ``X`` maps
    ``S = span(rows of U_rest, columns of V)`` into itself and is ``-mu <= 0`` on its complement, so
    when ``n + rank <= m / 2`` the problem is solved on an orthonormal basis ``Q`` of a space
    containing ``S`` (``[m, n + rank]``) instead of on all of ``R^m``: on small groups (``n`` well
    below ``m``) that replaces an ``m x m`` problem by an ``(n + rank)``-sized one.  (Nearer ``m``
    the basis costs more than it saves: on S5 at rank 4, ``124`` of ``128``, the subspace took
    0.90 ms against the full eigenvalue problem's 0.48; the Cholesky test takes 0.10.)  The allowance,
    ``1e-12`` of ``trace(G) + mu`` (at least ``||X||``), covers the eigensolver's error (about
    ``m u ||X||``) and the basis' departure from exact orthonormality and invariance (of the order
    of ``u ||G||``).
    """
    n, m = U_rest.shape
    rank = V.shape[1]
    off = float((V.T @ V - torch.eye(rank, dtype=V.dtype)).abs().max()) if rank else 0.0
    if not off <= 1e-12:   # the allowance's scale (below) is sized for orthonormal directions
        raise ValueError(f"the explanation's directions must be orthonormal: |V^T V - I| reaches {off:.2e} "
                         f"(at most 1e-12)")
    UV = U_rest @ V                                                          # [n, rank]
    lam = UV.pow(2).sum(0)                                                   # v_k^T G v_k = |U_rest v_k|^2
    scale = float(U_rest.pow(2).sum()) + abs(mu)                             # trace(G) + mu
    k = n + rank
    if 2 * k <= m:
        Q, _ = torch.linalg.qr(torch.cat([U_rest.T, V], dim=1))             # [m, k] orthonormal, span >= S
        UQ, VQ = U_rest @ Q, Q.T @ V                                         # [n, k], [k, rank]
        X = torch.addmm(UQ.T @ UQ, VQ * lam, VQ.T, alpha=-1)                 # Q^T E Q
        X.addmm_(VQ, VQ.T, alpha=mu).diagonal().sub_(mu)                     # Q^T X Q
        flops = 4 * m * k * k + 2 * n * m * k + 2 * m * k * rank + 2 * n * k * k + 4 * k * k * rank
    else:
        X = torch.addmm(U_rest.T @ U_rest, V * lam, V.T, alpha=-1)           # E = G - V diag(lam) V^T
        X.addmm_(V, V.T, alpha=mu).diagonal().sub_(mu)                       # E - mu (I - V V^T)
        flops = 2 * n * m * m + 4 * m * m * rank
    allowance = 1e-12 * scale + 1e-300
    size = X.shape[0]
    flops += 2 * n * m * rank + 2 * n * m + size * size                     # (and forming the trial below)
    # First a Cholesky test of the trial bound X <= allowance I (about a quarter of the eigenvalue
    # problem's time): for fitted directions (eigenvectors of G, mu the next eigenvalue) X's top
    # eigenvalue is 0 up to rounding, so it passes.  A factorisation that completes on the computed
    # A = allowance I - X gives R^T R = A + dA with |dA| <= gamma_{k+1} |R^T| |R| (Higham, "Accuracy and
    # Stability of Numerical Algorithms", 2002, thm 10.3), so ||dA|| <= gamma_{k+1} ||R||_F^2, about
    # gamma_{k+1} trace(A), and X <= (allowance + ||dA||) I.  Otherwise (any other directions, as a
    # wrong explanation may give) the top eigenvalue itself.  Both read the lower triangle; the matrix
    # is symmetric up to rounding, covered by the second allowance.
    trial = X.neg()
    trial.diagonal().add_(allowance)
    _, info = torch.linalg.cholesky_ex(trial)
    if int(info) == 0:   # (the second term: the rounding of the trial's diagonal)
        backward = (2 * (size + 1) * 2.0 ** -53 * float(trial.diagonal().sum())
                    + 2.0 ** -52 * float(X.diagonal().abs().max()))
        if math.isfinite(backward):
            return 2 * allowance + backward, lam, flops + size ** 3 // 3 + size
    top = float(torch.linalg.eigvalsh(X)[-1])                                # (after the failed test)
    if not math.isfinite(top):   # (max(0, nan) would be 0)
        raise ValueError(f"the residual's quadratic form has a non-finite eigenvalue ({top}); the readout or the "
                         f"explanation's mu is too large")
    return max(0.0, top) + allowance, lam, flops + size ** 3 // 3 + 4 * size ** 3


def _pareto(points: torch.Tensor) -> torch.Tensor:
    """Columns of ``points [k, P]`` not dominated (another column <= in every row and < in one),
    without repeats, in the order of ``torch.unique``.  All pairs compared at once, one row at a
    time: ``O(P^2 k)``."""
    if points.shape[1] == 0:
        return points
    P = points.shape[1]
    le = torch.ones((P, P), dtype=torch.bool)                                 # [j, i]: column i <= column j
    lt = torch.zeros((P, P), dtype=torch.bool)                                # [j, i]: column i < column j somewhere
    for row in points:
        le &= row[None, :] <= row[:, None]
        lt |= row[None, :] < row[:, None]
    return torch.unique(points.T[~(le & lt).any(1)], dim=0).T                 # repeats dominate nothing


def hidden_block_rows(n: int, m: int) -> int:
    """Rows ``x`` per block of the proof's hidden layer ``[m, x, n]``: about 1 MiB of float64, in cache."""
    return max(1, (1 << 17) // max(n * m, 1))


def fourier_proof(G: Group, L: torch.Tensor, R: torch.Tensor, U: torch.Tensor, fit: FourierExplanation, *,
                  fallback: bool, flops: Flops) -> dict:
    """Run the proof; returns ``certified`` (bool ``[n, n]``), ``failures``, ``details`` and
    ``diagnostics`` (per-pair tensors whose medians :func:`~rep_theory.explain.proofs.verify` reports
    outside the proof's time).  Starts with :func:`fourier_certificate` (counted in the proof).

    Layout: neurons first (``[m, pairs]``), so that the one product ``weights^T @ h`` is a short, wide
    matrix product; the hidden layer is built in blocks of ``x`` rows (1 MiB, in cache) and the
    residual overwrites it once that product has read it.  The per-pair algebra then runs on chunks
    of at most 65536 pairs.
    """
    n, m = L.shape
    irreps = {r.name: r for r in G.irreps()}
    table = G.table
    cert = fourier_certificate(G, U, fit, flops)
    rank = cert.eigvals.numel()
    kcols = cert.weights.shape[1] - rank
    Wt = cert.weights.T.contiguous()                                          # [kcols + rank, m]
    LT, RT = L.T.contiguous(), R.T.contiguous()                              # [m, n]
    b = fit.column_means                                                    # [y, m]
    bT = b.T.contiguous()
    Tb, bV = b @ cert.rest_readout.T, Wt[kcols:] @ bT                         # [y, z], [rank, y]
    Tb_part = Tb.gather(1, table.T.contiguous()).T - Tb.amax(1)[None, :]     # [x, y]: Tb[y, xy] - max_z Tb[y, z]
    keys = []
    for k in fit.key_irreps:
        M = irreps[k].matrices
        unit = fit.cores[k]                                                  # [c, d, d]
        keys.append((M, torch.einsum("xab,jbc->jxac", M, unit), fit.positive[k],   # rho(x) Phihat_j
                     [M[:, :, l].T.contiguous() for l in range(M.shape[1])], cert.defects[k]))  # rho(y)[:, l]: [d, y]
    largest = dict.fromkeys(fit.key_irreps, 0.0)                              # max over pairs of ||C_rho||^2
    inner = hidden_block_rows(n, m)                                           # x rows per hidden block
    outer = max(inner, ((1 << 16) // max(n, 1)) // inner * inner)            # x rows per chunk of pairs
    key = torch.empty(n * n, dtype=torch.float64)
    rest = torch.empty(n * n, dtype=torch.float64)
    additive = torch.empty(n * n, dtype=torch.float64)
    reversed_ = torch.zeros(n * n, dtype=torch.bool)
    for s0 in range(0, n, outer):
        t0 = min(n, s0 + outer)
        pairs = slice(s0 * n, t0 * n)
        P = torch.empty((Wt.shape[0], (t0 - s0) * n), dtype=torch.float64)    # [kcols + rank, pairs]
        r2 = torch.empty((t0 - s0) * n, dtype=torch.float64)
        aT = fit.row_means[s0:t0].T                                          # [m, x]
        for s in range(s0, t0, inner):
            t = min(t0, s + inner)
            cols = slice((s - s0) * n, (t - s0) * n)
            hT = torch.add(LT[:, s:t, None], RT[:, None, :]).clamp_(min=0)   # [m, x, y]
            torch.mm(Wt, hT.reshape(m, -1), out=P[:, cols])
            rT = hT.sub_(aT[:, s - s0:t - s0, None]).sub_(bT[:, None, :])    # the residual, in place of h
            r2[cols] = rT.mul_(rT).sum(0).reshape(-1)                       # (r is not needed after this)
        # the residual's bound (in place in P's residual rows: no fresh [rank, pairs] tensors)
        sq = P[kcols:].view(rank, t0 - s0, n).sub_((Wt[kcols:] @ aT)[:, :, None]).sub_(bV[:, None, :])
        sq = sq.mul_(sq).view(rank, (t0 - s0) * n)                           # [rank, pairs] squared projections
        quad = cert.eigvals @ sq + cert.mu * (r2 - sq.sum(0)).clamp(min=0) + cert.tau * r2
        rest[pairs] = quad.clamp(min=0).sqrt()
        # the additive part of the rest
        Ta = aT.T @ cert.rest_readout.T                                       # [x, z]
        additive[pairs] = ((Ta.gather(1, table[s0:t0]) - Ta.amax(1, keepdim=True))
                           + Tb_part[s0:t0]).reshape(-1)
        # key irreps: beta_j = <C, D_j> and ||Delta||^2 = ||C||^2 - sum_j beta_j^2 (the D_j orthonormal),
        # plus allowances for that difference's rounding (1e-13 ||C||^2, hundreds of ulps) and for the
        # cores' departure kappa from orthonormality (2 kappa ||C||^2)
        coefs, col = [], 0
        for (M, Mcore, positive, Mcols, kappa), name in zip(keys, fit.key_irreps):
            d = M.shape[1]
            C = P[col:col + d * d]                                           # [d*d, pairs]
            col += d * d
            scratch = torch.empty_like(C)                                    # products, summed over rows
            c2 = torch.mul(C, C, out=scratch).sum(0)
            largest[name] = max(largest[name], float(c2.max()))
            left = c2 * (1.0 + 1e-13 + 2 * kappa * (1 + kappa))
            D = torch.empty((d, d, t0 - s0, n), dtype=torch.float64)      # D_j = rho(x) Phihat_j rho(y)
            for j in range(Mcore.shape[0]):
                for i in range(d):
                    for l in range(d):                                       # [x, b] @ [b, y], written in place
                        torch.mm(Mcore[j, s0:t0, i, :], Mcols[l], out=D[i, l])
                beta = torch.mul(C, D.view(d * d, -1), out=scratch).sum(0)
                left -= beta * beta
                if j == 0 and positive:
                    reversed_[pairs] |= beta < 0
                    coefs.append(beta)
                else:
                    coefs += [beta.clamp(min=0), (-beta).clamp(min=0)]
            coefs.append(left.clamp(min=0).sqrt())
        coefs.append(rest[pairs])
        coefs = torch.stack(coefs)                                            # [rows, pairs]
        step = coefs.shape[1] if cert.points.shape[1] < 64 else 1024          # many points: in cached blocks
        for s in range(0, coefs.shape[1], step):
            torch.amin(cert.points.T @ coefs[:, s:s + step], 0, out=key[pairs][s:s + step])
    key, rest = key.reshape(n, n), rest.reshape(n, n)
    additive, reversed_ = additive.reshape(n, n), reversed_.reshape(n, n)
    flops.add("hidden", 2 * n * n * m)
    flops.add("additive part", 2 * n * n * m + 2 * 2 * n * m * (n + rank + kcols))
    flops.add("residual", 2 * n * n * m + 2 * n * n * m * rank + n * n * (4 * rank + 6))
    flops.add("key coefficients", 2 * n * n * m * kcols)
    flops.add("key cores", sum(Mc.shape[0] * (2 * n * M.shape[1] ** 3 + 2 * n * n * M.shape[1] ** 3
                                              + 4 * n * n * M.shape[1] ** 2) + 3 * n * n * M.shape[1] ** 2
                               for M, Mc, _, _, _ in keys))
    flops.add("key minimum", n * n * cert.points.shape[1] * (2 * cert.points.shape[0] + 1))
    flops.add("additive bound", 2 * n * n + 4 * n * n + 2 * n * n)
    total = key + additive
    flops.add("certify", 3 * n * n)
    slack = rounding_slack(L, R, U, float(total.abs().max()) if n else 0.0, float(rest.max()) if n else 0.0)
    # the cores' departure from orthonormality also moves the ideal part: with Delta = C - sum_j beta_j D_j,
    # its component inside the cores' span is at most 2 kappa ||C|| and |I - rho(g)| at most 2 sqrt(d)
    weights = plancherel_weights(G)
    slack += sum(8 * kappa * M.shape[1] ** 0.5 * weights[name] * largest[name] ** 0.5
                 for (M, _, _, _, kappa), name in zip(keys, fit.key_irreps))
    certified = (total > slack) & ~reversed_
    failures = {"core_reversed": int(reversed_.sum()), "deviation": int((~certified & ~reversed_).sum())}
    details = {"rounding_slack": slack, "certified_by_explanation": int(certified.sum()), **fit.summary(),
               "pareto_points": int(cert.points.shape[1])}
    if fallback:
        left = torch.nonzero(~certified)
        margins = brute_margins(L, R, U, table, flops, pairs=left) if len(left) else torch.zeros(0, dtype=torch.float64)
        certified[tuple(left[margins > slack].T)] = True
        failures = fallback_failures(margins, slack)
        details["brute_forced_pairs"] = len(left)
    return {"certified": certified, "failures": failures, "details": details,
            "diagnostics": {"key_margin": key, "residual_bound": rest}}
