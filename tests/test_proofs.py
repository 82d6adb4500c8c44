"""Compact proofs (rep_theory.explain.proofs): every certified pair is a correct pair, on planted
rho-set circuits (bound 100%), noisy planted circuits (bound drops, stays sound), small trained
networks and a reference S5 network; the ideal is bi-equivariant; results and the CLI round-trip."""

from __future__ import annotations

import json

import pytest
import torch

import rep_theory.algebra  # noqa: F401  (registers the irreps)
from rep_theory.algebra.groups import get_group
from rep_theory.explain.proofs import METHODS, fit_rhoset, planted_circuits_mlp, verify, verify_run, verify_table
from rep_theory.explain.proofs.core import mlp_matrices
from rep_theory.explain.proofs.rhoset import ideal_table

FAST = ("brute", "gcr", "rhoset", "hybrid", "fourier", "fourier_hybrid")


def check_sound(model, G, methods=METHODS) -> dict:
    """Run ``methods``; assert each certifies only pairs brute force finds correct; return the results."""
    results = {m: verify(model, G, method=m) for m in methods}
    brute = verify(model, G, method="brute") if "brute" not in results else results["brute"]
    correct = brute.certified_mask
    for m, r in results.items():
        assert 0.0 <= r.bound <= brute.bound, (m, r.bound, brute.bound)
        assert not bool((r.certified_mask & ~correct).any()), f"{m} certified a wrong pair"
        assert r.flops > 0 and r.seconds >= 0 and r.fit_seconds >= 0
        assert r.certified == int(r.certified_mask.sum())
    return results


@pytest.mark.parametrize("spec, irreps", [("S3", "standard"), ("S4", {"standard": 1.0, "standard_sign": 0.5}),
                                          ("D5", "freq_1"), ("S5", {"standard": 1.0, "sign": 0.5})])
def test_planted_circuits_are_certified_completely(spec, irreps):
    model, G = planted_circuits_mlp(spec, irreps, rho_set=1)
    out = check_sound(model, G, ("brute", "rhoset", "hybrid") + (("coset",) if G.order <= 24 else ()))
    assert out["brute"].bound == 1.0
    assert out["rhoset"].bound == 1.0 and out["rhoset"].failures == {"weight_deviation": 0, "coverage_deviation": 0}
    assert out["hybrid"].bound == 1.0 and out["hybrid"].details["brute_forced_pairs"] == 0
    # the proof is cheaper than brute force, and the Lipschitz proof no dearer than the hybrid's
    assert out["rhoset"].flops < out["brute"].flops
    interp = out["rhoset"].details
    assert interp["unexplained_neurons"] == 0


