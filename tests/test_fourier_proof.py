"""The Fourier-basis verifier (rep_theory.explain.proofs.fourier_proof): planted circuits certified
completely, a bound that falls as the circuits are perturbed and stays sound, the hybrid equal to the
exact accuracy, the residual's quadratic bound and the Pareto reduction checked on their own, and
the paper's S5 networks verified soundly."""

from __future__ import annotations

import pytest
import torch

import rep_theory.algebra  # noqa: F401  (registers the irreps)
from rep_theory.algebra.groups import get_group
from rep_theory.explain.proofs import planted_circuits_mlp, verify
from rep_theory.explain.proofs.core import mlp_matrices
from rep_theory.explain.proofs.fourier_proof import _pareto, fit_fourier, fourier_certificate

from test_proofs import _reference_s5, check_sound

METHODS = ("brute", "fourier", "fourier_hybrid")


@pytest.mark.parametrize("spec, irreps", [("S3", "standard"), ("S4", {"standard": 1.0, "standard_sign": 0.5}),
                                          ("D5", "freq_1"), ("S5", {"standard": 1.0, "sign": 0.5})])
def test_planted_circuits_are_certified_completely(spec, irreps):
    model, G = planted_circuits_mlp(spec, irreps, rho_set=1)
    out = check_sound(model, G, METHODS)
    assert out["brute"].bound == 1.0 and out["fourier"].bound == 1.0
    assert out["fourier"].failures == {"core_reversed": 0, "deviation": 0}
    assert out["fourier_hybrid"].details["brute_forced_pairs"] == 0
    # a bi-equivariant network: nothing is left outside the key irreps' cores
    assert out["fourier"].details["median_residual_bound"] < 1e-6
    names = irreps if isinstance(irreps, dict) else {irreps: 1.0}
    assert set(out["fourier"].details["key_irreps"]) == set(names)


def test_bound_falls_as_planted_circuits_are_perturbed():
    bounds, exact = [], []
    for noise in (0.0, 0.02, 0.05, 0.1, 0.2):
        model, G = planted_circuits_mlp("S4", {"standard": 1.0, "standard_sign": 0.5}, rho_set=1)
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in (model.W_x, model.W_y, model.W_U):
                p.add_(noise * p.abs().max() * torch.randn(p.shape, generator=gen))
        out = check_sound(model, G, METHODS)
        bounds.append(out["fourier"].bound)
        exact.append(out["brute"].bound)
        assert out["fourier_hybrid"].bound == out["brute"].bound
    assert bounds[0] == 1.0 and bounds[-1] < 0.5
    assert all(a >= b for a, b in zip(bounds, bounds[1:])), bounds
    assert any(0.0 < b < 1.0 for b in bounds) or bounds[-1] < exact[-1]


def test_untrained_and_trained_networks_are_verified_soundly():
    from rep_theory.training.models import make_model

    G = get_group("S4")
    for seed in (1, 2, 3):
        check_sound(make_model("OneLayerMLP", G.order, seed=seed, embed_dim=16, hidden_dim=24), G, METHODS)


def test_residual_quadratic_bound_holds():
    """``r^T G r <= sum lambda (v.r)^2 + mu (|r|^2 - |V^T r|^2) + tau |r|^2`` on random and adversarial r."""
    model, G = _reference_s5(3)
    L, R, U = mlp_matrices(model)
    for rank in (0, 4, 16):
        fit = fourier_certificate(G, U, fit_fourier(G, L, R, U, rank=rank))
        Gram = fit.rest_readout.T @ fit.rest_readout
        V = fit.weights[:, fit.weights.shape[1] - rank:]
        _, vecs = torch.linalg.eigh(Gram)
        r = torch.cat([torch.randn(200, L.shape[1], dtype=torch.float64, generator=torch.Generator().manual_seed(rank)),
                       vecs.T, V.T], 0)                                       # random, eigen-, and kept directions
        proj = r @ V
        bound = (proj.pow(2) @ fit.eigvals) + fit.mu * (r.pow(2).sum(1) - proj.pow(2).sum(1)) + fit.tau * r.pow(2).sum(1)
        exact = ((r @ Gram) * r).sum(1)
        assert bool((exact <= bound + 1e-9 * exact.abs().max()).all()), rank


