"""What the verifiers refuse, and what they allow for, so that no explanation or network can make
them certify a wrong pair.  Each case comes from an adversarial audit that found a wrong pair
certified before the guard existed (the README's "Soundness evidence")."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import rep_theory.algebra  # noqa: F401  (registers the irreps)
from rep_theory.algebra.groups import get_group
from rep_theory.explain.proofs import planted_circuits_mlp, verify
from rep_theory.explain.proofs.core import Flops, brute_margins, fallback_failures, mlp_matrices
from rep_theory.explain.proofs.fourier_proof import fit_fourier, fourier_proof
from rep_theory.explain.proofs.planted import planted_circuits_state
from rep_theory.explain.proofs.rhofit import Circuit, RhoSetInterpretation, fit_rhoset
from rep_theory.explain.proofs.rhoset import check_circuits, circuit_tables, rhoset_proof
from rep_theory.training.models import make_model


def mlp_from(L: torch.Tensor, R: torch.Tensor, U: torch.Tensor):
    """A float64 OneLayerMLP whose ``mlp_matrices`` are exactly ``(L, R, U)`` (``W = [I; I]``)."""
    n, m = L.shape
    model = make_model("OneLayerMLP", n, embed_dim=m, hidden_dim=m).double()
    eye = torch.eye(m, dtype=torch.float64)
    model.load_state_dict({"W_x": L, "W_y": R, "W": torch.cat([eye, eye]), "W_U": U.T.contiguous()})
    return model


def test_repeated_key_irreps_are_refused():
    """A key irrep named twice would count its part of the readout twice (and leave it out of the
    residual's bound): on a 3-neuron S3 network the audit found 6 wrong pairs certified that way."""
    G = get_group("S3")
    gen = torch.Generator().manual_seed(0)
    model = mlp_from(*(torch.randn(6, 3, dtype=torch.float64, generator=gen) for _ in range(3)))
    for method in ("fourier", "fourier_hybrid", "gcr"):
        with pytest.raises(ValueError, match=r"key irreps \['standard'\] are listed more than once"):
            verify(model, G, method=method, key_irreps=["standard", "standard"])
    assert verify(model, G, method="fourier", key_irreps=["standard"]).bound >= 0


def test_non_finite_weights_are_refused():
    G = get_group("S3")
    gen = torch.Generator().manual_seed(1)
    L, R, U = (torch.randn(6, 3, dtype=torch.float64, generator=gen) for _ in range(3))
    U[2, 1] = float("nan")
    with pytest.raises(ValueError, match="unembedding U is not finite"):
        verify(mlp_from(L, R, U), G, method="brute")


def test_cores_off_orthonormal_within_the_tolerance_stay_sound():
    """A core of squared norm ``1 + 8e-13`` passes the orthonormality check (``1e-12``); without the
    allowance for that departure, ``||Delta||`` came out about ``1e-6 ||C||`` too small, and on this S3
    network (built so that ``C(e, e)`` lies ``6e-7`` off the core, against the identity) the proof
    certified the wrong pair ``(e, e)``."""
    G = get_group("S3")
    rho = G.irrep("standard")
    Mz = rho.matrices
    reflection = next(g for g in range(1, G.order) if abs(float(rho.character[g])) < 1e-9)
    _, vecs = torch.linalg.eigh(Mz[reflection])
    fixed = vecs[:, 1]                                                       # rho(reflection) f = f
    core = torch.outer(fixed, fixed) + 2e-7 * torch.eye(2, dtype=torch.float64)
    core = core / core.norm()
    A = torch.eye(2, dtype=torch.float64) - Mz[reflection]
    away = A - (A * core).sum() * core
    C = core - 6e-7 * away / away.norm()                                     # C(e, e): the core, then against e
    U = ((Mz * C).sum((1, 2)) / 3)[:, None].clone()
    L, R = torch.ones(G.order, 1, dtype=torch.float64), torch.zeros(G.order, 1, dtype=torch.float64)
    correct = brute_margins(L, R, U, G.table) > 0
    assert not bool(correct[0, 0])                                          # (e, e) is wrong, by 2.7e-7
    fit = fit_fourier(G, L, R, U, key_irreps=["standard"])
    for scale in (1.0, 1 + 4e-13):
        bent = dataclasses.replace(fit, cores={"standard": (scale * core)[None]}, positive={"standard": True})
        certified = fourier_proof(G, L, R, U, bent, fallback=False, flops=Flops())["certified"]
        assert not bool((certified & ~correct).any()), scale


def test_hybrids_leave_a_tie_uncertified():
    """The hybrids' brute-force fallback computes a pair's logits in another order than the reference
    brute force: at a tie (margin 0 there) it found 2.2e-16 and certified the pair.  A fallback
    pair now counts only above the rounding slack; the rest are counted as wrong or within rounding."""
    G = get_group("S3")
    n = G.order
    state = planted_circuits_state(G, {"standard": 1.0}, rho_set=1)
    e = state["W_x"].shape[1]
    W = state["W"].double()
    L0, R0, U0 = state["W_x"].double() @ W[:e], state["W_y"].double() @ W[e:], state["W_U"].double().T
    sign = G.irrep("sign").matrices
    w = int(G.table[0, 0])
    z1 = next(z for z in range(n) if z != w and float(((sign * (sign[z] - sign[w])).sum((1, 2)))[z]
                                                       - ((sign * (sign[z] - sign[w])).sum((1, 2)))[w]) > 1e-9)
    column = (sign * (sign[z1] - sign[w])).sum((1, 2))
    spike_left = torch.zeros(n, dtype=torch.float64)
    spike_left[0] = 1
    spike_right = torch.full((n,), -1.0, dtype=torch.float64)
    spike_right[0] = 0
    L, R = torch.cat([L0, spike_left[:, None]], 1), torch.cat([R0, spike_right[:, None]], 1)
    lo, hi = 0.0, 3.0
    for _ in range(80):                         # the spike's weight that makes (e, e) a tie
        mid = (lo + hi) / 2
        if float(brute_margins(L, R, torch.cat([U0, mid * column[:, None]], 1), G.table)[0, 0]) > 0:
            lo = mid
        else:
            hi = mid
    U = torch.cat([U0, hi * column[:, None]], 1)
    model = mlp_from(L, R, U)
    exact = verify(model, G, method="brute").certified_mask
    for method in ("hybrid", "fourier_hybrid"):
        result = verify(model, G, method=method)
        assert not bool((result.certified_mask & ~exact).any()), method
        assert result.failures["wrong_by_brute_force"] + result.failures["within_rounding"] == n * n - result.certified


def test_fallback_failures_count_by_margin():
    margins = torch.tensor([-1.0, 0.0, 1e-12, 0.5, 2.0], dtype=torch.float64)
    assert fallback_failures(margins, slack=1e-9) == {"wrong_by_brute_force": 2, "within_rounding": 1,
                                                      "explanation_uncertified": 5}


def _planted_circuit(G, B: torch.Tensor, a: torch.Tensor):
    k = B.shape[0]
    b, bp = (idx.flatten() for idx in torch.meshgrid(torch.arange(k), torch.arange(k), indexing="ij"))
    ones = torch.ones(k * k, dtype=torch.float64)
    circuit = Circuit("standard", a, B, torch.arange(k * k), b, bp, ones, ones,
                      torch.ones(k, k, dtype=torch.float64), 1.0)
    tab = circuit_tables(G, circuit)
    return circuit, tab["P"][:, b], -tab["Q"][:, bp], -tab["q"][:, b, bp]


def test_rhoset_proof_checks_its_circuits():
    """The one margin for every pair rests on each ``B`` being permuted by ``rho(G)``: with a ``B``
    that is not, the audit found wrong pairs certified on 63 of 200 random S3 networks that are their
    own neuron-level ideal; a neuron listed in two circuits is refused too.  A fitted interpretation
    passes, with a symmetry slack at rounding size."""
    G = get_group("S3")
    gen = torch.Generator().manual_seed(3)
    B = torch.nn.functional.normalize(torch.randn(3, 2, dtype=torch.float64, generator=gen), dim=1)
    a = torch.nn.functional.normalize(torch.randn(2, dtype=torch.float64, generator=gen), dim=0)
    circuit, L, R, U = _planted_circuit(G, B, a)
    interp = RhoSetInterpretation([circuit], torch.zeros(0, dtype=torch.long), 9)
    with pytest.raises(ValueError, match="does not permute"):
        rhoset_proof(G, L, R, U, interp, lipschitz=False, fallback=False, flops=Flops())
    twice = RhoSetInterpretation([circuit, circuit], torch.zeros(0, dtype=torch.long), 9)
    with pytest.raises(ValueError, match="belong to more than one circuit"):
        check_circuits(G, twice, 9)
    model, G4 = planted_circuits_mlp("S4", {"standard": 1.0, "standard_sign": 0.5})
    L4, R4, U4 = mlp_matrices(model)
    fitted = fit_rhoset(G4, L4, R4, U4)
    assert 0 <= check_circuits(G4, fitted, L4.shape[1]) < 1e-9


def _fitted_circuit(spec: str = "S3"):
    model, G = planted_circuits_mlp(spec, "standard")
    L, R, U = mlp_matrices(model)
    return G, fit_rhoset(G, L, R, U).circuits[0], (L, R, U)


def test_rhoset_refuses_malformed_circuits():
    """A second audit called ``rhoset_proof`` with hand-made circuits: per-neuron fields of different
    lengths (one ``(b, b', s, t)`` broadcast over 400 neurons but counted once in ``W``: 12 wrong pairs
    certified), a NaN scale (its row of the coverage term skipped: 24 wrong), a ``weight`` of shape
    ``[1, 1]`` (the coverage term broadcast to 0: 33 wrong).  Malformed circuits are refused; ``W`` is
    rebuilt at ``[k, k]`` from the neurons whatever the circuit's ``weight``."""
    G, circuit, (L, R, U) = _fitted_circuit()
    m = L.shape[1]
    bad = {"one length": dataclasses.replace(circuit, b=circuit.b[:1], bp=circuit.bp[:1]),
           "non-finite": dataclasses.replace(circuit, scale=circuit.scale.clone().fill_(float("nan"))),
           "outside": dataclasses.replace(circuit, bp=circuit.bp + circuit.B.shape[0]),
           "needs a": dataclasses.replace(circuit, a=torch.cat([circuit.a, circuit.a])),
           "k >= 1": dataclasses.replace(circuit, B=circuit.B[:0])}
    for message, c in bad.items():
        with pytest.raises(ValueError, match=message):
            rhoset_proof(G, L, R, U, RhoSetInterpretation([c], torch.zeros(0, dtype=torch.long), m),
                         lipschitz=True, fallback=False, flops=Flops())
    honest = rhoset_proof(G, L, R, U, RhoSetInterpretation([circuit], torch.zeros(0, dtype=torch.long), m),
                          lipschitz=True, fallback=False, flops=Flops())
    small = dataclasses.replace(circuit, weight=torch.zeros(1, 1, dtype=torch.float64))
    shaped = rhoset_proof(G, L, R, U, RhoSetInterpretation([small], torch.zeros(0, dtype=torch.long), m),
                          lipschitz=True, fallback=False, flops=Flops())
    torch.testing.assert_close(shaped["diagnostics"]["eps_cover"], honest["diagnostics"]["eps_cover"], rtol=0, atol=0)


def test_gcr_proof_refuses_repeated_key_irreps():
    """``verify`` refused them already; ``gcr_proof`` called directly counted a repeated irrep's ideal
    margin twice (a network wrong on all 36 S3 pairs, ideal margin -1/3, was certified everywhere)."""
    from rep_theory.explain.proofs.baselines import fit_gcr, gcr_proof

    G = get_group("S3")
    gen = torch.Generator().manual_seed(5)
    L, R, U = (torch.randn(6, 4, dtype=torch.float64, generator=gen) for _ in range(3))
    fit = fit_gcr(G, L, R, U, key_irreps=["standard", "sign"])
    with pytest.raises(ValueError, match="listed more than once"):
        gcr_proof(G, L, R, U, dict(fit, key_irreps=["standard", "standard", "sign"]), Flops())


def test_the_ideals_own_scale_enters_the_slack():
    """The rounding slack scaled with the real network only: an ideal with a huge constant part (a
    coset ideal's extra neuron with readout ``1.5 * 2^100``; a rho-set circuit on the trivial irrep
    with weight ``1.5 * 2^99`` and no neurons) rounded to positive margins on pairs the network gets
    wrong.  The ideal's logit scale now enters the slack; this is the audit's C2 x C2 case (4 wrong
    pairs certified before)."""
    from rep_theory.explain.proofs.baselines import coset_proof

    G = get_group("C2xC2")
    hexes = [["0x0.0p+0", "0x1.a74d403e85b08p+46", "0x1.f5904ace21618p+45"],
             ["0x0.0p+0", "0x1.600b2c5496696p+47", "-0x1.77bf90126ebf4p+46"],
             ["0x0.0p+0", "-0x1.7c1772425f244p+50", "-0x1.48bbe77111eccp+50"],
             ["0x0.0p+0", "-0x1.0ce0ae121ae7dp+50", "-0x1.1e841eec0671fp+50"]]
    U = torch.tensor([[float.fromhex(v) for v in row] for row in hexes], dtype=torch.float64)
    L = torch.tensor([[0.0, 1.0, 1.0]] * 4, dtype=torch.float64)
    R = torch.zeros(4, 3, dtype=torch.float64)
    LC, UC = L.clone(), U.clone()
    LC[:, 0], UC[:, 0] = 1.0, 1.5 * 2.0 ** 100                               # the ideal's constant neuron
    out = coset_proof(G, L, R, U, {"LC": LC, "RC": R.clone(), "UC": UC, "explained_neurons": 3}, Flops())
    correct = brute_margins(L, R, U, G.table) > 0
    assert not bool((out["certified"] & ~correct).any())
    assert out["details"]["rounding_slack"] > 1e-9 * 1.5 * 2.0 ** 100
    # the rho-set proof: a trivial circuit of huge weight and no neurons raises the slack with it
    G3, circuit, (L3, R3, U3) = _fitted_circuit()
    empty = torch.zeros(0, dtype=torch.long)
    trivial = Circuit("trivial", torch.ones(1, dtype=torch.float64), torch.tensor([[1.0], [-1.0]], dtype=torch.float64),
                      empty, empty, empty, torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.float64),
                      torch.zeros(2, 2, dtype=torch.float64), 1.5 * 2.0 ** 99)
    interp = RhoSetInterpretation([circuit, trivial], empty, L3.shape[1])
    out = rhoset_proof(G3, L3, R3, U3, interp, lipschitz=True, fallback=False, flops=Flops())
    assert out["details"]["rounding_slack"] > 1e-9 * 1.5 * 2.0 ** 99
    assert not bool((out["certified"] & ~(brute_margins(L3, R3, U3, G3.table) > 0)).any())
