"""Several checkpoints per pass (rep_theory.analysis.metrics_batch) give the one-by-one numbers."""

import json
import math
import shutil

import pytest
import torch

import rep_theory.analysis.evaluate as E
from rep_theory.analysis.evaluate import evaluate_run
from rep_theory.analysis.metrics import IrrepBases, checkpoint_aggregates, checkpoint_metrics, pair_mask
from rep_theory.analysis.metrics_batch import checkpoint_metrics_many, ckpt_batch_size, metrics_from_aggregates
from rep_theory.training.config import RunConfig
from rep_theory.training.data import make_split
from rep_theory.training.models import make_model
from rep_theory.training.rundir import new_run, read_metrics_csv
from rep_theory.training.train import fit, train_runs
from test_planted import planted_mlp_state

pytestmark = pytest.mark.usefixtures("one_thread")

REL = 1e-10  # float64 agreement asked of the batched path (it is ~1e-15 in practice)
# ... except for values that are rounding noise around an exact 0 (e.g. the trivial irrep's share of
# a planted unembedding, 7e-17), whose relative agreement means nothing: those agree to 1e-15.
ABS = 1e-15


def _assert_same_rows(one, many):
    assert len(one) == len(many)
    for ref, row in zip(one, many):
        assert list(row) == list(ref)  # same keys, same order
        for key, value in ref.items():
            got = row[key]
            if math.isnan(value) or math.isinf(value):
                assert got == value or (math.isnan(got) and math.isnan(value)), key
            else:
                assert math.isclose(got, value, rel_tol=REL, abs_tol=ABS), (key, value, got)


@pytest.mark.parametrize("model_name", ["OneLayerMLP", "BilinearNet", "Transformer"])
def test_many_checkpoints_equal_one_by_one_on_every_metric(model_name):
    spec = "S4"
    cfgs = [RunConfig(group=spec, model=model_name, seed=s, frac_train=0.5, num_epochs=40, lr=1e-2,
                      embed_dim=16, hidden_dim=24, device="cpu") for s in (1, 2)]
    trained, _ = fit(cfgs, "cpu")
    models = [make_model(model_name, 24, seed=5, embed_dim=16, hidden_dim=24), *trained,
              make_model(model_name, 24, seed=6, embed_dim=16, hidden_dim=24)]
    states = [m.state_dict() for m in models]
    bases = IrrepBases.for_group(spec)
    train = make_split(spec, 0.5, 1).train
    scratch = make_model(model_name, 24, seed=0, embed_dim=16, hidden_dim=24).eval()
    nontrivial = [name for name in bases.names if name != "trivial"]
    # None: each checkpoint's own key irreps; a reversed list: the totals' summation order
    for keys in (None, nontrivial[::-1], nontrivial[1:2]):
        one = [checkpoint_metrics(m.eval(), bases, train_pairs=train, key_irreps=keys, epoch=e)
               for e, m in enumerate(models)]
        many = checkpoint_metrics_many(scratch, states, bases, train_pairs=train, key_irreps=keys,
                                       epochs=range(len(states)))
        _assert_same_rows(one, many)
    with pytest.raises(ValueError, match="not non-trivial irreps"):
        checkpoint_metrics_many(scratch, states, bases, train_pairs=train, key_irreps=["trivial"])


def test_planted_circuits_with_tiny_losses_agree():
    """Near-perfect planted models: the excluded losses are tiny differences of O(1) terms."""
    spec = "C7"
    states = [planted_mlp_state(spec, {"freq_1": a, "freq_3": 1.0}) for a in (0.0, 0.5, 1.0, 2.0)]
    width = states[0]["W_U"].shape[0]
    models = [make_model("OneLayerMLP", 7, embed_dim=width, hidden_dim=width) for _ in states]
    for model, state in zip(models, states):
        model.load_state_dict(state)
    bases = IrrepBases.for_group(spec)
    train = make_split(spec, 0.5, 1).train
    one = [checkpoint_metrics(m, bases, train_pairs=train) for m in models]
    many = checkpoint_metrics_many(models[0], states, bases, train_pairs=train)
    assert min(row["hidden_excluded_loss_freq_2_rep"] for row in one) < 1e-12  # rounding-noise sized: any reordering shows
    _assert_same_rows(one, many)


