"""Per-neuron coset analysis (rep_theory.explain.cosets): planted coset neurons are recovered exactly."""

from __future__ import annotations

import pytest
import torch

from rep_theory.algebra.groups import get_group
from rep_theory.algebra.subgroups import coset_labels, subgroups
from rep_theory.explain.cosets import function_cosets, neuron_cosets, neuron_functions
from rep_theory.explain.planted import planted_rhoset_mlp
from rep_theory.training.models import OneLayerMLP


def _coset_function(G, H, side, gen):
    """A function with one generic (Gaussian) value per coset of ``H``: its level sets are exactly the cosets."""
    labels = coset_labels(G, H, side=side)
    values = torch.randn(G.order, generator=gen, dtype=torch.float64)
    return values[labels]


def _planted_model(G, plan, gen):
    """OneLayerMLP (embed = hidden = len(plan)) whose neuron j has left / right / unembed functions
    constant on the cosets ``plan[j][f] = (subgroup, side)``."""
    cols = {f: torch.stack([_coset_function(G, *p[f], gen) for p in plan], 1) for f in ("left", "right", "unembed")}
    width = len(plan)
    model = OneLayerMLP(G.order, embed_dim=width, hidden_dim=width)
    eye = torch.eye(width)
    model.load_state_dict({"W_x": cols["left"].float(), "W_y": cols["right"].float(),
                           "W": torch.cat([eye, eye]), "W_U": cols["unembed"].T.float().contiguous()})
    return model


def test_planted_coset_neurons_are_recovered_exactly():
    G = get_group("S4")
    subs = subgroups(G)
    # every non-normal proper non-trivial subgroup class (normal ones have equal left and right cosets)
    reps = [S for S in {H.class_index: H for H in subs}.values() if not S.normal and 1 < S.order < G.order]
    assert len(reps) >= 5
    gen = torch.Generator().manual_seed(0)
    plan = []
    for k, H in enumerate(reps):
        other = reps[(k + 1) % len(reps)]
        plan.append({"left": (H, "left"), "right": (other, "right"), "unembed": (H, "right")})
        plan.append({"left": (H, "right"), "right": (H, "left"), "unembed": (other, "left")})
    model = _planted_model(G, plan, gen)
    # a near-1 threshold: at the default 0.9, random coset values can by chance keep 90% of their energy
    # on the cosets of a larger subgroup, which best_cosets then (as documented) prefers
    result = neuron_cosets(model, G, threshold=0.999)
    for f in ("left", "right", "unembed"):
        fit = result.fits[f]
        for j, p in enumerate(plan):
            H, side = p[f]
            assert subs[int(fit.subgroup[j])].elements == H.elements, (f, j)
            assert fit.side[j] == side and int(fit.order[j]) == H.order
            assert fit.class_index[j] == H.class_index and fit.class_name[j] == H.name
            assert float(fit.concentration[j]) == pytest.approx(1.0, abs=1e-9)
    # the summary counts the planted classes: each class appears in 2 left-function neurons
    left = result.summary()["left"]
    assert left["found"] == len(plan)
    assert {c["class_index"]: c["neurons"] for c in left["classes"]} == {H.class_index: 2 for H in reps}
    assert all(c["sides"] == {"left": 1, "right": 1} for c in left["classes"])


def test_noise_is_not_a_coset_and_constants_have_none():
    G = get_group("S4")
    gen = torch.Generator().manual_seed(1)
    f = torch.randn(G.order, 3, generator=gen, dtype=torch.float64)
    f[:, 2] = 5.0                                                  # constant: no centred energy
    fit = function_cosets(G, f)
    assert fit.subgroup.tolist() == [-1, -1, -1] and fit.side == ["", "", ""]
    assert torch.isnan(fit.concentration).all()


def test_rhoset_neurons_are_constant_on_cosets_of_the_stabiliser():
    """left(x) = b^T rho(x) a is constant on the right cosets Stab(b) x; right(y) on the left cosets y Stab(b')."""
    G = get_group("S4")
    model, circuit = planted_rhoset_mlp(G, "standard")
    result = neuron_cosets(model, G)
    stab = circuit.rhoset.stabilizer
    for f, side in (("left", "right"), ("right", "left")):
        fit = result.fits[f]
        assert fit.side == [side] * fit.order.shape[0]
        assert (fit.order == stab.order).all() and (fit.class_index == stab.class_index).all()
    # neuron (b_i, b_i'): its left function's subgroup is Stab(b_i) itself (brute force over the group)
    R = G.irrep("standard").matrices
    for k, (i, _) in enumerate(circuit.pairs.tolist()):
        b = circuit.rhoset.vectors[i]
        brute = tuple(g for g in range(G.order) if torch.allclose(R[g] @ b, b, atol=1e-9))
        assert subgroups(G)[int(result.fits["left"].subgroup[k])].elements == brute


def test_bad_shapes_name_the_problem():
    G = get_group("S3")
    with pytest.raises(ValueError, match=r"\[n, k\] with n = \|S3\| = 6"):
        function_cosets(G, torch.zeros(5, 2))
    model = OneLayerMLP(5, embed_dim=4, hidden_dim=4)
    with pytest.raises(ValueError, match="5 input elements"):
        neuron_cosets(model, G)
    assert set(neuron_functions(model)) == {"left", "right", "unembed"}