def test_fitted_directions_pass_the_cholesky_test(monkeypatch):
    """For fitted directions (eigenvectors of ``G``, ``mu`` the next eigenvalue) the allowance ``tau`` is
    certified by one Cholesky factorisation, without an eigenvalue problem; it still bounds the top
    eigenvalue of ``X = G - V diag(lam) V^T - mu (I - V V^T)`` and stays at rounding size.  (Directions
    that fail the test take the eigenvalue problem: ``test_the_explanation_is_trusted_for_nothing``.)"""
    from rep_theory.explain.proofs.fourier_proof import _residual_allowance

    model, G = _reference_s5(2)
    L, R, U = mlp_matrices(model)
    eigvalsh = torch.linalg.eigvalsh
    for rank in (0, 4, 16):
        fit = fit_fourier(G, L, R, U, rank=rank)
        U_rest = fourier_certificate(G, U, fit).rest_readout
        with monkeypatch.context() as patch:
            patch.setattr(torch.linalg, "eigvalsh", lambda X: pytest.fail("the eigenvalue problem was solved"))
            tau, lam, _ = _residual_allowance(U_rest, fit.directions, fit.mu)
        m = U.shape[1]
        V = fit.directions
        Gram = U_rest.T @ U_rest
        X = Gram - (V * lam) @ V.T - fit.mu * (torch.eye(m, dtype=torch.float64) - V @ V.T)
        top = float(eigvalsh((X + X.T) / 2)[-1])
        scale = float(Gram.trace()) + fit.mu
        assert top < tau < 1e-10 * scale, (rank, top, tau)


def test_pareto_points_keep_the_minimum():
    gen = torch.Generator().manual_seed(0)
    pts = torch.randn(4, 60, dtype=torch.float64, generator=gen).round(decimals=1)
    kept = _pareto(pts)
    assert kept.shape[1] < pts.shape[1]
    coef = torch.rand(500, 4, dtype=torch.float64, generator=gen)             # non-negative coefficients
    torch.testing.assert_close((coef @ kept).amin(1), (coef @ pts).amin(1), rtol=0, atol=1e-12)


def test_reference_s5_networks():
    """Seed 2 is certified completely at a fraction of brute force's FLOPs; seed 1 (four key irreps)
    is not, soundly; the hybrid is exact on both."""
    for seed, certified in ((2, True), (1, False)):
        model, G = _reference_s5(seed)
        out = check_sound(model, G, METHODS)
        assert out["fourier_hybrid"].bound == out["brute"].bound == 1.0
        if certified:
            assert out["fourier"].bound == 1.0
            assert out["fourier"].flops < 0.4 * out["brute"].flops
        else:
            assert out["fourier"].bound < 0.95


def test_every_rank_down_to_zero_is_sound_and_rank_only_tightens():
    """``rank=0`` (the residual bounded by its largest eigenvalue alone) runs; on the paper's seed 2
    every rank is sound and a larger rank certifies a superset of pairs (each added eigen-direction
    replaces the next eigenvalue by the exact projection)."""
    model, G = _reference_s5(2)
    brute = verify(model, G, method="brute")
    masks = []
    for rank in (0, 4, 8, 16):
        out = verify(model, G, method="fourier", rank=rank)
        assert not bool((out.certified_mask & ~brute.certified_mask).any()), rank
        assert out.details["rank"] == rank
        masks.append(out.certified_mask)
    for lower, higher in zip(masks, masks[1:]):
        assert not bool((lower & ~higher).any())
    assert int(masks[0].sum()) < int(masks[-1].sum()) == G.order ** 2