def test_batch_size_falls_back_to_one_by_one_for_large_groups():
    assert ckpt_batch_size(24, 128, 230) > 1                            # S4: many per pass
    assert ckpt_batch_size(720, 128, 720 * 720 // 4) == 0               # S6: one by one, chunked
    assert ckpt_batch_size(120, 128, 5760, budget=1) == 0
    # the irrep count bounds the per-checkpoint tables: fewer irreps, more checkpoints per pass
    assert ckpt_batch_size(120, 128, 5760, n_irreps=7, limit=10**6) > ckpt_batch_size(120, 128, 5760, limit=10**6)


def test_loader_threads_only_for_small_checkpoints_on_the_cpu():
    assert 1 <= E._loader_threads(torch.device("cpu"), True) <= E._MAX_LOADERS
    assert E._loader_threads(torch.device("cpu"), False) == 1


def test_aggregates_without_the_training_rows_are_refused(monkeypatch):
    """A group too large to keep its training pairs' logits goes one by one; the batched
    function says so instead of failing later."""
    import rep_theory.analysis.metrics as M
    bases = IrrepBases.for_group("S3")
    model = make_model("OneLayerMLP", 6, seed=1, embed_dim=8, hidden_dim=8).eval()
    train = make_split("S3", 0.5, 1).train
    monkeypatch.setattr(M, "_STORE_BYTES", 0)
    with torch.inference_mode():
        agg = checkpoint_aggregates(model, bases, train_mask=pair_mask(train, bases))
    assert agg.store is None and agg.H is not None                      # kept for pass 2 instead
    with pytest.raises(ValueError, match="too large for the batched path"):
        metrics_from_aggregates([agg], bases, train_pairs=train)
    with pytest.raises(ValueError, match="2 epochs"):
        metrics_from_aggregates([agg], bases, train_pairs=train, epochs=[1, 2])


@pytest.mark.parametrize("loaders", [1, 3])
def test_evaluate_run_batched_equals_one_by_one(tmp_path, monkeypatch, loaders):
    """Pass 1 runs in ``loaders`` loader threads (in any order of completion); the rows come back in
    checkpoint order and equal the one-by-one path's."""
    monkeypatch.setattr(E, "_loader_threads", lambda device, small: loaders)
    cfg = RunConfig(group="S3", model="MLP", seed=1, frac_train=0.6, num_epochs=40, lr=1e-2, embed_dim=8,
                    hidden_dim=16, log_every=10)
    run = new_run(tmp_path / "a" / "S3_MLP_seed1", cfg)
    train_runs([run], device="cpu", progress=False)
    other = tmp_path / "b" / run.name
    shutil.copytree(run, other)
    evaluate_run(run, progress=False, device="cpu", ckpt_batch=1)
    evaluate_run(other, progress=False, device="cpu", ckpt_batch=7)    # batches of 7, the last one short
    one, many = read_metrics_csv(run / "metrics.csv"), read_metrics_csv(other / "metrics.csv")
    assert len(one) == len(many) > 7
    _assert_same_rows(one, many)
    for name in ("summary_metrics.json", "key_reps.txt", "key_reps_in_order.txt"):
        assert (run / name).read_text() == (other / name).read_text(), name
    record_one = json.loads((run / "evaluation.json").read_text())
    record_many = json.loads((other / "evaluation.json").read_text())
    assert record_one["checkpoints"].keys() == record_many["checkpoints"].keys()
    for epoch, stamp in record_one["checkpoints"].items():
        assert stamp["sha256"] == record_many["checkpoints"][epoch]["sha256"]


def test_default_batches_small_checkpoints_only_on_the_cpu(tmp_path, monkeypatch):
    """``ckpt_batch=None`` batches checkpoints up to ``_SMALL_ELEMENTS`` (pairs x hidden) on the
    CPU and evaluates larger ones one by one."""
    cfg = RunConfig(group="S3", model="MLP", seed=1, frac_train=0.6, num_epochs=6, lr=1e-2, embed_dim=8,
                    hidden_dim=16, log_every=3)
    run = new_run(tmp_path / "S3_MLP_seed1", cfg)
    train_runs([run], device="cpu", progress=False)
    batched = []
    original = E.metrics_from_aggregates
    monkeypatch.setattr(E, "metrics_from_aggregates", lambda *a, **k: batched.append(k["epochs"]) or original(*a, **k))
    evaluate_run(run, progress=False, device="cpu")
    assert sum(len(e) for e in batched) == 7                            # epochs 0..6, batched
    batched.clear()
    (run / "metrics.csv").unlink()
    monkeypatch.setattr(E, "_SMALL_ELEMENTS", 36 * 16 - 1)              # now one element too many
    evaluate_run(run, progress=False, device="cpu")
    assert batched == [] and len(read_metrics_csv(run / "metrics.csv")) == 7


def test_prefetch_batches_start_small_and_keep_checkpoint_order(monkeypatch):
    """The first batches are small (the metrics start while the loaders fill the pipeline), then
    ``size``; every checkpoint comes back once, in order, whichever loader thread made it."""
    todo = [(epoch, tmp) for epoch, tmp in enumerate(f"epoch_{e}.pt" for e in range(40))]
    with E._Prefetch(todo, torch.device("cpu"), ahead=16, workers=3) as loaded:
        monkeypatch.setattr(loaded, "_load", lambda path: (None, path))
        sizes, names = [], []
        for batch in loaded.batches(16):
            sizes.append(len(batch))
            names += [future.result()[1] for _, _, future in batch]
    assert sizes == [E._FIRST_BATCH, 2 * E._FIRST_BATCH, 16, 40 - 16 - 3 * E._FIRST_BATCH]
    assert names == [f"epoch_{e}.pt" for e in range(40)]
