"""Fitting the rho-set interpretation of a one-layer MLP (the certificate the ``rhoset`` proof checks).

Wu, Jaburi, Drori and Gross, "Towards a Unified and Verified Understanding of Group-Operation
Networks", ICLR 2025 (arXiv 2410.07476), explain the network as a sum of circuits, one per irrep
``rho`` it uses, each of the idealised form::

    f_rho(z | x, y) = - sum_{b, b' in B} b^T rho(z) b'  ReLU[ b^T rho(x) a  -  a^T rho(y) b' ]

with ``a`` a vector and ``B`` a rho-set (an orbit ``{rho(g) b0}``), one neuron per pair ``(b, b')``.
Their fitting code is not published; this module reconstructs it from the description:

1. each neuron goes to the non-trivial irrep holding most of the Fourier power of its three weight
   vectors ``L[:, i]``, ``R[:, i]``, ``U[:, i]`` (at least ``min_power`` of it, else unexplained);
2. in the form above the Fourier coefficients are rank one, ``Lhat = (n/d) s b a^T`` and
   ``Rhat = -(n/d) s a b'^T``, so ``a`` is the top right singular vector of ``[Lhat; Rhat^T]``;
   neurons of one irrep whose ``a`` agree up to sign (``|cos| >= a_cos``) form one circuit, whose
   ``a`` is their aligned mean;
3. the neuron's left and right vectors ``v, w`` (``L[x] ~ v^T rho(x) a``, ``R[y] ~ -a^T rho(y) w``)
   by least squares; ``b, b'`` are the nearest unit vectors of the candidate rho-sets: the orbits
   of ``+-f`` for each unit vector ``f`` spanning a one-dimensional fixed space of a largest
   subgroup with fixed vectors (:func:`rep_theory.algebra.rhosets.min_rho_set_subgroups`);
   ``b`` and ``b'`` must lie in the same orbit ``B`` with ``cos >= b_cos``;
4. scale ``s > 0`` by least squares on ``L`` and ``R`` together, readout ``t`` by least squares on
   ``U ~ -t b^T rho(z) b'``; the neuron adds ``s t`` to the circuit's weight ``W[b, b']``;
5. the circuit's ideal weight ``Wbar`` (one number, shared by all ``|B|^2`` pairs, which makes the
   circuit bi-equivariant) is the mean of ``W`` over ``B x B`` (missing pairs count 0), at least 0:
   each neuron's weight spread evenly over the orbit.  (The median, which minimises the proof's
   coverage term ``sum |W - Wbar|``, is 0 for the partly covered circuits of trained S5 networks
   and leaves an ideal far from the network; with the mean the ideal's margin exceeds the *true*
   deviation of the network from it on nearly every pair, see the README's "Compact proofs of accuracy".)

Choices that are ours, not the paper's: the thresholds, the candidate rho-sets, the mean, and
neurons that fit no circuit being left to the deviation bound rather than dropped.
"""

from __future__ import annotations

import dataclasses

import torch

from rep_theory.algebra.fourier import fourier, plancherel_weights
from rep_theory.algebra.groups import Group
from rep_theory.algebra.rhosets import fixed_space, min_rho_set_subgroups

__all__ = ["Circuit", "RhoSetInterpretation", "fit_rhoset", "candidate_rho_sets", "orbit"]


@dataclasses.dataclass
class Circuit:
    """One rho-set circuit.

    Attributes
    ----------
    irrep : str
    a : float64 ``[d]``                unit vector
    B : float64 ``[k, d]``             the rho-set, unit vectors
    neurons : long ``[c]``             hidden units in the circuit
    b, bp : long ``[c]``               each neuron's ``(b, b')`` as indices into ``B``
    scale, readout : float64 ``[c]``   each neuron's ``s > 0`` and ``t``
    weight : float64 ``[k, k]``        ``W[b, b'] = sum of s t`` over the neurons on ``(b, b')``
    ideal_weight : float               ``Wbar``
    """

    irrep: str
    a: torch.Tensor
    B: torch.Tensor
    neurons: torch.Tensor
    b: torch.Tensor
    bp: torch.Tensor
    scale: torch.Tensor
    readout: torch.Tensor
    weight: torch.Tensor
    ideal_weight: float

    def summary(self) -> dict:
        k = self.B.shape[0]
        return {"irrep": self.irrep, "rho_set_size": k, "neurons": int(self.neurons.numel()),
                "pairs_covered": int((self.weight != 0).sum()), "pairs": k * k, "ideal_weight": self.ideal_weight}


