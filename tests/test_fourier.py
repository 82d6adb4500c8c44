"""The group Fourier transform (rep_theory.algebra.fourier) against independent facts: Plancherel,
exact inversion for every irrep kind, Schur orthogonality, the convolution theorem, the character
formula of isotypic projections, and the package's hidden-layer FVE metrics."""

import time

import pytest
import torch

from rep_theory.algebra.fourier import (convolve, fourier, fourier_power, inverse_fourier, isotypic_projection,
                                        pair_fourier_power, plancherel_weights)
from rep_theory.algebra.groups import get_group

SPECS = ["C7", "D5", "Q8", "C4xC6", "S4", "A5"]   # complex (C7, C4xC6) and quaternionic (Q8) kinds included
COMMUTANT = {"real": 1, "complex": 2, "quaternionic": 4}


def _random(shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("spec", SPECS)
def test_round_trip_is_exact(spec):
    G = get_group(spec)
    f = _random((G.order, 3, 2))
    fhat = fourier(G, f)
    assert list(fhat) == [r.name for r in G.irreps()]
    for r in G.irreps():
        assert fhat[r.name].shape == (3, 2, r.dim, r.dim)
    back = inverse_fourier(G, fhat)
    assert back.shape == f.shape
    torch.testing.assert_close(back, f, atol=1e-10, rtol=0)


@pytest.mark.parametrize("spec", SPECS)
def test_fourier_is_the_defining_sum(spec):
    """fhat(rho) = sum_g f(g) rho(g), computed element by element."""
    G = get_group(spec)
    f = _random((G.order,), seed=1)
    fhat = fourier(G, f)
    for r in G.irreps():
        direct = sum(f[g] * r.matrices[g] for g in range(G.order))
        torch.testing.assert_close(fhat[r.name], direct, atol=1e-10, rtol=0)


@pytest.mark.parametrize("spec", SPECS)
def test_plancherel_powers_sum_to_one_and_energy_identity(spec):
    G = get_group(spec)
    f = _random((G.order, 5), seed=2)
    power = fourier_power(G, f)
    torch.testing.assert_close(sum(power.values()), torch.ones(5, dtype=torch.float64), atol=1e-12, rtol=0)
    assert all(bool((p >= -1e-15).all()) for p in power.values())
    w = plancherel_weights(G)
    fhat = fourier(G, f)
    energy = sum(w[name] * fhat[name].pow(2).sum((-2, -1)) for name in fhat)
    torch.testing.assert_close(energy, f.pow(2).sum(0), atol=1e-10, rtol=0)
    # the delta at the identity has fhat = I for every irrep, so f(e) = 1 = sum_rho w_rho d_rho
    assert sum(w[r.name] * r.dim for r in G.irreps()) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("spec", SPECS)
def test_matrix_coefficients_have_all_power_in_their_irrep(spec):
    G = get_group(spec)
    for r in G.irreps():
        coeffs = r.matrices.reshape(G.order, -1)          # every g -> rho(g)_ij at once
        power = fourier_power(G, coeffs)
        for name, p in power.items():
            expected = 1.0 if name == r.name else 0.0
            torch.testing.assert_close(p, torch.full_like(p, expected), atol=1e-10, rtol=0, msg=f"{r.name} in {name}")


def test_constants_have_all_power_in_trivial():
    G = get_group("S4")
    power = fourier_power(G, torch.full((G.order, 2), 3.0))
    assert float(power["trivial"].min()) == pytest.approx(1.0)
    assert all(float(p.abs().max()) < 1e-12 for name, p in power.items() if name != "trivial")


@pytest.mark.parametrize("spec", SPECS)
def test_isotypic_projection_matches_the_character_formula(spec):
    """P f(g) = (d / (c |G|)) sum_h f(h) chi(h^-1 g), c = 1, 2, 4 by kind, computed directly."""
    G = get_group(spec)
    n = G.order
    f = _random((n,), seed=3)
    table, inv = G.table, G.inverses
    for r in G.irreps():
        c = COMMUTANT[r.kind]
        direct = torch.stack([sum(f[h] * r.character[table[inv[h], g]] for h in range(n)) for g in range(n)])
        direct = direct * r.dim / (c * n)
        torch.testing.assert_close(isotypic_projection(G, f, r.name), direct, atol=1e-10, rtol=0)


@pytest.mark.parametrize("spec", ["C7", "Q8", "C4xC6", "S4"])
def test_inverse_of_arbitrary_coefficients_projects_onto_the_image(spec):
    """For complex / quaternionic kinds not every [d, d] matrix is a transform: fourier o inverse is
    an orthogonal projection (idempotent, residual orthogonal), the identity on real-kind irreps."""
    G = get_group(spec)
    X = {r.name: _random((r.dim, r.dim), seed=k) for k, r in enumerate(G.irreps())}
    Y = fourier(G, inverse_fourier(G, X))
    Z = fourier(G, inverse_fourier(G, Y))
    for r in G.irreps():
        torch.testing.assert_close(Z[r.name], Y[r.name], atol=1e-10, rtol=0)
        assert abs(float(((X[r.name] - Y[r.name]) * Y[r.name]).sum())) < 1e-10
        if r.kind == "real":
            torch.testing.assert_close(Y[r.name], X[r.name], atol=1e-10, rtol=0)


@pytest.mark.parametrize("spec", ["D5", "Q8", "S4", "C4xC6"])
def test_convolution_theorem(spec):
    """(f * h)(x) = sum_y f(y) h(y^-1 x) has transform fhat @ hhat (f on the left)."""
    G = get_group(spec)
    n = G.order
    f, h = _random((n,), seed=4), _random((n,), seed=5)
    table, inv = G.table, G.inverses
    direct = torch.stack([sum(f[y] * h[table[inv[y], x]] for y in range(n)) for x in range(n)])
    torch.testing.assert_close(convolve(G, f, h), direct, atol=1e-10, rtol=0)
    fh, hh, ch = fourier(G, f), fourier(G, h), fourier(G, direct)
    for name in fh:
        torch.testing.assert_close(ch[name], fh[name] @ hh[name], atol=1e-9, rtol=0)
    if spec in ("D5", "Q8", "S4"):  # non-abelian: the other order is wrong somewhere
        assert any(float((ch[k] - hh[k] @ fh[k]).abs().max()) > 1e-6 for k in fh)


def test_convolve_broadcasts_batches():
    G = get_group("D5")
    f, h = _random((10, 3), seed=6), _random((10, 1), seed=7)
    out = convolve(G, f, h)
    assert out.shape == (10, 3)
    torch.testing.assert_close(out[:, 1], convolve(G, f[:, 1], h[:, 0]), atol=1e-12, rtol=0)


def test_errors_name_the_bad_value():
    G = get_group("S4")
    with pytest.raises(ValueError, match=r"\[n, \*batch\] with n = \|S4\| = 24, got shape \(23, 2\)"):
        fourier(G, torch.zeros(23, 2))
    with pytest.raises(KeyError, match="not_an_irrep"):
        inverse_fourier(G, {"not_an_irrep": torch.zeros(1, 1)})
    with pytest.raises(ValueError, match=r"fhat\['standard'\] must have shape \[\*batch, 3, 3\]"):
        inverse_fourier(G, {"standard": torch.zeros(2, 2)})
    with pytest.raises(ValueError, match="576 pairs"):
        pair_fourier_power(G, torch.zeros(24, 3))


@pytest.mark.parametrize("spec", ["D5", "Q8", "C4xC6"])
def test_pair_power_of_planted_functions(spec):
    """(a, b) -> rho(a)_ij, rho(b)_ij, rho(ab)_ij put all their (centred) power in one part and irrep."""
    G = get_group(spec)
    n = G.order
    a = torch.arange(n * n) // n
    b = torch.arange(n * n) % n
    ab = G.table.reshape(-1)
    rho = G.irreps()[-1]
    m = rho.matrices.reshape(n, -1)
    for part, idx in (("x", a), ("y", b), ("xy", ab)):
        out = pair_fourier_power(G, m[idx])
        for other in ("x", "y", "xy"):
            for name, p in out[other].items():
                expected = 1.0 if (other, name) == (part, rho.name) else 0.0
                torch.testing.assert_close(p, torch.full_like(p, expected), atol=1e-10, rtol=0)
        assert float(out["residual"].abs().max()) < 1e-10
    # rho(a)_00 sigma(b)_00 for two distinct non-trivial irreps lies in none of the parts (its overlap
    # with any phi(ab) is a convolution of coefficients of distinct irreps, which vanishes)
    sigma = G.irreps()[-2].matrices.reshape(n, -1)
    out = pair_fourier_power(G, m[a, 0] * sigma[b, 0])
    assert float(out["residual"]) == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("spec", ["D5", "C4xC6"])
def test_pair_power_restates_the_hidden_fve_metrics(spec):
    """percent_hidden_{x,y,xy}_<irrep>_rep of checkpoint_metrics == pooled pair Fourier power of the
    centred hidden layer (the metrics module is the oracle here only)."""
    from rep_theory.analysis.metrics import IrrepBases, checkpoint_metrics
    from rep_theory.training.models import make_model

    G = get_group(spec)
    torch.manual_seed(0)
    model = make_model("OneLayerMLP", G.order, seed=3, embed_dim=16, hidden_dim=24)
    metrics = checkpoint_metrics(model, IrrepBases.for_group(G), train_pairs=torch.arange(0, G.order ** 2, 2))
    with torch.no_grad():
        hidden = model.hidden_all_pairs_float64()  # the metrics read the float64 hidden layer
    pooled = pair_fourier_power(G, hidden, centre=True, pool=True)
    per_unit = pair_fourier_power(G, hidden, centre=True)
    energy = (hidden.double() - hidden.double().mean(0)).pow(2).sum(0)
    for part in ("x", "y", "xy"):
        for r in G.irreps():
            expected = metrics[f"percent_hidden_{part}_{r.name}_rep"]
            assert float(pooled[part][r.name]) == pytest.approx(expected, abs=1e-10), (part, r.name)
            # pooling is the energy-weighted mean of the per-unit fractions
            weighted = float((per_unit[part][r.name] * energy).sum() / energy.sum())
            assert weighted == pytest.approx(expected, abs=1e-10)
    assert any(metrics[f"percent_hidden_xy_{r.name}_rep"] > 1e-5 for r in G.irreps()[1:])  # not vacuous


def test_s6_batch_transform_is_fast():
    G = get_group("S6")
    f = _random((720, 128), seed=8)
    fourier(G, f)  # builds the stacked matrices once
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        fhat = fourier(G, f)
        best = min(best, time.perf_counter() - t0)
    assert best < 0.5, f"S6 Fourier transform of [720, 128] took {best:.3f} s"
    torch.testing.assert_close(inverse_fourier(G, fhat), f, atol=1e-10, rtol=0)
