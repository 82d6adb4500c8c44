"""RunConfig: the paper's cfg.json round trip, validation with named errors, the paper's grid."""

import dataclasses
import json

import pytest

from rep_theory import __version__
from rep_theory.training.config import PAPER_GRID, RunConfig, paper_defaults

PAPER_RUNS = ("C113_MLP_seed1", "C113_T_seed1", "D59_MLP_seed1", "S5_MLP_seed1")


@pytest.mark.parametrize("run", PAPER_RUNS)
def test_paper_cfg_json_loads_as_is_and_round_trips(reference_dir, run):
    paper = json.loads((reference_dir / "paper_models" / run / "cfg.json").read_text())
    cfg = RunConfig.from_dict(paper)
    assert cfg.run_name == run
    out = cfg.to_dict()
    # Every paper key comes back with the paper's value (lists for betas, the paper's group form).
    assert {k: out[k] for k in paper} == paper
    assert RunConfig.from_dict(out) == cfg
    assert out["version"] == __version__ and out["device"] == "auto"
    json.dumps(out)  # JSON-serialisable


def test_group_and_model_forms_are_equivalent():
    a = RunConfig(group="SymmetricGroup", group_parameter=5, model="OneLayerMLP")
    b = RunConfig(group="S5", model="MLP")
    assert a == b and a.spec == "S5" and a.model == "OneLayerMLP" and a.group_parameter is None
    assert RunConfig(group="C4xC6", model="T").to_dict()["group"] == "C4xC6"
    assert "group_parameter" not in RunConfig(group="C4xC6", model="B").to_dict()
    assert RunConfig.from_dict({"group": "D8", "model": "B"}).model == "BilinearNet"


def test_frozen_and_hashable():
    cfg = RunConfig(group="S5", model="MLP")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 2
    assert hash(cfg) == hash(RunConfig(group="S5", model="MLP"))
    assert cfg.replace(seed=2).seed == 2 and cfg.seed == 1


@pytest.mark.parametrize("kwargs, words", [
    ({"group": "X5"}, ["group", "X5"]),
    ({"group": "SymmetricGroup"}, ["group_parameter", "SymmetricGroup"]),
    ({"group": "QuaternionGroup", "group_parameter": 8}, ["QuaternionGroup"]),
    ({"model": "CNN"}, ["model", "CNN"]),
    ({"frac_train": 0.0}, ["frac_train", "0.0"]),
    ({"frac_train": 1.0}, ["frac_train", "1.0"]),
    ({"frac_train": 1.5}, ["frac_train", "1.5"]),
    ({"num_epochs": 0}, ["num_epochs", "0"]),
    ({"embed_dim": 0}, ["embed_dim", "0"]),
    ({"hidden_dim": -3}, ["hidden_dim", "-3"]),
    ({"lr": 0.0}, ["lr", "0.0"]),
    ({"lr": -1e-3}, ["lr", "-0.001"]),
    ({"weight_decay": -1.0}, ["weight_decay", "-1.0"]),
    ({"betas": (0.9, 1.0)}, ["betas", "1.0"]),
    ({"betas": (0.9,)}, ["betas"]),
    ({"seed": -1}, ["seed", "-1"]),
    ({"device": "tpu"}, ["device", "tpu"]),
    ({"log_every": 0}, ["log_every", "0"]),
    ({"group": "C3", "frac_train": 0.05}, ["frac_train", "C3"]),
])
def test_validation_names_field_and_value(kwargs, words):
    base = {"group": "S5", "model": "MLP"}
    base.update(kwargs)
    with pytest.raises((ValueError, TypeError)) as err:
        RunConfig(**base)
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_unknown_keys_are_an_error_naming_them():
    with pytest.raises(ValueError, match="banana"):
        RunConfig.from_dict({"group": "S5", "model": "MLP", "banana": 1})
    with pytest.raises(ValueError, match="depth"):
        RunConfig.from_dict({"group": "S5", "model": "MLP", "layers": {"embed_dim": 8, "hidden_dim": 8, "depth": 2}})
    with pytest.raises(ValueError, match="model"):
        RunConfig.from_dict({"group": "S5"})


