"""The rho-set proof (Wu et al. 2025, section 6, reconstructed) and our hybrid that finishes by brute force.

Given the interpretation of :mod:`rep_theory.explain.proofs.rhofit`, three networks are compared:

* the real one, ``f``;
* the *neuron-level ideal* ``f^N``: each explained neuron replaced by its snapped form
  ``-t b^T rho(z) b' * relu(s (b^T rho(x) a - a^T rho(y) b'))``, the others by zero;
* the *symmetric ideal* ``f~ = sum_circuits Wbar sum_{b, b' in B} t_{b b'}`` with
  ``t_{b b'}(z | x, y) = -b^T rho(z) b' relu(b^T rho(x) a - a^T rho(y) b')``.

Bi-equivariance.  ``B`` is an orbit and ``rho`` orthogonal, so re-indexing ``b -> rho(g) b``
shows ``f~(g z | g x, y) = f~(z | x, y)`` and ``b' -> rho(g)^T b'`` shows ``f~(z g | x, y g) = f~(z | x, y)``;
hence ``f~(z | x, y) = Phi(x^-1 z y^-1)`` with ``Phi(g) = sum_c Wbar_c T_c(g)``,
``T_c(g) = -sum_{b,b'} b^T rho(g) b' relu(b^T a - a^T b')``: one table of ``|G|`` values per circuit.
The correct answer ``z = xy`` sits at ``g = e``, so every pair has the same ideal margin
``M = Phi(e) - max_{g != e} Phi(g)``.

Deviation.  ``|margin_f - margin_{f^N}| <= eps_neuron(x, y)`` by the lemma of
:mod:`rep_theory.explain.proofs.core`, and
``|margin_{f^N} - margin_{f~}| <= eps_cover(x, y) = sum_c sum_{b,b'} |W - Wbar| range_z(b^T rho(z) b') relu(b^T rho(x) a - a^T rho(y) b')``.
A pair is certified when ``M - eps_neuron - eps_cover`` exceeds the rounding slack.

Methods:

* ``rhoset``: as Wu et al. describe, ``|h - h~|`` bounded through the 1-Lipschitz ReLU by ``|dL[x] + dR[y]|``;
* ``hybrid`` (ours): ``|h - h~|`` computed exactly (same ``O(|G|^2 m)`` order), then every pair the
  explanation leaves uncertified is run through the network (``O(|G| m)`` each), so the bound is the
  exact accuracy at the price of brute force on the uncovered pairs only.
"""

from __future__ import annotations

import torch

from rep_theory.algebra.groups import Group
from rep_theory.explain.proofs.core import Flops, deviation_bound, fallback_failures, logit_scale, rounding_slack
from rep_theory.explain.proofs.rhofit import RhoSetInterpretation

__all__ = ["rhoset_proof", "ideal_table", "circuit_tables", "check_circuits"]


def circuit_tables(G: Group, circuit, flops: Flops | None = None) -> dict[str, torch.Tensor]:
    """Per circuit: ``P [n, k]`` (``b^T rho(x) a``), ``Q [n, k]`` (``a^T rho(y) b'``), ``q [n, k, k]``
    (``b^T rho(z) b'``) and ``T [n]`` (the circuit's ideal table, unweighted)."""
    M = G.irrep(circuit.irrep).matrices
    n, d = M.shape[0], M.shape[1]
    B, a = circuit.B, circuit.a
    k = B.shape[0]
    P = (M @ a) @ B.T
    Q = (M.transpose(1, 2) @ a) @ B.T
    q = torch.einsum("kd,nde,le->nkl", B, M, B)
    gate = torch.relu(P[0][:, None] - Q[0][None, :])                         # x = y = e
    T = -(q * gate).sum((1, 2))
    if flops is not None:
        flops.add("ideal tables", 2 * (2 * n * d * d + 2 * n * k * d) + n * (2 * k * d * d + 2 * k * k * d)
                  + 2 * k * k + 2 * n * k * k)
    return {"P": P, "Q": Q, "q": q, "T": T}


def ideal_table(G: Group, interp: RhoSetInterpretation, tables: list | None = None) -> torch.Tensor:
    """``Phi [n]``: the symmetric ideal's logit of ``z`` on input ``(x, y)`` is ``Phi[x^-1 z y^-1]``."""
    tables = tables or [circuit_tables(G, c) for c in interp.circuits]
    Phi = torch.zeros(G.order, dtype=torch.float64)
    for c, tab in zip(interp.circuits, tables):
        Phi += c.ideal_weight * tab["T"]
    return Phi


