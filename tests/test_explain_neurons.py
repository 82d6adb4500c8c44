"""Planted rho-set circuits (Wu et al.'s idealised network) and the per-neuron rho-set analysis:
the circuit answers every pair, and the analysis recovers what was planted."""

from __future__ import annotations

import math

import pytest
import torch

from rep_theory.algebra.groups import get_group
from rep_theory.algebra.rhosets import min_rho_set_size, rho_set
from rep_theory.explain.planted import planted_rhoset_mlp, planted_rhoset_state
from rep_theory.explain.rhoset_neurons import analyse_neurons
from rep_theory.explain.run_explain import explain_model, fig_neuron_structure

CASES = [("S3", "standard"), ("S4", "standard"), ("S4", "standard_sign")]


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def planted(request):
    spec, irrep = request.param
    G = get_group(spec)
    model, circuit = planted_rhoset_mlp(G, irrep)
    return G, model, circuit, analyse_neurons(model, G)


def test_planted_circuit_answers_every_pair(planted):
    G, model, circuit, _ = planted
    n = G.order
    with torch.no_grad():
        logits = model.logits_all_pairs().double()
    assert (logits.argmax(1) == G.table.reshape(-1)).all()          # 100% on all n^2 pairs
    assert circuit.rhoset.size == min_rho_set_size(G, circuit.irrep)
    assert model.hidden_dim == circuit.rhoset.size ** 2
    # the derivation: the logit of z depends on g = x^-1 z y^-1 alone
    x, y, z = torch.meshgrid(torch.arange(n), torch.arange(n), torch.arange(n), indexing="ij")
    g = G.table[G.table[G.inverses[x], z], G.inverses[y]]
    cube = logits.reshape(n, n, n)
    for k in range(n):
        values = cube[g == k]
        assert float(values.max() - values.min()) < 1e-4 * float(cube.abs().max())


def test_analysis_recovers_the_planted_irrep_vectors_and_rhoset(planted):
    G, _, circuit, rep = planted
    B, a = circuit.rhoset.vectors, circuit.a
    assert rep.irrep == [circuit.irrep] * rep.hidden
    k = rep.irrep_names.index(circuit.irrep)
    assert torch.allclose(rep.embed_power[:, k], torch.ones(rep.hidden, dtype=torch.float64), atol=1e-9)
    for f, ratio in rep.rank_one.items():
        assert (ratio > 1 - 1e-9).all(), f
    for j, (i, i2) in enumerate(circuit.pairs.tolist()):
        # b and a up to a common sign: the outer product b a^T is what the weights fix
        torch.testing.assert_close(torch.outer(rep.b[j], rep.a[j]), torch.outer(B[i], a), atol=1e-6, rtol=0)
        assert abs(float(rep.b_prime[j] @ B[i2])) == pytest.approx(1.0, abs=1e-7)
    assert (rep.a_cosine > 1 - 1e-9).all()
    stab = circuit.rhoset.stabilizer
    assert (rep.set_size == circuit.rhoset.size).all() and (rep.right_set_size == circuit.rhoset.size).all()
    assert (rep.stabilizer_order == stab.order).all() and (rep.stabilizer_class == stab.class_index).all()
    assert set(rep.stabilizer_name) == {stab.name}
    assert torch.allclose(rep.fixed_fraction, torch.ones_like(rep.fixed_fraction), atol=1e-9)


def test_planted_neurons_have_zero_idealisation_error(planted):
    _, _, _, rep = planted
    assert float(rep.preact_rel_error.max()) < 1e-12
    assert float(rep.unembed_rel_error.max()) < 1e-12
    assert float(rep.loss_change.abs().max()) < 1e-9
    assert rep.loss_all_idealised == pytest.approx(rep.loss, rel=1e-9) and rep.acc_all_idealised == 1.0
    assert rep.loss < 1e-3
    summary = rep.summary()
    assert summary["rank_one_neurons"] == rep.hidden == summary["live_neurons"]