def test_ideal_is_bi_equivariant():
    """The planted network's logits are Phi(x^-1 z y^-1), Phi from the fitted interpretation's tables."""
    model, G = planted_circuits_mlp("S4", "standard", rho_set=1, seed=3)
    L, R, U = mlp_matrices(model)
    interp = fit_rhoset(G, L, R, U)
    assert len(interp.circuits) == 1 and interp.circuits[0].weight.ne(0).all()
    Phi = ideal_table(G, interp)
    n = G.order
    logits = (torch.relu(L[:, None, :] + R[None, :, :]) @ U.T)                  # [x, y, z]
    tab, inv = G.table, G.inverses
    x, y, z = torch.meshgrid(torch.arange(n), torch.arange(n), torch.arange(n), indexing="ij")
    g = tab[tab[inv[x], z], inv[y]]
    torch.testing.assert_close(logits, Phi[g], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("noise", [0.02, 0.2])
def test_noisy_planted_circuits_drop_but_stay_sound(noise):
    model, G = planted_circuits_mlp("S4", {"standard": 1.0, "standard_sign": 0.5}, rho_set=1)
    clean = verify(model, G, method="rhoset").bound
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in (model.W_x, model.W_y, model.W_U):
            p.add_(noise * p.abs().max() * torch.randn(p.shape, generator=gen))
    out = check_sound(model, G, FAST + ("coset",))
    assert out["rhoset"].bound < clean == 1.0
    assert out["hybrid"].bound == out["brute"].bound          # the fallback makes it exact
    assert out["hybrid"].bound >= out["rhoset"].bound


@pytest.fixture(scope="module")
def trained():
    from rep_theory.training.config import paper_defaults
    from rep_theory.training.train import fit

    torch.manual_seed(0)
    models = {}
    for spec, epochs in (("S3", 300), ("S4", 400)):
        cfgs = [paper_defaults(spec, "MLP", seed=s, num_epochs=epochs, frac_train=0.5, log_every=epochs,
                               embed_dim=32, hidden_dim=32, device="cpu") for s in (1, 2)]
        ms, _ = fit(cfgs, "cpu", cuda_graphs=False)
        models[spec] = ms
    return models


def test_trained_networks_are_verified_soundly(trained):
    for spec, models in trained.items():
        G = get_group(spec)
        for model in models:
            check_sound(model, G, FAST + ("coset",))


def test_untrained_network_is_verified_soundly():
    from rep_theory.training.models import make_model

    G = get_group("S4")
    model = make_model("OneLayerMLP", G.order, seed=5, embed_dim=16, hidden_dim=24)
    out = check_sound(model, G, FAST)
    assert out["brute"].bound < 0.5


def _reference_s5(seed: int = 1):
    from rep_theory.pipeline.paper_import import reorder_paper_state_dict
    from rep_theory.training.models import make_model

    G = get_group("S5")
    state = torch.load(f"reference/paper_s5_mlp_50/S5_MLP_seed{seed}/model.pt", map_location="cpu", weights_only=True)
    model = make_model("OneLayerMLP", G.order)
    model.load_state_dict(reorder_paper_state_dict(state, G))
    return model, G


def test_reference_s5_network_is_verified_soundly():
    model, G = _reference_s5(1)
    out = check_sound(model, G, FAST)
    assert out["brute"].bound == 1.0 and out["hybrid"].bound == 1.0
    assert out["rhoset"].flops < 0.2 * out["brute"].flops
    assert {c["irrep"] for c in out["rhoset"].details["circuits"]} >= {"sign", "standard"}


def test_proofs_derive_what_they_rely_on_from_the_weights():
    """A proof may take its explanation from anywhere, so it recomputes from the weights and the
    explanation's own parameters what its argument needs: ``rhoset`` each circuit's ``W[b, b']`` (a
    corrupted copy in the fit changes nothing; a neuron with scale <= 0 is refused), ``gcr`` the
    projected readout and its Fourier coefficients (corrupted ones leave the bound sound)."""
    import dataclasses

    from rep_theory.explain.proofs.baselines import fit_gcr, gcr_proof
    from rep_theory.explain.proofs.core import Flops
    from rep_theory.explain.proofs.rhoset import rhoset_proof

    model, G = planted_circuits_mlp("S4", {"standard": 1.0, "standard_sign": 0.5}, rho_set=1)
    with torch.no_grad():
        model.W_U.add_(0.05 * torch.randn(model.W_U.shape, generator=torch.Generator().manual_seed(0)))
    L, R, U = mlp_matrices(model)
    exact = verify(model, G, method="brute").certified_mask
    interp = fit_rhoset(G, L, R, U)
    good = rhoset_proof(G, L, R, U, interp, lipschitz=True, fallback=False, flops=Flops())["certified"]
    bad = dataclasses.replace(interp, circuits=[dataclasses.replace(c, weight=torch.zeros_like(c.weight))
                                                for c in interp.circuits])
    again = rhoset_proof(G, L, R, U, bad, lipschitz=True, fallback=False, flops=Flops())["certified"]
    assert torch.equal(good, again) and not bool((good & ~exact).any())
    c0 = interp.circuits[0]
    flipped = dataclasses.replace(interp, circuits=[dataclasses.replace(c0, scale=-c0.scale)] + interp.circuits[1:])
    with pytest.raises(ValueError, match="scale must be > 0"):
        rhoset_proof(G, L, R, U, flipped, lipschitz=True, fallback=False, flops=Flops())
    # gcr, against an adversarial explanation: an untrained S3 network with 36 neurons, its own weights
    # as the "projection" (no lemma deviation) and coefficients solved so that C(x, y) = rho(xy)
    # exactly on every pair: taken on trust they would certify all 36 pairs of a network that gets
    # most of them wrong
    from rep_theory.training.models import make_model

    G = get_group("S3")
    model = make_model("OneLayerMLP", G.order, seed=0, embed_dim=8, hidden_dim=36)
    L, R, U = mlp_matrices(model)
    exact = verify(model, G, method="brute").certified_mask
    H = torch.relu(L[:, None, :] + R[None, :, :]).reshape(36, 36)           # [pairs, neurons]
    rho = G.irrep("standard").matrices
    coef = torch.linalg.solve(H, rho[G.table.reshape(-1)].reshape(36, 4)).reshape(36, 2, 2)
    fake = {"key_irreps": ["standard"], "LP": L, "RP": R, "UP": U, "Uhat": {"standard": coef},
            "alpha": {"standard": 1.0}}
    cert = gcr_proof(G, L, R, U, fake, Flops())["certified"]
    assert int(exact.sum()) == 7 and int(cert.sum()) == 0   # the README's figures: 7 of 36 right, none certified
    assert not bool((gcr_proof(G, L, R, U, fit_gcr(G, L, R, U), Flops())["certified"] & ~exact).any())


def test_verify_run_writes_json_and_cli_table(tmp_path, capsys):
    from rep_theory.cli import main
    from rep_theory.pipeline.paper_import import import_paper_run

    run = import_paper_run("reference/paper_s5_mlp_50/S5_MLP_seed2", tmp_path / "S5_MLP_seed2")
    results = verify_run(run, ["brute", "rhoset"])
    rec = json.loads((run / "verify" / "rhoset.json").read_text())
    for key in ("method", "bound", "seconds", "fit_seconds", "flops", "failures"):
        assert key in rec
    assert rec["bound"] == results["rhoset"].bound <= json.loads((run / "verify" / "brute.json").read_text())["bound"]
    assert main(["verify", str(run), "--method", "hybrid"]) == 0
    assert "hybrid" in capsys.readouterr().out
    rows = verify_table(tmp_path)
    assert rows[0]["accuracy"] == 1.0 and set(rows[0]) >= {"brute", "rhoset", "hybrid"}
    assert main(["verify", str(tmp_path), "--table"]) == 0
    assert "S5_MLP_seed2" in capsys.readouterr().out
    # a retrained run: its old bounds are stale and no longer served
    from rep_theory.io import save_checked
    from rep_theory.training.rundir import load_weights

    assert rows[0]["stale"] == []
    weights = load_weights(run / "model.pt")
    save_checked(run / "model.pt", {k: v * 1.01 for k, v in weights.items()})
    rows = verify_table(tmp_path)
    assert set(rows[0]["stale"]) == {"brute", "rhoset", "hybrid"} and "accuracy" not in rows[0]
    assert "brute" not in rows[0] and "rhoset" not in rows[0]
    assert main(["verify", str(tmp_path), "--table"]) == 0
    out = capsys.readouterr().out
    assert "stale" in out and "S5_MLP_seed2 (brute, hybrid, rhoset)" in out
    verify_run(run, ["brute"])
    rows = verify_table(tmp_path)
    assert rows[0]["stale"] == ["hybrid", "rhoset"] and rows[0]["brute"]["bound"] == rows[0]["accuracy"]
    # the fourier options reach the fit and are recorded
    assert main(["verify", str(run), "--method", "fourier", "--n-cores", "2", "--rank", "8"]) == 0
    rec = json.loads((run / "verify" / "fourier.json").read_text())
    assert rec["options"] == {"n_cores": 2, "rank": 8} and rec["details"]["rank"] == 8
    assert rec["bound"] >= 0.95                                  # seed 2: sign + standard, certified


def test_errors_name_the_bad_value():
    model, G = planted_circuits_mlp("S3", "standard")
    with pytest.raises(ValueError, match="'exhaustive'"):
        verify(model, G, method="exhaustive")
    with pytest.raises(ValueError, match="S4"):
        verify(model, get_group("S4"), method="brute")