def check_circuits(G: Group, interp: RhoSetInterpretation, n_neurons: int) -> float:
    """Check what the proof's symmetry argument takes from the interpretation, and return the slack
    its rounding needs.

    ``ValueError`` unless every circuit is well formed (``a [d]``, ``B [k, d]``; ``neurons``, ``b``,
    ``bp``, ``scale`` and ``readout`` one-dimensional and of one length, ``b`` and ``bp`` in ``[0, k)``;
    everything finite and every scale ``> 0``, since ``relu(s u) = s relu(u)`` needs it), each
    neuron index lies in ``[0, n_neurons)`` and belongs to at most one circuit, and every ``rho(g)``
    permutes each circuit's ``B`` (every image within ``1e-9`` of a distinct element): the one margin
    ``M`` for all pairs rests on re-indexing the sum over ``B``.
    Fitted rho-sets are orbits computed to rounding; the departure ``eps`` (Euclidean) that remains
    moves each of a circuit's ``k^2`` terms ``b^T rho(z) b' relu(b^T rho(x) a - a^T rho(y) b')`` by at
    most ``8 |a| max|b|^2 eps``, so the margin by at most twice ``|Wbar| k^2`` that, summed over circuits.
    """
    for c in interp.circuits:
        _check_circuit(G, c)
    neurons = [c.neurons for c in interp.circuits]
    every = torch.cat(neurons) if neurons else torch.zeros(0, dtype=torch.long)
    if every.numel() and (int(every.min()) < 0 or int(every.max()) >= n_neurons):
        raise ValueError(f"circuit neurons must be indices in [0, {n_neurons}), got "
                         f"{int(every.min())}..{int(every.max())}")
    values, counts = torch.unique(every, return_counts=True)
    if bool((counts > 1).any()):
        raise ValueError(f"neurons {values[counts > 1].tolist()} belong to more than one circuit; "
                         f"each may belong to one")
    slack = 0.0
    for c in interp.circuits:
        M = G.irrep(c.irrep).matrices
        k, d = c.B.shape
        images = torch.einsum("nde,ke->nkd", M, c.B)                         # [n, k, d]: rho(g) b
        dist = (images[:, :, None, :] - c.B[None, None, :, :]).norm(dim=-1)   # [n, k, k]
        nearest = dist.argmin(-1)                                            # [n, k]
        eps = float(dist.amin(-1).max())
        permutes = bool((nearest.sort(-1).values == torch.arange(k)).all())
        if not (eps <= 1e-9 and permutes):
            raise ValueError(f"the circuit on {c.irrep} has a B that rho(G) does not permute (an image lies {eps:.2e} "
                             f"from B{'' if permutes else ', or two images share an element'}): not a rho-set")
        slack += 16 * abs(c.ideal_weight) * k * k * float(c.a.norm()) * float(c.B.norm(dim=1).max()) ** 2 * eps
    return slack


def _check_circuit(G: Group, c) -> None:
    d = G.irrep(c.irrep).dim
    k = c.B.shape[0] if c.B.ndim == 2 else -1
    if c.a.shape != (d,) or c.B.ndim != 2 or c.B.shape[1] != d or k == 0:
        raise ValueError(f"the circuit on {c.irrep} needs a [{d}] and B [k, {d}] with k >= 1, got a {tuple(c.a.shape)} "
                         f"and B {tuple(c.B.shape)}")
    fields = {"neurons": c.neurons, "b": c.b, "bp": c.bp, "scale": c.scale, "readout": c.readout}
    lengths = {name: tuple(v.shape) for name, v in fields.items()}
    if len(set(lengths.values())) != 1 or len(c.neurons.shape) != 1:
        raise ValueError(f"the circuit on {c.irrep} needs one-dimensional neurons, b, bp, scale and readout "
                         f"of one length, got shapes {lengths}")
    if c.b.numel() and (int(torch.cat([c.b, c.bp]).min()) < 0 or int(torch.cat([c.b, c.bp]).max()) >= k):
        raise ValueError(f"the circuit on {c.irrep} has b or b' outside [0, {k})")
    values = {"a": c.a, "B": c.B, "scale": c.scale, "readout": c.readout,
              "ideal_weight": torch.tensor(float(c.ideal_weight))}
    bad = [name for name, v in values.items() if not bool(torch.isfinite(v).all())]
    if bad:
        raise ValueError(f"the circuit on {c.irrep} has non-finite {bad}")
    if not bool((c.scale > 0).all()):
        raise ValueError(f"circuit on {c.irrep}: every neuron's scale must be > 0, got min {float(c.scale.min())}")