@dataclasses.dataclass
class RhoSetInterpretation:
    """The fitted explanation: circuits, and the hidden units none of them explains."""

    circuits: list
    unexplained: torch.Tensor
    n_neurons: int

    def summary(self) -> dict:
        return {"circuits": [c.summary() for c in self.circuits], "unexplained_neurons": int(self.unexplained.numel()),
                "neurons": self.n_neurons}


def orbit(matrices: torch.Tensor, f: torch.Tensor, atol: float = 1e-6) -> torch.Tensor:
    """``[k, d]`` the distinct ``rho(g) f`` in order of first appearance (``matrices`` ``[n, d, d]``)."""
    images = matrices @ f
    keep: list[torch.Tensor] = []
    for v in images:
        if not any(float((v - u).abs().max()) <= atol for u in keep):
            keep.append(v)
    return torch.stack(keep)


def candidate_rho_sets(G: Group, rho) -> list[torch.Tensor]:
    """The rho-sets a circuit's ``B`` may be: orbits of ``+-f`` for ``f`` spanning a one-dimensional
    fixed space of a largest subgroup with a fixed vector (one per conjugacy class; conjugates give
    the same orbits).  Empty when every such fixed space has dimension above one."""
    out: list[torch.Tensor] = []
    for cls in min_rho_set_subgroups(G, rho):
        basis = fixed_space(G, rho, cls.representative)
        if basis.shape[1] != 1:
            continue
        for sign in (1.0, -1.0):
            B = orbit(rho.matrices, sign * basis[:, 0])
            if not any(B.shape == C.shape and bool(((B[:, None] - C[None]).abs().amax(-1) < 1e-6).any(1).all())
                       for C in out):
                out.append(B)
    return out


def _irrep_of_neurons(G: Group, L, R, U) -> tuple[list[str], torch.Tensor, torch.Tensor, dict]:
    """Per neuron: index of the non-trivial irrep with most Fourier power in ``(L, R, U)``, its fraction,
    and the transforms ``{name: (Lhat, Rhat, Uhat)}`` each ``[m, d, d]``."""
    weights = plancherel_weights(G)
    names = [r.name for r in G.irreps()]
    hats = {name: (fl, fr, fu) for name, fl, fr, fu in
            zip(names, fourier(G, L).values(), fourier(G, R).values(), fourier(G, U).values())}
    total = L.pow(2).sum(0) + R.pow(2).sum(0) + (U - U.mean(0)).pow(2).sum(0)
    power = torch.stack([weights[k] * sum(h.pow(2).sum((-2, -1)) for h in hats[k]) for k in names[1:]], 1)
    frac, best = (power / total.clamp_min(1e-300)[:, None]).max(1)
    return names[1:], best, frac, hats


