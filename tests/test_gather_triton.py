"""The Triton row gathers (rep_theory.training.gather_triton) against the PyTorch path, bit for bit.

On the CPU the kernels run through Triton's interpreter (``TRITON_INTERPRET=1``, set before the kernels
are defined, hence a subprocess), where the PyTorch path is ``index_select`` and the sequential
``index_add_``; on CUDA ``tests/test_gpu.py`` compares them with ``index_put_(accumulate=True)``.
"""

from __future__ import annotations

import pytest
from helpers import run_interpreted

triton = pytest.importorskip("triton", reason="Triton is in the test extra; CUDA builds of torch ship it")

SCRIPT = r"""
import json, torch
from rep_theory.training import batched
from rep_theory.training.gather_triton import pair_hidden, gather_rows, gather_ready

def same(x, y):
    return bool(torch.equal(x, y))

out = {}
# (table rows, width, pairs, highest index used): S5-like; an odd width; one row with 3 loads' worth of sources
for name, rows, width, n, hi in [("s5", 240, 128, 700, 240), ("odd", 9, 13, 61, 7), ("crowded", 6, 20, 150, 2)]:
    gen = torch.Generator().manual_seed(rows)
    fx = torch.randn(rows, width, generator=gen, dtype=torch.float64).float().requires_grad_()
    fy = torch.randn(rows, width, generator=gen).requires_grad_()
    ia = torch.randint(0, hi, (n,), generator=gen)
    ib = torch.randint(0, hi, (n,), generator=gen)
    with torch.no_grad():                      # some pre-activations exactly 0: the ReLU's edge
        fy[ib[:5]] = -fx[ia[:5]]
    w = torch.randn(n, width, generator=gen)
    res = {}
    for label, fn in (("triton", pair_hidden), ("torch", batched._PairHidden.apply)):
        h = fn(fx, fy, ia, ib)
        res[label] = (h, *torch.autograd.grad((h * w).sum(), (fx, fy)))
    zero_rows = sorted(set(range(rows)) - set(ia.tolist()))
    out[name] = {"pair_equal": [same(x, y) for x, y in zip(res["triton"], res["torch"])],
                 "relu_zeros": int((res["torch"][0] == 0).sum()),
                 "absent_rows_zero": bool((res["triton"][1][zero_rows] == 0).all()) if zero_rows else None,
                 "max_sources": int(torch.bincount(ia).max())}
    table = torch.randn(rows, width, generator=gen).requires_grad_()
    wt = torch.randn(n, width, generator=gen)
    got = [gather_rows(table, ia)]
    got.append(*torch.autograd.grad((got[0] * wt).sum(), table))
    ref = [batched._GatherRows.apply(table, ia)]
    ref.append(*torch.autograd.grad((ref[0] * wt).sum(), table))
    out[name]["gather_equal"] = [same(x, y) for x, y in zip(got, ref)]

# a whole training step of the seed-batched MLP and the transformer through the kernels, against the PyTorch path
from rep_theory.training.batched import make_batched_model
steps = {}
for model in ("OneLayerMLP", "Transformer", "WuMLP"):
    gen = torch.Generator().manual_seed(3)
    a = torch.randint(0, 12, (2, 40), generator=gen)
    b = torch.randint(0, 12, (2, 40), generator=gen)
    y = torch.randint(0, 12, (2, 40), generator=gen)
    grads = {}
    for label, use in (("triton", True), ("torch", False)):
        batched._triton_gathers = (lambda device, table, use=use: use)
        m = make_batched_model(model, 12, seeds=[0, 1], embed_dim=16, hidden_dim=8)
        loss = torch.nn.functional.cross_entropy(m(a, b).reshape(-1, 12), y.reshape(-1))
        grads[label] = [loss.detach()] + list(torch.autograd.grad(loss, [p for p in m.parameters() if p.requires_grad]))
    steps[model] = all(same(x, y) for x, y in zip(grads["triton"], grads["torch"]))
out["steps"] = steps
# a strided index vector (a column of a [n, 2] tensor): the kernels read indices contiguously
gen = torch.Generator().manual_seed(5)
fx, fy = torch.randn(9, 6, generator=gen), torch.randn(9, 6, generator=gen)
both = torch.randint(0, 9, (40, 2), generator=gen)
out["strided_equal"] = same(pair_hidden(fx, fy, both[:, 0], both[:, 1]),
                            batched._PairHidden.apply(fx, fy, both[:, 0].contiguous(), both[:, 1].contiguous()))
out["ready"] = gather_ready(torch.device("cpu"), batched._PairHidden.apply, batched._GatherRows.apply)
from rep_theory.training import triton_check
for mode, ctx in (("no_grad", torch.no_grad), ("inference_mode", torch.inference_mode)):
    triton_check._READY.clear()               # the first call may come from an evaluation without autograd
    with ctx():
        out["ready_" + mode] = gather_ready(torch.device("cpu"), batched._PairHidden.apply, batched._GatherRows.apply)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def interpreted():
    return run_interpreted(SCRIPT)


def test_pair_hidden_and_its_gradients_equal_the_pytorch_path_bit_for_bit(interpreted):
    for name in ("s5", "odd", "crowded"):
        r = interpreted[name]
        assert r["pair_equal"] == [True, True, True], name      # hidden, d flat_x, d flat_y
        assert r["relu_zeros"] > 0, name                        # the mask was exercised
    assert interpreted["crowded"]["max_sources"] > 2 * 16       # a table row took several loads of sources
    assert interpreted["s5"]["absent_rows_zero"] is True        # rows no pair uses get a zero gradient


def test_strided_indices_are_read_as_their_values(interpreted):
    assert interpreted["strided_equal"] is True


def test_gather_rows_and_its_gradient_equal_the_pytorch_path_bit_for_bit(interpreted):
    for name in ("s5", "odd", "crowded"):
        assert interpreted[name]["gather_equal"] == [True, True], name


def test_training_steps_through_the_kernels_give_the_same_bits(interpreted):
    assert interpreted["steps"] == {"OneLayerMLP": True, "Transformer": True, "WuMLP": True}


def test_self_check_passes_and_can_be_turned_off(interpreted, monkeypatch):
    assert interpreted["ready"] is True
    assert interpreted["ready_no_grad"] is True and interpreted["ready_inference_mode"] is True
    import torch
    from rep_theory.training import batched, gather_triton, triton_check

    monkeypatch.setenv("REP_THEORY_TRITON", "0")
    monkeypatch.setattr(triton_check, "_READY", {})
    assert gather_triton.gather_ready(torch.device("cpu"), batched._PairHidden.apply, batched._GatherRows.apply) is False


def test_inputs_are_checked_before_any_kernel_runs():
    import torch
    from rep_theory.training import gather_triton

    x, y = torch.zeros(5, 4), torch.zeros(5, 3)
    i = torch.zeros(7, dtype=torch.int64)
    with pytest.raises(ValueError, match="one width"):
        gather_triton.pair_hidden(x, y, i, i)
    with pytest.raises(ValueError, match="one length"):
        gather_triton.pair_hidden(x, x, i, i[:3])
    with pytest.raises(ValueError, match="integer"):
        gather_triton.gather_rows(x, i.float())
    # widths and dtypes the kernels take: float32/64, 2 to MAX_WIDTH columns; batched falls back otherwise
    assert [gather_triton.supports(torch.zeros(3, w)) for w in (1, 2, 128, gather_triton.MAX_WIDTH,
                                                               gather_triton.MAX_WIDTH + 1)] == [False, True, True, True, False]
    assert not gather_triton.supports(torch.zeros(3, 8, dtype=torch.float16))
