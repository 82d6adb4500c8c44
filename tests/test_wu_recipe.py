"""Wu et al.'s MLP and training recipe (``WuMLP``, ``wu_recipe``): the model's formula, seed batching,
the verifiers' view of it, its config round trip and the command line."""

import json

import pytest
import torch

from rep_theory.algebra.groups import get_group
from rep_theory.cli import main as cli_main
from rep_theory.explain.proofs import verify
from rep_theory.explain.proofs.core import mlp_matrices
from rep_theory.training.batched import BatchedWuMLP, make_batched_model
from rep_theory.training.config import WU_MLP2_RECIPE, WU_RECIPE, RunConfig, load_config, paper_defaults, wu_recipe
from rep_theory.training.models import WuMLP, make_model
from rep_theory.training.rundir import load_run_model
from rep_theory.training.train import fit

from test_train import _single_reference

pytestmark = pytest.mark.usefixtures("one_thread")


def _all_pairs(n):
    p = torch.arange(n * n)
    return p // n, p % n


def test_model_computes_the_formula():
    # f(z | x, y) = sum_i W_U[i, z] relu(W_l[x, i] + W_r[y, i]), on every pair
    model = WuMLP(7, 9, seed=3)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == {"W_l": (7, 9), "W_r": (7, 9), "W_U": (9, 7)}
    a, b = _all_pairs(7)
    with torch.no_grad():
        got = model(a, b).reshape(7, 7, 7)
        pre = model.W_l[:, None, :] + model.W_r[None, :, :]                 # [x, y, i]
        want = torch.einsum("xyi,iz->xyz", torch.relu(pre), model.W_U)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    # the metrics' interface and the hidden hook agree with the formula
    torch.testing.assert_close(model.hidden_all_pairs().reshape(7, 7, 9), torch.relu(pre))
    torch.testing.assert_close(model.logits_all_pairs().reshape(7, 7, 7), want, rtol=1e-6, atol=1e-6)
    assert torch.equal(model.unembedding(), model.W_U.T)
    # init: W_l, W_r standard normal, W_U uniform in +-1/sqrt(hidden); the seed decides it
    big = WuMLP(40, 128, seed=1)
    assert 0.9 < big.W_l.std().item() < 1.1 and 0.9 < big.W_r.std().item() < 1.1
    assert big.W_U.abs().max().item() <= 128 ** -0.5 and big.W_U.abs().max().item() > 0.9 * 128 ** -0.5
    assert torch.equal(WuMLP(7, 9, seed=3).W_l, model.W_l) and not torch.equal(WuMLP(7, 9, seed=4).W_l, model.W_l)


def test_batched_model_stacks_singles():
    batched = make_batched_model("WuMLP", 6, seeds=[1, 5], hidden_dim=8)
    assert isinstance(batched, BatchedWuMLP)
    a, b = _all_pairs(6)
    out = batched(a.expand(2, -1), b.expand(2, -1))
    for i, s in enumerate((1, 5)):
        single = make_model("WuMLP", 6, seed=s, hidden_dim=8)
        torch.testing.assert_close(out[i], single(a, b))
        torch.testing.assert_close(batched.to_single(i)(a, b), single(a, b))


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-4), (torch.float64, 1e-11)])
def test_seed_batched_training_equals_per_seed_training(dtype, tol):
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        # a larger weight decay than the recipe's, so that a trainer ignoring it (or using AdamW) fails
        cfgs = [wu_recipe("S3", seed=s, num_epochs=40, hidden_dim=16, weight_decay=0.1, device="cpu", log_every=20)
                for s in (1, 2)]
        models, logs = fit(cfgs, "cpu")
        for cfg, trained, log in zip(cfgs, models, logs):
            ref = _single_reference(cfg)   # torch.optim.Adam: cfg.optimizer is "adam"
            assert trained.W_l.dtype == dtype
            for key, value in ref.state_dict().items():
                rel = ((trained.state_dict()[key] - value).norm() / value.norm()).item()
                assert rel < tol, (key, rel)
            assert [row["epoch"] for row in log] == [0, 20, 40]
        assert not torch.allclose(models[0].W_l, models[1].W_l)
    finally:
        torch.set_default_dtype(before)


def _trained(spec="S4", epochs=60):
    cfg = wu_recipe(spec, seed=2, num_epochs=epochs, hidden_dim=32, device="cpu")
    (model,), _ = fit([cfg], "cpu")
    return model, get_group(spec)


def test_mlp_matrices_reproduce_the_forward_pass():
    model, G = _trained()
    L, R, U = mlp_matrices(model)
    assert L.dtype == torch.float64 and L.shape == R.shape == U.shape == (G.order, 32)
    assert torch.equal(L, model.W_l.double()) and torch.equal(U, model.W_U.double().T)
    a, b = _all_pairs(G.order)
    logits = torch.relu(L[a] + R[b]) @ U.T
    torch.testing.assert_close(logits, model(a, b).double(), rtol=1e-5, atol=1e-5)


def test_brute_force_bound_is_the_exact_accuracy():
    model, G = _trained()
    a, b = _all_pairs(G.order)
    L, R, U = mlp_matrices(model)
    logits = torch.relu(L[a] + R[b]) @ U.T                              # float64, as the verifiers read it
    target = G.table[a, b]
    right = logits.gather(1, target[:, None])[:, 0]
    others = logits.scatter(1, target[:, None], float("-inf")).max(1).values
    exact = (right > others).double().mean().item()
    assert 0.2 < exact < 1.0                                            # a partly trained network
    assert verify(model, G, method="brute").bound == exact
    r = verify(model, G, method="hybrid")                               # a verifier that fits: it is sound
    assert r.bound <= exact