def rhoset_proof(G: Group, L: torch.Tensor, R: torch.Tensor, U: torch.Tensor, interp: RhoSetInterpretation, *,
                 lipschitz: bool, fallback: bool, flops: Flops) -> dict:
    """Run the proof; returns ``certified`` (bool ``[n, n]``), ``failures`` and ``details``.

    ``lipschitz``: bound ``|h - h~|`` by ``|dL + dR|``; ``fallback``: finish uncertified pairs by brute force.
    """
    n, m = L.shape
    table = G.table
    symmetry_slack = check_circuits(G, interp, m)
    tables = [circuit_tables(G, c, flops) for c in interp.circuits]
    # the neuron-level ideal's weights
    Lt, Rt, Ut = (torch.zeros((n, m), dtype=torch.float64) for _ in range(3))
    for c, tab in zip(interp.circuits, tables):
        Lt[:, c.neurons] = c.scale * tab["P"][:, c.b]
        Rt[:, c.neurons] = -c.scale * tab["Q"][:, c.bp]
        Ut[:, c.neurons] = -c.readout * tab["q"][:, c.b, c.bp]
    flops.add("ideal weights", 3 * n * sum(int(c.neurons.numel()) for c in interp.circuits))
    # the symmetric ideal's margin, the same for every pair
    Phi = ideal_table(G, interp, tables)
    margin = float(Phi[0] - Phi[1:].max()) if n > 1 else float("inf")
    flops.add("ideal margin", 2 * n * len(tables) + n)
    eps_neuron, kept = deviation_bound(L, R, U, Lt, Rt, Ut, lipschitz=lipschitz, flops=flops, keep_hidden=fallback)
    eps_cover = torch.zeros((n, n), dtype=torch.float64)
    active = 0
    for c, tab in zip(interp.circuits, tables):
        # W[b, b'] = sum of s t over the circuit's neurons on (b, b'), recomputed here from the neurons'
        # parameters (not taken from the fit; check_circuits checked s > 0, as relu(s u) = s relu(u) needs)
        k = c.B.shape[0]
        weight = torch.zeros((k, k), dtype=torch.float64).index_put_((c.b, c.bp), c.scale * c.readout,
                                                                      accumulate=True)
        spread = tab["q"].amax(0) - tab["q"].amin(0)                         # [k, k]
        gamma = (weight - c.ideal_weight).abs() * spread
        flops.add("coverage weights", 2 * c.scale.numel() + 4 * weight.numel() + 2 * n * weight.numel())
        for b in torch.nonzero(gamma.abs().sum(1) > 0).flatten().tolist():
            cols = torch.nonzero(gamma[b] > 0).flatten()
            eps_cover += torch.relu(tab["P"][:, b, None, None] - tab["Q"][None, :, cols]) @ gamma[b, cols]
            active += int(cols.numel())
    flops.add("coverage", 4 * n * n * active)
    # the ideals are computed too: the neuron-level ideal's logit scale and the terms of Phi enter the slack
    phi_terms = sum(abs(c.ideal_weight) * float((tab["q"].abs().amax(0)
                                                 * torch.relu(tab["P"][0][:, None] - tab["Q"][0][None, :])).sum())
                    for c, tab in zip(interp.circuits, tables))
    slack = rounding_slack(L, R, U, margin, float(eps_neuron.max()) if n else 0.0, float(eps_cover.max()) if n else 0.0,
                           logit_scale(Lt, Rt, Ut), phi_terms) + symmetry_slack
    certified = (margin - eps_neuron - eps_cover) > slack
    flops.add("certify", 3 * n * n)
    failures = {}
    if margin <= slack:
        failures["ideal_margin_not_positive"] = n * n
    else:
        neuron_alone = eps_neuron >= margin - slack
        failures["weight_deviation"] = int(neuron_alone.sum())
        failures["coverage_deviation"] = int((~certified & ~neuron_alone).sum())
    details = {"ideal_margin": margin, "rounding_slack": slack,
               "certified_by_explanation": int(certified.sum()), **interp.summary()}
    if fallback:
        rest = torch.nonzero(~certified)
        if len(rest):
            h = kept[rest[:, 0], rest[:, 1]]                                 # the proof computed these already
            logits = h @ U.T
            target = table[rest[:, 0], rest[:, 1]]
            right = logits.gather(1, target[:, None])[:, 0]
            logits.scatter_(1, target[:, None], float("-inf"))
            margins = right - logits.max(1).values
            flops.add("fallback readout", len(rest) * (2 * n * m + n))
            certified[tuple(rest[margins > slack].T)] = True
        else:
            margins = torch.zeros(0, dtype=torch.float64)
        details["brute_forced_pairs"] = len(rest)
        failures = fallback_failures(margins, slack)
    return {"certified": certified, "failures": failures, "details": details,
            "diagnostics": {"eps_neuron": eps_neuron, "eps_cover": eps_cover}}