def fit_rhoset(G: Group, L: torch.Tensor, R: torch.Tensor, U: torch.Tensor, *, min_power: float = 0.5,
               a_cos: float = 0.95, b_cos: float = 0.8) -> RhoSetInterpretation:
    """Fit the rho-set interpretation of the network ``(L, R, U)`` (each float64 ``[n, m]``; see
    :func:`rep_theory.explain.proofs.core.mlp_matrices`).  The steps are in the module docstring."""
    n, m = L.shape
    if L.shape != R.shape or L.shape != U.shape or n != G.order:
        raise ValueError(f"L, R, U must all be [n, m] with n = |{G.name}| = {G.order}; got "
                         f"{tuple(L.shape)}, {tuple(R.shape)}, {tuple(U.shape)}")
    names, best, frac, hats = _irrep_of_neurons(G, L, R, U)
    circuits: list[Circuit] = []
    explained = torch.zeros(m, dtype=torch.bool)
    for j, name in enumerate(names):
        members = torch.nonzero((best == j) & (frac >= min_power)).flatten()
        if members.numel() == 0:
            continue
        rho = G.irrep(name)
        Rm = rho.matrices
        orbits = candidate_rho_sets(G, rho)
        if not orbits:
            continue
        Lhat, Rhat, _ = hats[name]
        avec = {}
        for i in members.tolist():
            _, _, vt = torch.linalg.svd(torch.cat([Lhat[i], Rhat[i].T], 0))
            avec[i] = vt[0]
        # greedy clustering of a (up to sign), strongest neurons first
        order = sorted(avec, key=lambda i: -float(L[:, i].norm() + R[:, i].norm()))
        clusters: list[list] = []   # [centre, [(neuron, sign)]]
        for i in order:
            for cl in clusters:
                cos = float(cl[0] @ avec[i])
                if abs(cos) >= a_cos:
                    cl[1].append((i, 1.0 if cos > 0 else -1.0))
                    break
            else:
                clusters.append([avec[i], [(i, 1.0)]])
        for centre, group in clusters:
            a = sum(s * avec[i] for i, s in group)
            a = a / a.norm()
            X = Rm @ a                                                      # [n, d]  rho(x) a
            Y = -(Rm.transpose(1, 2) @ a)                                   # [n, d]  -rho(y)^T a
            idx = torch.tensor([i for i, _ in group])
            v = torch.linalg.lstsq(X, L[:, idx]).solution.T                 # [c, d]
            w = torch.linalg.lstsq(Y, R[:, idx]).solution.T
            for o, B in enumerate(orbits):
                cb = (v / v.norm(dim=1, keepdim=True).clamp_min(1e-300)) @ B.T      # [c, k]
                cbp = (w / w.norm(dim=1, keepdim=True).clamp_min(1e-300)) @ B.T
                # a neuron belongs to this B when both its vectors snap into it best among all orbits
                best_here = torch.stack([torch.maximum(
                    ((v / v.norm(dim=1, keepdim=True).clamp_min(1e-300)) @ C.T).amax(1),
                    torch.zeros(len(idx), dtype=torch.float64)) for C in orbits], 1).argmax(1) == o
                best_here &= torch.stack([((w / w.norm(dim=1, keepdim=True).clamp_min(1e-300)) @ C.T).amax(1)
                                          for C in orbits], 1).argmax(1) == o
                ok = best_here & (cb.amax(1) >= b_cos) & (cbp.amax(1) >= b_cos)
                bi, bpi = cb.argmax(1), cbp.argmax(1)
                l0 = X @ B[bi].T                                            # [n, c]
                r0 = Y @ B[bpi].T
                s = ((L[:, idx] * l0).sum(0) + (R[:, idx] * r0).sum(0)) / (l0.pow(2).sum(0) + r0.pow(2).sum(0))
                ok &= s > 0
                if not bool(ok.any()):
                    continue
                q = torch.einsum("cd,nde,ce->nc", B[bi], Rm, B[bpi])        # [n, c]  b^T rho(z) b'
                t = -(U[:, idx] * q).sum(0) / q.pow(2).sum(0).clamp_min(1e-300)
                k = B.shape[0]
                W = torch.zeros((k, k), dtype=torch.float64)
                W.index_put_((bi[ok], bpi[ok]), (s * t)[ok], accumulate=True)
                circuits.append(Circuit(name, a, B, idx[ok], bi[ok], bpi[ok], s[ok], t[ok], W,
                                        max(0.0, float(W.mean()))))
                explained[idx[ok]] = True
    return RhoSetInterpretation(circuits, torch.nonzero(~explained).flatten(), m)