def test_recipe_config_round_trips_through_json():
    cfg = wu_recipe("A4", seed=7, num_epochs=123)
    assert (cfg.model, cfg.frac_train, cfg.hidden_dim, cfg.optimizer) == ("WuMLP", 0.4, 128, "adam")
    assert (cfg.lr, cfg.weight_decay, cfg.betas) == (WU_RECIPE["lr"], WU_RECIPE["weight_decay"], (0.9, 0.98))
    d = json.loads(json.dumps(cfg.to_dict()))
    assert d["model"] == "WuMLP" and d["optimizer"] == "adam"
    assert RunConfig.from_dict(d) == cfg
    assert paper_defaults("A4", "Wu", seed=7, num_epochs=123) == cfg
    # the paper's configs are unchanged: AdamW, and no optimizer key in cfg.json
    mlp = paper_defaults("S5", "MLP")
    assert mlp.optimizer == "adamw" and "optimizer" not in mlp.to_dict()
    with pytest.raises(ValueError, match="optimizer"):
        cfg.replace(optimizer="sgd")


def test_mlp2_recipe_is_the_papers_mlp_with_their_optimiser():
    """``architecture="MLP2"``: the paper's OneLayerMLP at 128/128 with Wu et al.'s Adam settings; the
    same optimiser fields as WU_RECIPE, overrides win, and a trained model folds into the verifiers'
    (L, R, U) form."""
    cfg = wu_recipe("S4", seed=3, architecture="MLP2", num_epochs=40)
    assert (cfg.model, cfg.embed_dim, cfg.hidden_dim, cfg.frac_train) == ("OneLayerMLP", 128, 128, 0.4)
    for key in ("optimizer", "lr", "weight_decay", "betas"):
        assert getattr(cfg, key) == WU_RECIPE[key] == WU_MLP2_RECIPE[key], key
    assert cfg.num_epochs == 40 and wu_recipe("S4", architecture="MLP2").num_epochs == WU_MLP2_RECIPE["num_epochs"]
    assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="architecture must be 'WuMLP' or 'MLP2', got 'MLP3'"):
        wu_recipe("S4", architecture="MLP3")
    (model,), _ = fit(cfg.replace(embed_dim=16, hidden_dim=16), "cpu")
    G = get_group("S4")
    brute = verify(model, G, method="brute")
    a, b = _all_pairs(G.order)
    exact = float((model(a, b).argmax(-1) == G.table[a, b]).double().mean())
    assert brute.bound == pytest.approx(exact, abs=1e-12)


def test_cli_new_train_verify_and_eval(tmp_path):
    runs = [tmp_path / f"S3_Wu_seed{s}" for s in (1, 2)]
    for s, run in zip((1, 2), runs):
        assert cli_main(["new", str(run), "--group", "S3", "--model", "Wu", "--seed", str(s), "--epochs", "30",
                         "--hidden-dim", "16"]) == 0
    cfg = load_config(runs[0])
    assert cfg.model == "WuMLP" and cfg.optimizer == "adam" and cfg.num_epochs == 30
    assert cli_main(["train", *map(str, runs), "--device", "cpu", "--no-progress"]) == 0
    model = load_run_model(runs[0])
    assert isinstance(model, WuMLP) and model.W_l.shape == (6, 16)
    assert cli_main(["verify", str(runs[0]), "--method", "brute", "--method", "rhoset"]) == 0
    assert (runs[0] / "verify" / "brute.json").is_file()
    assert cli_main(["eval", str(runs[0]), "--final", "--no-figures", "--no-progress", "--device", "cpu"]) == 0
    metrics = json.loads((runs[0] / "summary_metrics.json").read_text())
    assert metrics


def test_cli_recipe_wu_with_the_mlp(tmp_path, capsys):
    """``new --recipe wu --model MLP`` writes WU_MLP2_RECIPE (overrides still win); combinations that
    have no Wu recipe are refused with the values named."""
    assert cli_main(["new", str(tmp_path / "a"), "--group", "S5", "--model", "MLP", "--seed", "2",
                     "--recipe", "wu", "--epochs", "300"]) == 0
    cfg = load_config(tmp_path / "a")
    assert cfg == wu_recipe("S5", seed=2, architecture="MLP2", num_epochs=300)
    assert cli_main(["new", str(tmp_path / "b"), "--group", "S5", "--model", "T", "--seed", "1",
                     "--recipe", "wu"]) == 2
    assert "--recipe wu needs --model Wu or MLP, got --model T" in capsys.readouterr().err
    assert cli_main(["new", str(tmp_path / "c"), "--group", "S4", "--model", "Wu", "--seed", "1",
                     "--recipe", "paper"]) == 2
    assert "--model Wu has Wu et al.'s recipe only" in capsys.readouterr().err
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()
    assert cli_main(["new", str(tmp_path / "d"), "--group", "S4", "--model", "Wu", "--seed", "1",
                     "--recipe", "wu"]) == 0
    assert load_config(tmp_path / "d") == wu_recipe("S4", seed=1)
