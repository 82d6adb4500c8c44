"""Ground truth and calibration of the lens scores on planted models (no training)."""

from __future__ import annotations

import pytest
import torch

from rep_theory.algebra.groups import get_group
from rep_theory.analysis.metrics import IrrepBases
from rep_theory.lenses.irrep_energy import irrep_energy, site_irrep_subspaces
from rep_theory.lenses.leaderboard import lens_leaderboard
from rep_theory.lenses.planted import planted_irrep_mlp
from rep_theory.lenses.scores import alignment, cross_irrep_edge_mass, histogram_stability, match_stability

SCALES = {"standard": 1.0, "standard_sign": 1.5, "s4_2_2": 2.2}


@pytest.fixture(scope="module")
def S4():
    return get_group("S4")


def _pair_fn(G, values: torch.Tensor, which: str) -> torch.Tensor:
    """``[n^2]`` pair function from ``values [n]`` read at a, b or ab."""
    n = G.order
    a = torch.arange(n).repeat_interleave(n)
    b = torch.arange(n).repeat(n)
    idx = {"a": a, "b": b, "ab": G.table.reshape(-1)}[which]
    return values[idx]


def test_irrep_energy_puts_matrix_coefficients_in_their_irrep(S4):
    R = S4.irrep("standard").matrices.to(torch.float64)
    f = torch.stack([_pair_fn(S4, R[:, 0, 1], "a"), _pair_fn(S4, R[:, 1, 2], "b"), _pair_fn(S4, R[:, 2, 0], "ab"),
                     _pair_fn(S4, R[:, 0, 1], "a") + 3.0], 1)                    # [n^2, 4]
    e = irrep_energy(f, S4)
    j = e.names.index("standard")
    torch.testing.assert_close(e.share[:, j], torch.ones(4, dtype=torch.float64))
    torch.testing.assert_close(e.explained, torch.ones(4, dtype=torch.float64))
    # each lands in its own part: x for a, y for b, xy for ab; the constant adds nothing
    assert e.parts[0, 0, j] == pytest.approx(e.total[0].item()) and e.parts[1, 0, j] == pytest.approx(0, abs=1e-9)
    assert e.parts[1, 1, j] == pytest.approx(e.total[1].item())
    assert e.parts[2, 2, j] == pytest.approx(e.total[2].item())
    assert e.total[3] == pytest.approx(e.total[0].item())


def test_irrep_energy_of_a_product_spreads_and_constants_are_dead(S4):
    n = S4.order
    delta = torch.zeros(n, dtype=torch.float64)
    delta[5] = 1.0
    f = torch.stack([_pair_fn(S4, delta, "a"), torch.full((n * n,), 2.0, dtype=torch.float64)], 1)
    e = irrep_energy(f, S4)
    # a delta function of a holds each irrep in proportion to d^2 (Plancherel): no irrep dominates
    d2 = torch.tensor([G.matrices.shape[1] ** 2 for G in S4.irreps()[1:]], dtype=torch.float64)
    torch.testing.assert_close(e.share[0], d2 / d2.sum())
    assert e.dominant[1] == -1 and e.total[1] == 0


def test_calibration_neuron_pure_random_mixed_pca_pure(S4):
    model, labels = planted_irrep_mlp(S4, SCALES, neurons_per_irrep=6, seed=0)
    rows = lens_leaderboard(model, S4, lenses=["neuron", "random", "pca"], sites=["hidden"],
                            key_irreps=list(SCALES), progress=False)
    by = {r["lens"]: r for r in rows}
    assert by["neuron"]["purity"] == 1.0 and by["neuron"]["coverage"] == 1.0
    assert by["neuron"]["alignment"] == pytest.approx(1.0, abs=1e-6)
    assert by["neuron"]["loss_recovered"] == pytest.approx(1.0, abs=1e-6)
    assert by["random"]["purity"] <= 0.2
    assert by["random"]["alignment"] < 0.85
    assert by["pca"]["purity"] == 1.0 and by["pca"]["alignment"] > 0.999
    # the neuron histogram is the planted one
    assert by["neuron"]["irrep_hist"] == "standard:6;standard_sign:6;s4_2_2:6"


def test_site_subspaces_are_the_planted_neuron_spans(S4):
    model, labels = planted_irrep_mlp(S4, SCALES, neurons_per_irrep=4, seed=1)
    H = model.hidden_all_pairs()
    spaces = site_irrep_subspaces(H, S4)
    assert set(spaces) == set(SCALES)
    for name, Q in spaces.items():
        idx = [k for k, lab in enumerate(labels) if lab == name]
        assert Q.shape[1] == len(idx)
        # the subspace is spanned by exactly those neurons' axes
        torch.testing.assert_close(Q[idx].pow(2).sum(), torch.tensor(float(len(idx)), dtype=torch.float64))
    assert alignment(torch.eye(H.shape[1])[:3], spaces) == pytest.approx(1.0)
    assert alignment(torch.ones(1, H.shape[1]), spaces) == pytest.approx((4 / 12) ** 0.5)


def test_edge_mass_and_stability_helpers(S4):
    model, labels = planted_irrep_mlp(S4, SCALES, neurons_per_irrep=2, seed=2)
    H = model.hidden_all_pairs().double()
    e = irrep_energy(H, S4)
    same = torch.tensor([[1.0 if labels[i] == labels[j] else 0.0 for j in range(6)] for i in range(6)])
    assert cross_irrep_edge_mass(same, e, e) == 0.0
    assert cross_irrep_edge_mass(1.0 - same, e, e) == 1.0
    assert cross_irrep_edge_mass(torch.ones(6, 6), e, e) == pytest.approx(24 / 36)
    s = torch.randn(5, 7)
    assert match_stability(s, s[[3, 1, 0, 4, 2]] * -2.0) == pytest.approx(1.0)
    assert histogram_stability({"a": 2, "b": 2}, {"a": 1, "b": 1}) == 1.0
    assert histogram_stability({"a": 2}, {"b": 5}) == 0.0
