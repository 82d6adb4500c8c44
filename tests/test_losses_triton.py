"""The Triton float64 cross-entropy (rep_theory.training.losses_triton) against the PyTorch reference.

On the CPU the kernels run through Triton's interpreter (``TRITON_INTERPRET=1``, which must be set
before the kernels are defined, hence a subprocess); on CUDA ``tests/test_gpu.py`` runs them natively.
Triton ships with CUDA builds of torch and is in the ``test`` extra for the CPU build.
"""

from __future__ import annotations

import pytest
from helpers import run_interpreted

triton = pytest.importorskip("triton", reason="Triton is in the test extra; CUDA builds of torch ship it")

SCRIPT = r"""
import json, math, torch
from rep_theory.training.losses import reference_sum_cross_entropy64
from rep_theory.training.losses_triton import triton_sum_cross_entropy64, triton_ready
out = {}
for name, shape, n, scale, spread in [("s5", (2, 50), 120, 1 / 50, 30.0), ("odd", (3, 7), 13, 0.5, 5.0),
                                      ("tiny-loss", (1, 4), 9, 1.0, 1.0), ("s6-width", (1, 6), 720, 2.0, 10.0)]:
    gen = torch.Generator().manual_seed(len(name))
    logits = (torch.randn(*shape, n, generator=gen) * spread).requires_grad_()
    labels = torch.randint(0, n, shape, generator=gen)
    if name == "tiny-loss":  # confident and right: losses around 1e-12, the reason for float64
        with torch.no_grad():
            logits.scatter_(-1, labels[..., None], 30.0)
    got = triton_sum_cross_entropy64(logits, labels, scale)
    (g_got,) = torch.autograd.grad(got, logits)
    ref = reference_sum_cross_entropy64(logits, labels, scale)
    (g_ref,) = torch.autograd.grad(ref, logits)
    out[name] = {"loss": float(got), "ref": float(ref), "dtype": str(got.dtype),
                 "grad_max_abs_diff": float((g_got - g_ref).abs().max()),
                 "grad_max_abs": float(g_ref.abs().max()), "grad_dtype": str(g_got.dtype),
                 "grad_equal_fraction": float((g_got == g_ref).double().mean())}
gen = torch.Generator().manual_seed(7)
logits = torch.randn(2, 5, 120, generator=gen).requires_grad_()
labels = torch.randint(0, 120, (2, 5), generator=gen)
warped = triton_sum_cross_entropy64(logits, labels, 0.5, num_warps=2)
(g_warped,) = torch.autograd.grad(warped, logits)
ref = reference_sum_cross_entropy64(logits, labels, 0.5)
(g_ref,) = torch.autograd.grad(ref, logits)
out["num_warps"] = {"loss": float(warped), "ref": float(ref), "grad_max_abs_diff": float((g_warped - g_ref).abs().max())}
try:
    triton_sum_cross_entropy64(logits, labels, 0.5, num_warps=3)
    out["bad_warps"] = "accepted"
except ValueError as err:
    out["bad_warps"] = str(err)
import os
os.environ["REP_THEORY_TRITON_WARPS"] = "1"
from_env = triton_sum_cross_entropy64(logits, labels, 0.5)
os.environ["REP_THEORY_TRITON_WARPS"] = "five"
try:
    triton_sum_cross_entropy64(logits, labels, 0.5)
    out["bad_env"] = "accepted"
except ValueError as err:
    out["bad_env"] = str(err)
del os.environ["REP_THEORY_TRITON_WARPS"]
out["num_warps"]["from_env"] = float(from_env)
out["ready"] = triton_ready(torch.device("cpu"), reference_sum_cross_entropy64)
from rep_theory.training import triton_check
triton_check._READY.clear()                   # a first call without autograd still self-checks
with torch.inference_mode():
    out["ready_inference_mode"] = triton_ready(torch.device("cpu"), reference_sum_cross_entropy64)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def interpreted():
    return run_interpreted(SCRIPT)


def test_loss_matches_the_reference_to_float64_accuracy(interpreted):
    for name in ("s5", "odd", "tiny-loss", "s6-width"):
        r = interpreted[name]
        assert r["dtype"] == "torch.float64"
        # float64 rounding: the sums of exponentials differ by their order, a few ulp of log(s) per row
        assert r["loss"] == pytest.approx(r["ref"], rel=1e-13, abs=1e-14), name
    tiny = interpreted["tiny-loss"]
    assert 1e-13 < tiny["loss"] < 1e-10                            # float32 would give exactly 0
    assert tiny["loss"] == pytest.approx(tiny["ref"], rel=1e-2)


def test_gradient_matches_the_reference(interpreted):
    for name in ("s5", "odd", "tiny-loss", "s6-width"):
        r = interpreted[name]
        assert r["grad_dtype"] == "torch.float32"
        # float32 rounding of the gradient, plus the float64 rounding of w * (1 - 1/s) at a confident label
        assert r["grad_max_abs_diff"] <= 1e-7 * r["grad_max_abs"] + 1e-15, name
        assert r["grad_equal_fraction"] > 0.95, name               # same operations: nearly all bits equal


def test_self_check_passes_and_can_be_turned_off(interpreted, monkeypatch):
    assert interpreted["ready"] is True
    assert interpreted["ready_inference_mode"] is True
    import torch
    from rep_theory.training import losses_triton
    from rep_theory.training.losses import reference_sum_cross_entropy64

    monkeypatch.setenv("REP_THEORY_TRITON", "0")
    assert losses_triton.triton_ready(torch.device("cpu"), reference_sum_cross_entropy64) is False


def test_warps_per_program_can_be_chosen_and_are_checked(interpreted):
    r = interpreted["num_warps"]
    assert r["loss"] == pytest.approx(r["ref"], rel=1e-13)
    assert r["grad_max_abs_diff"] < 1e-7
    assert "power of two from 1 to 32, got 3" in interpreted["bad_warps"]
    assert r["from_env"] == pytest.approx(r["ref"], rel=1e-13)           # REP_THEORY_TRITON_WARPS=1
    assert "REP_THEORY_TRITON_WARPS must be a power of two from 1 to 32, got 'five'" in interpreted["bad_env"]


def test_default_warps_is_one_warp_per_1024_columns():
    from rep_theory.training.losses_triton import default_warps

    # one warp up to S6's 720 columns (measured faster on an H200), then 32 float64 values per thread at most
    assert [default_warps(n) for n in (2, 120, 720, 1024, 1025, 5040, 40320, 10 ** 6)] == [1, 1, 1, 1, 2, 8, 32, 32]