def test_the_explanation_is_trusted_for_nothing():
    """The proof derives from the weights everything it relies on (:func:`fourier_certificate`): with
    a wrong explanation (random orthonormal directions, a too small ``mu``, random ``a`` and ``b``) the
    quadratic bound still holds and the proof stays sound, only looser; cores or directions that are not
    orthonormal, a negative ``mu`` and non-finite parts are refused."""
    import dataclasses

    from rep_theory.explain.proofs.core import Flops
    from rep_theory.explain.proofs.fourier_proof import fourier_proof

    model, G = _reference_s5(2)
    L, R, U = mlp_matrices(model)
    fit = fit_fourier(G, L, R, U)
    gen = torch.Generator().manual_seed(1)
    m = U.shape[1]
    random_directions = torch.linalg.qr(torch.randn(m, 6, dtype=torch.float64, generator=gen))[0]
    wrong = dataclasses.replace(fit, directions=random_directions,
                                mu=0.01 * fit.mu,
                                row_means=torch.randn(G.order, m, dtype=torch.float64, generator=gen),
                                column_means=torch.randn(G.order, m, dtype=torch.float64, generator=gen))
    cert = fourier_certificate(G, U, wrong)
    Gram = cert.rest_readout.T @ cert.rest_readout
    r = torch.randn(300, m, dtype=torch.float64, generator=gen)
    proj = r @ wrong.directions
    bound = proj.pow(2) @ cert.eigvals + cert.mu * (r.pow(2).sum(1) - proj.pow(2).sum(1)).clamp(min=0) \
        + cert.tau * r.pow(2).sum(1)
    assert bool((((r @ Gram) * r).sum(1) <= bound).all())
    assert cert.tau > 0.5 * fit.mu                          # the claimed mu was too small: tau makes up for it
    exact = verify(model, G, method="brute").certified_mask
    right = fourier_proof(G, L, R, U, fit, fallback=False, flops=Flops())["certified"]
    loose = fourier_proof(G, L, R, U, wrong, fallback=False, flops=Flops())["certified"]
    assert not bool((loose & ~exact).any()) and int(loose.sum()) < int(right.sum())
    bent = {k: v * 1.01 for k, v in fit.cores.items()}
    with pytest.raises(ValueError, match="cores of sign are not orthonormal"):
        fourier_certificate(G, U, dataclasses.replace(fit, cores=bent))
    with pytest.raises(ValueError, match="mu must be >= 0, got -1.0"):
        fourier_certificate(G, U, dataclasses.replace(fit, mu=-1.0))
    with pytest.raises(ValueError, match="directions must be orthonormal"):
        fourier_certificate(G, U, dataclasses.replace(fit, directions=1e3 * random_directions))
    for field in ("mu", "row_means", "directions"):
        value = getattr(fit, field)
        bad = float("nan") if field == "mu" else value.clone().index_fill_(0, torch.tensor([0]), float("inf"))
        with pytest.raises(ValueError, match=f"{field} must be finite"):
            fourier_certificate(G, U, dataclasses.replace(fit, **{field: bad}))


@pytest.mark.parametrize("n, rank, mu", [(12, 4, 0.0), (24, 16, 0.3), (12, 0, 2.0), (48, 16, 0.2), (100, 4, 0.1),
                                         (140, 16, 0.1)])
def test_residual_allowance_on_a_subspace_equals_the_full_problem(n, rank, mu):
    """With ``n + rank <= m / 2`` the allowance ``tau`` is found on a basis of ``span(U_rest^T, V)`` (an
    ``(n + rank)``-sized eigenvalue problem): it equals the full ``m x m`` problem's, and the bound holds
    on random vectors, on the full problem's worst direction and on the complement of that span."""
    from rep_theory.explain.proofs.fourier_proof import _residual_allowance

    gen = torch.Generator().manual_seed(n + rank)
    m = 128
    U_rest = torch.randn(n, m, dtype=torch.float64, generator=gen)
    V = torch.linalg.qr(torch.randn(m, rank, dtype=torch.float64, generator=gen))[0]   # orthonormal, random
    tau, lam, _ = _residual_allowance(U_rest, V, mu)
    G = U_rest.T @ U_rest
    X = G - (V * lam) @ V.T - mu * (torch.eye(m, dtype=torch.float64) - V @ V.T)
    evals, evecs = torch.linalg.eigh((X + X.T) / 2)
    full = max(0.0, float(evals[-1]))
    assert abs(tau - full) <= 1e-9 * float(G.trace() + mu) + 1e-12
    Q, _ = torch.linalg.qr(torch.cat([U_rest.T, V], 1), mode="complete")
    r = torch.cat([torch.randn(100, m, dtype=torch.float64, generator=gen), evecs[:, -1:].T,
                   Q[:, min(n + rank, m):].T], 0)                              # random, worst, complement
    lhs = ((r @ G) * r).sum(1)
    proj = r @ V
    rhs = proj.pow(2) @ lam + mu * (r.pow(2).sum(1) - proj.pow(2).sum(1)) + tau * r.pow(2).sum(1)
    assert bool((lhs <= rhs + 1e-9 * float(G.trace())).all())


def test_bad_options_are_named():
    model, G = planted_circuits_mlp("S3", "standard", rho_set=1)
    with pytest.raises(KeyError, match="nope"):
        verify(model, G, method="fourier", key_irreps=["nope"])
    with pytest.raises(ValueError, match="-1"):
        verify(model, G, method="fourier", rank=-1)
    with pytest.raises(ValueError, match="n_cores must be >= 1, got 0"):
        verify(model, G, method="fourier", n_cores=0)


