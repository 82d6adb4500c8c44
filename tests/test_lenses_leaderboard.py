"""The leaderboard on small trained / random models, the run-directory wrapper, the batch table and the CLI."""

from __future__ import annotations

import math

import pytest
import torch

from rep_theory.algebra.groups import get_group
from rep_theory.cli import main
from rep_theory.io import atomic_write_json
from rep_theory.lenses import COLUMNS, LENSES, batch_lens_table, lens_leaderboard, run_lenses
from rep_theory.lenses.runs import read_leaderboard
from rep_theory.training.config import RunConfig
from rep_theory.training.models import Transformer
from rep_theory.training.train import fit


@pytest.fixture(scope="module")
def trained_s4():
    """Two seeds of a tiny S4 MLP that generalises (test accuracy 1 after 1500 full-batch steps, ~3 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)   # tiny models: one thread avoids per-op thread start-up
    cfgs = [RunConfig(group="S4", model="MLP", seed=s, num_epochs=1500, embed_dim=32, hidden_dim=32, frac_train=0.9,
                      lr=1e-2, weight_decay=2.0, device="cpu", log_every=500) for s in (1, 2)]
    models, logs = fit(cfgs, "cpu")
    assert all(log[-1]["test_acc"] > 0.95 for log in logs)
    yield cfgs, models
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def s4_rows(trained_s4):
    _, models = trained_s4
    return lens_leaderboard(models[0], get_group("S4"), progress=False)


def test_mlp_leaderboard_covers_every_lens_and_site(s4_rows):
    got = {(r["lens"], r["site"]) for r in s4_rows}
    for lens in LENSES:
        sites = ["hidden"] if lens in ("transcoder", "scae") else ["embed_left", "embed_right", "hidden"]
        assert {(lens, s) for s in sites} <= got, lens
    assert len(got) == 6 * 3 + 2
    for r in s4_rows:
        assert set(COLUMNS) <= set(r)
        for col in ("purity", "alignment", "loss_recovered"):
            assert 0.0 <= r[col] <= 1.0 + 1e-9 or col == "loss_recovered", (r["lens"], r["site"], col, r[col])
        has_edges = r["lens"] in ("lib", "transcoder", "scae")
        assert (0.0 <= r["cross_irrep_edge_mass"] <= 1.0) if has_edges else math.isnan(r["cross_irrep_edge_mass"])
        sparse = r["lens"] in ("sae_topk", "sae_l1", "transcoder", "scae")
        assert (r["l0"] > 0) if sparse else math.isnan(r["l0"])
    assert r["key_irreps"]  # the trained model has key irreps


def test_mlp_leaderboard_scores_make_sense(s4_rows):
    by = {(r["lens"], r["site"]): r for r in s4_rows}
    # complete bases reconstruct exactly; LIB only drops what the logits cannot see
    for lens in ("neuron", "random", "pca"):
        assert by[(lens, "hidden")]["loss_recovered"] == pytest.approx(1.0, abs=1e-6)
    assert by[("lib", "hidden")]["loss_recovered"] == pytest.approx(1.0, abs=1e-4)
    # the GCR neurons are far purer than a random rotation of them
    assert by[("neuron", "hidden")]["purity"] > by[("random", "hidden")]["purity"] + 0.3
    assert by[("sae_topk", "hidden")]["l0"] <= 8.0
    assert by[("transcoder", "hidden")]["loss_recovered"] > 0.5


def test_transformer_sites_and_lenses_run():
    torch.manual_seed(0)
    model = Transformer(6, seed=0)
    rows = lens_leaderboard(model, get_group("S3"), lenses=["neuron", "lib", "pca", "transcoder", "scae"],
                            key_irreps=["standard"], progress=False)
    got = {(r["lens"], r["site"]) for r in rows}
    assert got == {("neuron", "resid_mid"), ("neuron", "mlp_post"), ("lib", "resid_mid"), ("lib", "mlp_post"),
                   ("pca", "resid_mid"), ("pca", "mlp_post"), ("transcoder", "mlp_post"), ("scae", "mlp_post")}
    by = {(r["lens"], r["site"]): r for r in rows}
    assert by[("neuron", "resid_mid")]["loss_recovered"] == pytest.approx(1.0, abs=1e-6)
    assert by[("lib", "mlp_post")]["loss_recovered"] == pytest.approx(1.0, abs=1e-4)
    # the full hook names are accepted as sites
    alias = lens_leaderboard(model, get_group("S3"), lenses=["neuron"], sites=["blocks.0.mlp.hook_post"],
                             key_irreps=["standard"], progress=False)
    assert alias[0]["site"] == "mlp_post" and alias[0]["purity"] == by[("neuron", "mlp_post")]["purity"]


def test_errors_name_the_bad_value(trained_s4):
    _, models = trained_s4
    G = get_group("S4")
    with pytest.raises(ValueError, match=r"unknown lens 'ica'; expected one of \['neuron', 'random'"):
        lens_leaderboard(models[0], G, lenses=["ica"])
    with pytest.raises(ValueError, match=r"unknown site 'resid_mid' for a OneLayerMLP; expected one of"):
        lens_leaderboard(models[0], G, lenses=["neuron"], sites=["resid_mid"])
    with pytest.raises(ValueError, match="group S5 has order 120"):
        lens_leaderboard(models[0], get_group("S5"), lenses=["neuron"])


def test_run_dirs_cli_and_batch_table(trained_s4, tmp_path, capsys):
    cfgs, models = trained_s4
    batch = tmp_path / "batch"
    runs = []
    for cfg, model in zip(cfgs, models):
        rd = batch / f"S4_MLP_seed{cfg.seed}"
        rd.mkdir(parents=True)
        atomic_write_json(rd / "cfg.json", cfg.to_dict())
        torch.save(model.state_dict(), rd / "model.pt")
        runs.append(rd)
    (batch / "S4_MLP_seed3").mkdir()
    atomic_write_json(batch / "S4_MLP_seed3" / "cfg.json", cfgs[0].replace(seed=3).to_dict())   # not run yet
    path = run_lenses(runs[0], lenses=["neuron", "lib"], sites=["hidden"], progress=False)
    assert path == runs[0] / "lenses" / "leaderboard.csv"
    rows = read_leaderboard(path)
    assert [(r["lens"], r["site"]) for r in rows] == [("neuron", "hidden"), ("lib", "hidden")]
    assert "plotly" in (runs[0] / "lenses" / "leaderboard.html").read_text()
    assert main(["lenses", str(runs[1]), "--lens", "neuron", "--lens", "lib", "--site", "hidden", "--no-progress"]) == 0
    assert main(["lenses", str(runs[1]), "--lens", "ica"]) == 2
    assert "expected one of" in capsys.readouterr().err
    assert main(["lenses", str(batch), "--table"]) == 0
    table = capsys.readouterr().out
    assert table == batch_lens_table(batch)
    lines = [l for l in table.splitlines() if l.startswith("| ") and "neuron" in l]
    assert len(lines) == 1
    cells = [c.strip() for c in lines[0].strip("|").split("|")]
    assert cells[1:4] == ["neuron", "hidden", "2"]
    match, hist = float(cells[-2]), float(cells[-1])
    assert 0.0 < match <= 1.0 and 0.0 < hist <= 1.0
    assert "pending (no lenses/leaderboard.csv): S4_MLP_seed3" in table