def test_a_perturbed_neuron_is_flagged_and_only_it():
    """Noise in another irrep, added to one neuron, shows in that neuron's errors and loss change alone."""
    G = get_group("S4")
    state, circuit = planted_rhoset_state(G, "standard")
    j = 5
    other = G.irrep("standard_sign").matrices[:, 0, 1].float()     # a function in another irrep
    state["W_x"][:, j] += 0.5 * other
    model, _ = planted_rhoset_mlp(G, "standard")
    model.load_state_dict(state)
    rep = analyse_neurons(model, G)
    assert rep.irrep[j] == "standard"
    assert rep.preact_rel_error[j] > 1e-3 and abs(float(rep.loss_change[j])) > 1e-9
    others = [k for k in range(rep.hidden) if k != j]
    assert float(rep.preact_rel_error[others].max()) < 1e-12
    assert float(rep.loss_change[others].abs().max()) < 1e-9


def test_a_generic_b_gives_a_regular_rhoset():
    """b fixed by no group element: |B| = |G| = 6 for S3's standard irrep (36 neurons), stabiliser trivial."""
    G = get_group("S3")
    b = torch.tensor([math.cos(0.3), math.sin(0.3)], dtype=torch.float64)
    assert rho_set(G, "standard", b).size == 6
    model, circuit = planted_rhoset_mlp(G, "standard", b=b)
    rep = analyse_neurons(model, G, fixed_threshold=0.999, hidden_fractions=False, loss_changes=False)
    assert (rep.set_size == 6).all() and (rep.stabilizer_order == 1).all()
    with torch.no_grad():
        assert (model.logits_all_pairs().argmax(1) == G.table.reshape(-1)).all()


def test_unfaithful_irrep_or_degenerate_a_is_refused():
    G = get_group("S4")
    with pytest.raises(ValueError, match="does not separate"):
        planted_rhoset_state(G, "s4_2_2")                           # kernel V4: ab and ab*k look alike
    B = rho_set(G, "standard").vectors
    with pytest.raises(ValueError, match="generic a"):
        planted_rhoset_state(G, "standard", a=B[0])                 # ties: a^T u = a^T v for u != v


def test_explain_model_rows_and_figure():
    G = get_group("S3")
    model, _ = planted_rhoset_mlp(G, "standard")
    rows, summary = explain_model(model, G, loss_changes=False)
    assert len(rows) == 9 and summary["neurons"]["irreps"] == {"standard": {"neurons": 9, "rank_one": 9,
                                                                             "rho_set_sizes": {"3": 9}}}
    assert {r["coset_left_subgroup"] for r in rows} == {"C2"} and {r["coset_left_side"] for r in rows} == {"right"}
    assert all(r["rho_set_size"] == 3 and r["stabilizer"] == "C2" for r in rows)
    fig = fig_neuron_structure(rows)
    assert [t.name for t in fig.data] == ["standard"] and list(fig.data[0].x) == [3] * 9
    with pytest.raises(ValueError, match="OneLayerMLP"):
        explain_model(torch.nn.Linear(2, 2), G)


def test_analysis_of_the_paper_s5_model(reference_dir, tmp_path):
    """The paper's S5 MLP (seed 1): every neuron rank one in one of its key irreps, rho-sets mostly minimal."""
    from rep_theory.pipeline.paper_import import import_paper_run
    from rep_theory.training.rundir import load_run_model
    run = import_paper_run(reference_dir / "paper_models" / "S5_MLP_seed1", tmp_path / "S5_MLP_seed1")
    G = get_group("S5")
    rep = analyse_neurons(load_run_model(run), G, hidden_fractions=False, loss_changes=False)
    key = {"sign", "standard", "standard_sign", "s5_5d_a"}
    assert set(rep.irrep) <= key
    rank_one = torch.stack(list(rep.rank_one.values())).min(0).values
    assert (rank_one >= 0.9).sum() >= 120
    minimal = sum(int(rep.set_size[j]) == min_rho_set_size(G, rep.irrep[j]) for j in range(rep.hidden))
    assert minimal >= 110
    assert rep.acc_all_idealised == 1.0