@pytest.mark.parametrize("spec", ["C5", "Q8", "S4", "C4xC6"])
def test_residual_factor_bounds_every_difference(spec):
    """For a centred function f on G and every u and g: f(u) - f(u g) <= ||f||_2 f(g), with
    f(g)^2 = sum_{rho non-trivial} w_rho ||I - rho(g)||^2 (complex and quaternionic irreps included)."""
    from rep_theory.algebra.fourier import plancherel_weights

    G = get_group(spec)
    w = plancherel_weights(G)
    spread = sum(w[r.name] * (2 * r.dim - 2 * r.character) for r in G.irreps()[1:])
    gen = torch.Generator().manual_seed(0)
    f = torch.randn(50, G.order, dtype=torch.float64, generator=gen)
    f = f - f.mean(1, keepdim=True)
    diff = f[:, :, None] - f[:, G.table]                                      # [k, u, g]: f(u) - f(u g)
    bound = f.norm(dim=1)[:, None, None] * spread.clamp(min=0).sqrt()[None, None, :]
    assert bool((diff <= bound + 1e-12).all())
    # and it is attained up to a constant: the bound is not vacuous
    assert float((diff / bound.clamp(min=1e-12))[..., 1:].max()) > 0.3


def test_several_cores_are_orthonormal_sound_and_no_looser():
    """With ``n_cores`` > 1 the cores are orthonormal, the first along the mean core; planted circuits
    stay certified; on a paper S5 network the bound is sound and at least the one-core bound."""
    model, G = planted_circuits_mlp("S4", {"standard": 1.0, "standard_sign": 0.5}, rho_set=1)
    assert verify(model, G, method="fourier", n_cores=3).bound == 1.0
    model, G = _reference_s5(3)                        # sign + standard + a 5-d irrep: one core is not enough
    L, R, U = mlp_matrices(model)
    fit = fit_fourier(G, L, R, U, n_cores=3)
    for name, cores in fit.cores.items():
        flat = cores.reshape(cores.shape[0], -1)
        torch.testing.assert_close(flat @ flat.T, torch.eye(cores.shape[0], dtype=torch.float64), atol=1e-12, rtol=0)
    out = check_sound(model, G, ("brute",))
    bounds = {}
    for c in (1, 3, 6):
        r = verify(model, G, method="fourier", n_cores=c)
        assert not bool((r.certified_mask & ~out["brute"].certified_mask).any())
        bounds[c] = r.bound
    # the README's figures: 1.7% with one core, 25% with three, 98% with six
    assert bounds[1] < 0.03 and 0.2 < bounds[3] < 0.3 and bounds[6] > 0.97, bounds


def test_cyclic_paper_network_with_free_sign_scales(tmp_path):
    """The paper's C113 MLP: with the 1% key threshold some key irreps' first scale changes sign across
    pairs, so it enters with a free sign (``positive`` False) instead of leaving those pairs out; the
    bound is sound and non-vacuous (measured 0.88 at rank 48).  With two cores per key irrep both lie
    in the plane of ``I`` and the quarter turn (the matrices commuting with a 2-d rotation irrep) and
    the bound passes 95% (measured 0.963 at rank 32)."""
    from rep_theory.pipeline.paper_import import import_paper_run
    from rep_theory.training.config import load_config
    from rep_theory.training.rundir import load_run_model

    run = import_paper_run("reference/paper_models/C113_MLP_seed1", tmp_path / "C113_MLP_seed1")
    G = get_group(load_config(run).spec)
    model = load_run_model(run)
    L, R, U = mlp_matrices(model)
    fit = fit_fourier(G, L, R, U, key_power=0.01, rank=48)
    assert not all(fit.positive.values())
    out = check_sound(model, G, ("brute",))
    r = verify(model, G, method="fourier", key_power=0.01, rank=48)
    assert not bool((r.certified_mask & ~out["brute"].certified_mask).any())
    assert r.bound > 0.5 and r.failures["core_reversed"] == 0
    two = fit_fourier(G, L, R, U, key_power=0.01, n_cores=2, rank=32)
    for k in two.key_irreps:
        c = two.cores[k]                                                     # [2, 2, 2]
        commuting = ((c[:, 0, 0] + c[:, 1, 1]).pow(2) + (c[:, 1, 0] - c[:, 0, 1]).pow(2)) / 2
        assert torch.allclose(commuting, torch.ones(2, dtype=torch.float64), atol=1e-9), k
    r2 = verify(model, G, method="fourier", key_power=0.01, n_cores=2, rank=32)
    assert not bool((r2.certified_mask & ~out["brute"].certified_mask).any())
    assert r2.bound > 0.95 > r.bound
