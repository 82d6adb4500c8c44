"""Bad input to the public Python API: a named error, never an internal one or a silent wrong result."""

import pytest
import torch

from rep_theory.algebra.groups import get_group
from rep_theory.algebra.rhosets import rho_set
from rep_theory.analysis.evaluate import evaluate_run
from rep_theory.analysis.metrics import IrrepBases, checkpoint_metrics
from rep_theory.explain.proofs.api import verify_run
from rep_theory.explain.proofs.core import mlp_matrices
from rep_theory.explain.proofs.fourier_proof import fit_fourier
from rep_theory.training.config import RunConfig
from rep_theory.training.data import make_split
from rep_theory.training.models import make_model
from rep_theory.training.rundir import load_run_model, new_run
from rep_theory.training.train import fit, train_runs


@pytest.fixture(scope="module")
def s3_run(tmp_path_factory):
    run = new_run(tmp_path_factory.mktemp("api") / "S3_MLP_seed1",
                  RunConfig(group="S3", model="MLP", seed=1, frac_train=0.5, num_epochs=3, embed_dim=4,
                            hidden_dim=6, device="cpu"))
    train_runs([run], device="cpu", progress=False)
    return run


def test_splits_refuse_empty_sets_and_bad_seeds():
    with pytest.raises(ValueError, match="leaves an empty train or test set"):
        make_split("S3", 0.01, 1)
    for seed in (-1, 1.5, True):
        with pytest.raises(ValueError, match="seed must be an integer"):
            make_split("S3", 0.5, seed)
    with pytest.raises(ValueError, match="frac_train must be a number"):
        make_split("S3", "0.5", 1)


@pytest.mark.parametrize("pairs, error, message", [
    (torch.tensor([], dtype=torch.long), ValueError, "train_pairs is empty"),
    (torch.tensor([0, 36]), ValueError, r"must lie in \[0, 36\)"),
    (torch.tensor([-1, 3]), ValueError, r"must lie in \[0, 36\)"),
    (torch.tensor([1, 1, 2]), ValueError, "repeats pair indices"),
    (torch.tensor([0.0, 1.0]), ValueError, "integer tensor"),
    (torch.tensor([[0, 1]]), ValueError, "1-d integer tensor"),
    ([0, 1], TypeError, "must be a 1-d LongTensor"),
])
def test_training_pairs_are_checked(pairs, error, message):
    model = make_model("OneLayerMLP", 6, seed=1, embed_dim=4, hidden_dim=6).eval()
    with pytest.raises(error, match=message):
        checkpoint_metrics(model, IrrepBases.for_group("S3"), train_pairs=pairs)


def test_metrics_refuse_what_is_not_a_model_or_a_size(s3_run):
    train = make_split("S3", 0.5, 1).train
    with pytest.raises(TypeError, match="model must be one of"):
        checkpoint_metrics(torch.nn.Linear(2, 2), IrrepBases.for_group("S3"), train_pairs=train)
    with pytest.raises(ValueError, match="ckpt_batch must be None or >= 1"):
        evaluate_run(s3_run, progress=False, ckpt_batch=0)
    with pytest.raises(ValueError, match="key_threshold must be a finite number"):
        evaluate_run(s3_run, progress=False, key_threshold=float("nan"))
    with pytest.raises(ValueError, match="'bogus': expected auto, cpu, cuda or cuda:K"):
        IrrepBases.for_group("S3", "bogus")


def test_run_helpers_name_their_mistakes(s3_run, tmp_path):
    cfg = RunConfig(group="S3", model="MLP", seed=2, num_epochs=3)
    with pytest.raises(TypeError, match="epoch must be an int"):
        load_run_model(s3_run, epoch=1.5)
    with pytest.raises(ValueError, match="run_dir is empty"):
        new_run("", cfg)
    with pytest.raises(TypeError, match="cfg must be a RunConfig"):
        new_run(tmp_path / "r", cfg.to_dict())
    with pytest.raises(TypeError, match="fit takes RunConfigs"):
        fit(["S3"])
    with pytest.raises(TypeError, match="pass \\["):
        train_runs(str(s3_run))
    with pytest.raises(ValueError, match="'tpu'"):
        train_runs([s3_run], device="tpu")                          # finished, but the device is still checked
    with pytest.raises(TypeError, match="pass \\['brute'\\]"):
        verify_run(s3_run, "brute")
    other = new_run(tmp_path / "C5_MLP_seed1", RunConfig(group="C5", model="MLP", seed=1, num_epochs=3,
                                                         embed_dim=4, hidden_dim=6))
    (other / "model.pt").write_bytes((s3_run / "model.pt").read_bytes())   # S3's weights under a C5 config
    with pytest.raises(ValueError, match="the weights do not fit the config's network"):
        load_run_model(other)


def test_proof_and_rho_set_inputs_are_checked():
    G = get_group("S3")
    L, R, U = mlp_matrices(make_model("OneLayerMLP", 6, seed=1, embed_dim=4, hidden_dim=6))
    with pytest.raises(TypeError, match="G must be a Group"):
        fit_fourier("S3", L, R, U)
    with pytest.raises(ValueError, match="L, R and U must all be"):
        fit_fourier(G, L[:, :3], R, U)
    with pytest.raises(ValueError, match="U must be a float64 tensor"):
        fit_fourier(G, L, R, U.float())
    with pytest.raises(ValueError, match="sample must be >= 1"):
        fit_fourier(G, L, R, U, sample=0)
    with pytest.raises(ValueError, match=r"key_power must lie in \(0, 1\]"):
        fit_fourier(G, L, R, U, key_power=2)
    with pytest.raises(ValueError, match="atol must be >= 0"):
        rho_set(G, "standard", atol=-1)


def test_a_missing_group_or_model_is_a_named_error():
    """``None`` (or another object) where a group or a planted circuit's irreps belong: a TypeError
    naming what was expected, not an AttributeError from deep inside."""
    from rep_theory.explain.proofs import planted_circuits_mlp, verify
    from rep_theory.explain.proofs.planted import planted_circuits_state
    from rep_theory.lenses import lens_leaderboard

    model = make_model("OneLayerMLP", 6, seed=1, embed_dim=4, hidden_dim=6)
    with pytest.raises(TypeError, match="expected a Group or a group spec"):
        verify(model, None, method="brute")
    with pytest.raises(TypeError, match="expected a Group or a group spec"):
        planted_circuits_mlp(None, {"standard": 1.0})
    with pytest.raises(TypeError, match="irreps must be an irrep name or a non-empty dict"):
        planted_circuits_mlp("S3", None)
    with pytest.raises(TypeError, match="irreps must be a non-empty dict"):
        planted_circuits_state("S3", None)
    with pytest.raises(TypeError, match="expected a Group or a group spec"):
        lens_leaderboard(model, None, lenses=["pca"], progress=False)
    with pytest.raises(TypeError, match="the verifiers handle OneLayerMLP"):
        verify(None, "S3", method="brute")
    rows = lens_leaderboard(model, "S3", lenses=["pca"], progress=False)   # a spec is accepted
    assert rows and rows[0]["lens"] == "pca"
