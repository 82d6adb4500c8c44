"""The GPU path: CUDA-graph training, determinism, resume, and metrics on CUDA.

The paper (Chughtai, Chan & Nanda, "A Toy Model of Universality", ICML 2023) trained every network
full-batch with AdamW on a GPU for up to 250k epochs.  Once the training loss is ~1e-6, AdamW turns
any rounding difference into runs that differ by tens of percent, so the package's GPU training
must be deterministic (README, "Training, seed batching, resume"):

* a step replayed from a CUDA graph equals an eager step;
* two identical runs are bitwise identical;
* a run killed (SIGKILL) and resumed is bitwise identical to an uninterrupted one;
* seed-batched training on CUDA equals CPU training within float tolerance;
* :func:`rep_theory.analysis.metrics.checkpoint_metrics` on CUDA equals the CPU's.

Every test is skipped where ``torch.cuda.is_available()`` is false (CI has no GPU): there is
nothing to test there, and the CPU path has its own tests (``tests/test_train.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rep_theory.analysis.bases import IrrepBases
from rep_theory.analysis.metrics import checkpoint_metrics
from rep_theory.training.config import RunConfig
from rep_theory.training.data import make_split
from rep_theory.training.rundir import load_weights, new_run, resume_files, run_status
from rep_theory.training.train import fit, train_run

from helpers import sigkill_when

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device: the GPU path cannot run here (CI has no GPU)")

ROOT = Path(__file__).resolve().parents[1]


def _cfg(seed=1, **kw) -> RunConfig:
    base = dict(group="C13", model="MLP", seed=seed, num_epochs=200, embed_dim=32, hidden_dim=32,
                frac_train=0.6, lr=1e-2, log_every=50, device="cuda")
    base.update(kw)
    return RunConfig(**base)


def _states(models) -> list[dict[str, torch.Tensor]]:
    return [{k: v.detach().cpu() for k, v in m.state_dict().items()} for m in models]


def _max_rel(a: dict, b: dict) -> float:
    worst = 0.0
    for key, ref in b.items():
        scale = ref.norm().item()
        diff = (a[key].double() - ref.double()).norm().item()
        worst = max(worst, diff / scale if scale else diff)
    return worst


@pytest.mark.parametrize("model", ["MLP", "T"])
def test_cuda_graph_replay_equals_eager_steps(model):
    """The graph is captured once and replayed; eager steps run the same kernels (AdamW's
    capturable and plain paths may round differently, so the tolerance is float32's, after few
    epochs, before training amplifies rounding)."""
    # The transformer amplifies rounding faster: after 20 epochs it differed by 2.6e-4 on an H200.
    cfgs = [_cfg(seed=s, model=model, num_epochs=5 if model == "T" else 50) for s in (1, 2)]
    graph, _ = fit(cfgs, "cuda", cuda_graphs=True)
    eager, _ = fit(cfgs, "cuda", cuda_graphs=False)
    for g, e in zip(_states(graph), _states(eager)):
        assert _max_rel(g, e) < 1e-4, f"{model}: graph replay vs eager steps differ by {_max_rel(g, e):.3g}"
    initial, _ = fit([c.replace(num_epochs=1) for c in cfgs], "cuda", cuda_graphs=True)
    assert _max_rel(_states(graph)[0], _states(initial)[0]) > 1e-3, "training moved the weights"


@pytest.mark.parametrize("model", ["MLP", "T"])
def test_two_identical_runs_are_bitwise_identical(model):
    cfgs = [_cfg(seed=s, model=model) for s in (1, 2, 3)]
    first, logs1 = fit(cfgs, "cuda")
    second, logs2 = fit(cfgs, "cuda")
    for a, b in zip(_states(first), _states(second)):
        for key in a:
            assert torch.equal(a[key], b[key]), f"{model} {key}: two identical CUDA runs differ"
    assert logs1 == logs2


def test_kill_and_resume_is_bitwise_identical(tmp_path):
    """SIGKILL a CUDA training process after a few resume states; training it again resumes and
    ends at exactly the weights of an uninterrupted CUDA run."""
    cfg = _cfg(num_epochs=1000, log_every=250)
    killed = new_run(tmp_path / "killed", cfg)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "rep_theory", "-v", "train", str(killed), "--device", "cuda",
           "--no-progress", "--resume-every", "0.05"]
    def ready():
        epochs = [e for e, _ in resume_files(killed)] if (killed / "resume").is_dir() else []
        return bool(epochs) and max(epochs) >= 100

    sigkill_when(cmd, env, ready, timeout=180, poll=0.005)
    assert run_status(killed) == "started" and not (killed / "model.pt").exists()
    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming 1 run(s) from epoch" in resumed.stderr
    reference = new_run(tmp_path / "reference", cfg)
    train_run(reference, "cuda", progress=False)
    a = load_weights(killed / "model.pt")
    b = load_weights(reference / "model.pt")
    for key in b:
        assert torch.equal(a[key], b[key]), f"{key}: resumed CUDA run differs from the uninterrupted one"


@pytest.mark.parametrize("model, epochs", [("MLP", 100), ("T", 5)])
def test_seed_batched_cuda_equals_cpu(model, epochs):
    """Different devices round differently: float32 tolerance, few epochs (the transformer amplifies
    rounding faster: after 20 epochs seed 2 differed by 4.3e-3 on an H200)."""
    cfgs = [_cfg(seed=s, model=model, num_epochs=epochs) for s in (1, 2, 3, 4)]
    gpu, gpu_logs = fit(cfgs, "cuda")
    cpu, cpu_logs = fit(cfgs, "cpu")
    for seed, g, c in zip((1, 2, 3, 4), _states(gpu), _states(cpu)):
        assert _max_rel(g, c) < 1e-3, f"{model} seed {seed}: CUDA vs CPU differ by {_max_rel(g, c):.3g}"
    for g_log, c_log in zip(gpu_logs, cpu_logs):
        assert [r["epoch"] for r in g_log] == [r["epoch"] for r in c_log]
        assert g_log[-1]["train_loss"] == pytest.approx(c_log[-1]["train_loss"], rel=1e-3, abs=1e-6)


@pytest.mark.parametrize("spec, model", [("D7", "MLP"), ("S4", "T")])
def test_checkpoint_metrics_on_cuda_equal_cpu(spec, model):
    """The metrics are computed in float64 on either device: they agree to rounding."""
    (trained,), _ = fit(_cfg(group=spec, model=model, num_epochs=100, device="cpu"), "cpu")
    split = make_split(spec, 0.6, 1)
    cpu = checkpoint_metrics(trained, IrrepBases.for_group(spec, "cpu"), train_pairs=split.train)
    cuda_model = trained.to("cuda")
    gpu = checkpoint_metrics(cuda_model, IrrepBases.for_group(spec, "cuda"), train_pairs=split.train.to("cuda"))
    assert list(gpu) == list(cpu)
    for key, value in cpu.items():
        assert gpu[key] == pytest.approx(value, rel=1e-6, abs=1e-9), f"{key}: CUDA {gpu[key]!r}, CPU {value!r}"


def test_triton_cross_entropy_matches_the_reference_on_cuda():
    """The fused float64 cross-entropy (Triton) on CUDA against the PyTorch reference on the same
    device: it must pass its self-check (else training silently uses the reference), and agree to
    float64 rounding in the loss and float32 rounding in the gradient on an S5-sized batch."""
    pytest.importorskip("triton")
    from rep_theory.training.losses import reference_sum_cross_entropy64, sum_cross_entropy64
    from rep_theory.training.losses_triton import triton_ready

    dev = torch.device("cuda")
    assert triton_ready(dev, reference_sum_cross_entropy64)
    gen = torch.Generator().manual_seed(0)
    logits = (torch.randn(4, 5760, 120, generator=gen) * 20).to(dev).requires_grad_()
    labels = torch.randint(0, 120, (4, 5760), generator=gen).to(dev)
    got = sum_cross_entropy64(logits, labels, 1 / 5760)
    (g_got,) = torch.autograd.grad(got, logits)
    ref = reference_sum_cross_entropy64(logits, labels, 1 / 5760)
    (g_ref,) = torch.autograd.grad(ref, logits)
    assert got.dtype == torch.float64
    assert float(got) == pytest.approx(float(ref), rel=1e-13)
    assert float((g_got - g_ref).abs().max()) <= 1e-7 * float(g_ref.abs().max()) + 1e-15


def test_split_weight_gradient_on_cuda_equals_one_product():
    """CUDA's split-K weight gradient (an S6-sized unembedding block) against one cuBLAS product:
    float32 rounding, and the same bits on a second call (a fixed summation order)."""
    from rep_theory.training.batched import _SPLIT_ROWS, _weight_grad

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 23301, 128, generator=gen).relu().cuda()
    grad = (torch.randn(4, 23301, 720, generator=gen) * 1e-4).cuda()
    got = _weight_grad(x, grad, _SPLIT_ROWS)
    want = _weight_grad(x.double(), grad.double(), 0)
    assert float((got.double() - want).abs().max()) <= 1e-5 * float(want.abs().max())
    assert torch.equal(got, _weight_grad(x, grad, _SPLIT_ROWS))


def test_evaluate_run_on_cuda_equals_cpu(tmp_path):
    """``rep-theory eval`` on CUDA, several checkpoints per pass, against the CPU: every metric of
    every checkpoint agrees to float64 rounding (an MLP's metrics are computed in float64 from its
    weights, ``METRICS_REVISION`` 2; before, float32 rounding differed by ~1e-7 between devices)."""
    import math
    import shutil

    from rep_theory.analysis.evaluate import evaluate_run
    from rep_theory.training.rundir import read_metrics_csv

    run = new_run(tmp_path / "cpu", _cfg(group="D7", num_epochs=60, log_every=30, device="cpu"))
    train_run(run, "cpu", progress=False)
    cuda_run = tmp_path / "cuda"
    shutil.copytree(run, cuda_run)
    evaluate_run(run, progress=False, device="cpu")
    evaluate_run(cuda_run, progress=False, device="cuda")
    cpu_rows, gpu_rows = read_metrics_csv(run / "metrics.csv"), read_metrics_csv(cuda_run / "metrics.csv")
    assert len(cpu_rows) == len(gpu_rows) > 50
    for c, g in zip(cpu_rows, gpu_rows):
        assert c.keys() == g.keys()
        for key, value in c.items():
            if math.isfinite(value):
                assert g[key] == pytest.approx(value, rel=1e-9, abs=1e-12), f"epoch {c['epoch']} {key}"


def test_triton_row_gathers_on_cuda_match_the_pytorch_path():
    """The Triton pair gather and its ordered scatter (``gather_triton``) on an S6-sized MLP layer (4 seeds,
    720 elements, 129,600 pairs, 128 neurons): they pass their self-check (else training silently uses the
    PyTorch path), the hidden layer and both gradients have the PyTorch path's bits (sums of ~180 rows in
    the same order), and a second call gives the same bits."""
    pytest.importorskip("triton")
    from rep_theory.training import batched
    from rep_theory.training.gather_triton import pair_hidden

    dev = torch.device("cuda")
    gen = torch.Generator().manual_seed(0)
    fx, fy = (torch.randn(4 * 720, 128, generator=gen).cuda().requires_grad_() for _ in range(2))
    assert batched._triton_gathers(dev, fx)
    ia, ib = (torch.randint(0, 4 * 720, (4 * 129600,), generator=gen).cuda() for _ in range(2))
    w = torch.randn(4 * 129600, 128, generator=gen).cuda()
    runs = []
    for fn in (pair_hidden, pair_hidden, batched._PairHidden.apply):
        h = fn(fx, fy, ia, ib)
        runs.append((h, *torch.autograd.grad((h * w).sum(), (fx, fy))))
    (h1, gx1, gy1), (h2, gx2, gy2), (h_ref, gx_ref, gy_ref) = runs
    assert torch.equal(h1, h_ref)
    assert torch.equal(gx1, gx2) and torch.equal(gy1, gy2)
    # index_put_(accumulate=True) sums each index's rows in their stable-sorted order, as the kernel does:
    # equal bits (measured on an H200 with torch 2.11); a torch whose scatter orders otherwise fails here
    assert torch.equal(gx1, gx_ref) and torch.equal(gy1, gy_ref)