def test_wrong_types_raise_type_error():
    with pytest.raises(TypeError, match="seed"):
        RunConfig(group="S5", model="MLP", seed="1")
    with pytest.raises(TypeError, match="lr"):
        RunConfig(group="S5", model="MLP", lr="fast")


@pytest.mark.parametrize("spec, model", sorted(PAPER_GRID))
def test_paper_defaults_follow_the_design_grid(spec, model):
    cfg = paper_defaults(spec, model, seed=3)
    frac, epochs = PAPER_GRID[(spec, model)]
    assert (cfg.frac_train, cfg.num_epochs, cfg.seed, cfg.spec, cfg.model) == (frac, epochs, 3, spec, model)
    assert (cfg.lr, cfg.weight_decay, cfg.betas, cfg.embed_dim, cfg.hidden_dim) == (1e-3, 1.0, (0.9, 0.98), 256, 128)


def test_paper_defaults_grid_values_from_design():
    # the paper's grid (the README's "Grids"), spelled out independently of PAPER_GRID.
    expected = {("S5", "MLP"): (0.4, 250_000), ("S5", "T"): (0.6, 50_000), ("S6", "MLP"): (0.25, 250_000),
                ("S6", "T"): (0.4, 20_000), ("A5", "T"): (0.6, 250_000), ("D61", "T"): (0.3, 100_000),
                ("C118", "T"): (0.3, 50_000), ("A5", "MLP"): (0.5, 250_000)}
    for (spec, model), (frac, epochs) in expected.items():
        cfg = paper_defaults(spec, model)
        assert (cfg.frac_train, cfg.num_epochs) == (frac, epochs), (spec, model)


def test_paper_defaults_other_groups_and_overrides():
    mlp = paper_defaults("C4xC6", "MLP")
    t = paper_defaults("Q8", "T")
    assert (mlp.frac_train, mlp.num_epochs) == (0.4, 250_000)
    assert (t.frac_train, t.num_epochs) == (0.4, 50_000)
    cfg = paper_defaults("S5", "MLP", num_epochs=100, hidden_dim=32, embed_dim=64)
    assert (cfg.num_epochs, cfg.hidden_dim, cfg.embed_dim) == (100, 32, 64)
    with pytest.raises(ValueError, match="colour"):
        paper_defaults("S5", "MLP", colour="red")


def test_batch_key_differs_only_by_seed():
    a = paper_defaults("S5", "MLP", seed=1)
    assert a.batch_key() == paper_defaults("S5", "MLP", seed=7).batch_key()
    assert a.batch_key() != paper_defaults("S5", "MLP", seed=1, lr=2e-3).batch_key()
    assert a.batch_key() != paper_defaults("S5", "T", seed=1).batch_key()


def test_validation_does_not_build_the_group():
    """A config for S7 validates by parsing its spec: no 5040 x 5040 Cayley table is built."""
    from rep_theory.algebra.groups import _get_group_cached

    before = _get_group_cached.cache_info().misses
    cfg = RunConfig(group="S7", model="MLP", frac_train=0.3)
    assert cfg.spec == "S7" and _get_group_cached.cache_info().misses == before
    with pytest.raises(ValueError, match="empty train or test set"):
        RunConfig(group="C2", model="MLP", frac_train=0.1)


def test_paper_extra_keys_are_accepted_with_a_warning():
    """The paper's S6_MLP_seed2/cfg.json carries a stale "epochs" beside "num_epochs"."""
    d = RunConfig(group="S5", model="MLP").to_dict()
    with pytest.warns(UserWarning, match="epochs"):
        cfg = RunConfig.from_dict(dict(d, epochs=50_000))
    assert cfg == RunConfig.from_dict(d) and cfg.num_epochs == d["num_epochs"]
    with pytest.raises(ValueError, match="unknown key"):
        RunConfig.from_dict(dict(d, epochz=1))
