"""Models: the paper's weights load and are exact, the paper's init, hooks, batched == single."""

import json
import math

import pytest
import torch

from rep_theory.training.data import all_pairs, make_split, pair_labels
from rep_theory.algebra.groups import get_group
from rep_theory.training.hooks import HookPoint
from rep_theory.training.batched import BATCHED_MODELS, BatchedOneLayerMLP, BatchedTransformer, make_batched_model
from rep_theory.training.models import BilinearNet, OneLayerMLP, Transformer, make_model
from rep_theory.algebra.paper_order import package_to_paper, paper_to_package

pytestmark = pytest.mark.usefixtures("one_thread")


def _paper(reference_dir, run):
    folder = reference_dir / "paper_models" / run
    return torch.load(folder / "model.pt", map_location="cpu"), json.loads((folder / "summary_metrics.json").read_text())


def _accuracy(model, spec):
    logits = model.logits_all_pairs()
    return (logits.argmax(-1) == pair_labels(spec)).to(torch.float64).mean().item()


# --- the paper's trained weights ------------------------------------------------------------------
@pytest.mark.parametrize("run, spec", [("C113_MLP_seed1", "C113"), ("D59_MLP_seed1", "D59")])
def test_paper_mlp_loads_with_full_accuracy(reference_dir, run, spec):
    sd, _ = _paper(reference_dir, run)
    model = OneLayerMLP(get_group(spec).order, 256, 128)
    model.load_state_dict(sd)  # strict: the state-dict keys are exactly the paper's
    assert set(model.state_dict()) == {"W_x", "W_y", "W", "W_U"}
    assert _accuracy(model, spec) == 1.0


def test_paper_s5_mlp_loads_through_element_order(reference_dir):
    sd, _ = _paper(reference_dir, "S5_MLP_seed1")
    to_paper = package_to_paper("S5")
    model = OneLayerMLP(120, 256, 128)
    model.load_state_dict({"W_x": sd["W_x"][to_paper], "W_y": sd["W_y"][to_paper], "W": sd["W"],
                           "W_U": sd["W_U"][:, to_paper]})
    assert _accuracy(model, "S5") == 1.0
    raw = OneLayerMLP(120, 256, 128)
    raw.load_state_dict(sd)  # the paper's element order read as the package's: wrong
    assert _accuracy(raw, "S5") < 0.1


def test_paper_transformer_loads_with_full_accuracy_and_losses(reference_dir):
    sd, summary = _paper(reference_dir, "C113_T_seed1")
    assert sd["unembed.W_U"].shape == (128, 113)  # logits over the n elements, not n + 1 tokens
    model = Transformer(113)
    model.load_state_dict(sd)  # tolerates x_embed, y_embed, blocks.0.attn.mask, blocks.0.attn.IGNORE
    assert _accuracy(model, "C113") == 1.0
    split = make_split("C113", 0.3, seed=1)
    logits = model.logits_all_pairs().to(torch.float64)
    lp = logits.log_softmax(-1).gather(1, split.labels[:, None])[:, 0]
    assert -lp[split.train].mean().item() == pytest.approx(summary["train_loss"], rel=1e-5)
    assert -lp[split.test].mean().item() == pytest.approx(summary["test_loss"], rel=1e-5)


def test_transformer_parameter_names_and_shapes():
    m = Transformer(11)
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes == {
        "embed.W_E": (12, 128), "pos_embed.W_pos": (3, 128),
        "blocks.0.attn.W_Q": (4, 128, 32), "blocks.0.attn.W_K": (4, 128, 32), "blocks.0.attn.W_V": (4, 128, 32),
        "blocks.0.attn.W_O": (4, 32, 128), "blocks.0.attn.b_Q": (4, 32), "blocks.0.attn.b_K": (4, 32),
        "blocks.0.attn.b_V": (4, 32), "blocks.0.attn.b_O": (128,),
        "blocks.0.mlp.W_in": (128, 512), "blocks.0.mlp.b_in": (512,), "blocks.0.mlp.W_out": (512, 128),
        "blocks.0.mlp.b_out": (128,), "unembed.W_U": (128, 11), "unembed.b_U": (11,)}
    for name, p in m.named_parameters():
        assert p.requires_grad == ("W_" in name), name
        if "b_" in name:
            assert torch.count_nonzero(p) == 0


# --- initialisation -----------------------------------------------------------------------------------
def test_mlp_and_bilinear_init_equal_paper_recipe():
    n, e, h, seed = 9, 12, 10, 4
    torch.manual_seed(999)
    state = torch.get_rng_state()
    mlp = OneLayerMLP(n, e, h, seed=seed)
    bil = BilinearNet(n, e, seed=seed)
    assert torch.equal(torch.get_rng_state(), state)  # local generator: global RNG untouched
    torch.manual_seed(seed)
    ref = [torch.randn(n, e) / math.sqrt(e), torch.randn(n, e) / math.sqrt(e),
           torch.randn(2 * e, h) / math.sqrt(2 * e), torch.randn(h, n) / math.sqrt(h)]
    for got, want in zip([mlp.W_x, mlp.W_y, mlp.W, mlp.W_U], ref):
        assert torch.equal(got.detach(), want)
    torch.manual_seed(seed)
    ref = [torch.randn(n, e) / math.sqrt(e), torch.randn(n, e) / math.sqrt(e), torch.randn(e, n) / math.sqrt(e)]
    for got, want in zip([bil.W_x, bil.W_y, bil.W_U], ref):
        assert torch.equal(got.detach(), want)
    assert not torch.equal(OneLayerMLP(n, e, h, seed=seed + 1).W_x, mlp.W_x)


def test_transformer_init_equals_transformerlens_recipe():
    seed = 3
    model = Transformer(7, seed=seed)
    # TransformerLens init_weights: manual_seed(seed), then normal_(std=0.8/sqrt(d_model)) on every
    # W_* parameter in named_parameters order; biases zero.
    torch.manual_seed(seed)
    for name, p in model.named_parameters():
        if "W_" in name:
            want = torch.empty_like(p)
            torch.nn.init.normal_(want, std=0.8 / math.sqrt(128))
            assert torch.equal(p.detach(), want), name
        else:
            assert torch.count_nonzero(p) == 0, name


@pytest.mark.parametrize("kind", ["OneLayerMLP", "BilinearNet", "Transformer"])
def test_element_perm_init_is_paper_init_reordered(kind):
    perm = paper_to_package("A5")
    to_paper = package_to_paper("A5")
    plain = make_model(kind, 60, seed=2, embed_dim=8, hidden_dim=8).state_dict()
    moved = make_model(kind, 60, seed=2, embed_dim=8, hidden_dim=8, element_perm=perm).state_dict()
    for key, value in plain.items():
        if key in ("W_x", "W_y"):
            assert torch.equal(moved[key], value[to_paper])
            assert torch.equal(moved[key][perm], value)
        elif key in ("W_U", "unembed.W_U"):
            assert torch.equal(moved[key], value[:, to_paper])
        elif key == "embed.W_E":
            assert torch.equal(moved[key][:60], value[:60][to_paper]) and torch.equal(moved[key][60], value[60])
        else:
            assert torch.equal(moved[key], value), key


# --- the interface the metrics read ---------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["OneLayerMLP", "BilinearNet", "Transformer"])
def test_metric_interface_consistency(kind):
    n = 6
    model = make_model(kind, n, seed=1, embed_dim=8, hidden_dim=10)
    width = {"OneLayerMLP": 10, "BilinearNet": 8, "Transformer": 512}[kind]
    a, b = all_pairs(n)
    logits = model(a, b)
    assert model.n == n
    assert model.logits_all_pairs().shape == (n * n, n)
    assert torch.allclose(model.logits_all_pairs(chunk_size=7), logits, atol=1e-6)
    hidden = model.hidden_all_pairs()
    assert hidden.shape == (n * n, width)
    _, cache = model.run_with_cache(a, b, names_filter=model.hidden_hook_name)
    h = cache[model.hidden_hook_name]
    assert torch.equal(hidden, h[:, -1] if h.ndim == 3 else h)
    assert torch.allclose(model.hidden_all_pairs(chunk_size=5), hidden, atol=1e-6)
    pairs = torch.arange(n * n)
    assert torch.allclose(model.logits_from_hidden(hidden, pairs), logits, atol=1e-5)
    # Replacing the hidden layer changes the logits the way the hook does.
    with model.hooks(fwd_hooks=[(model.hidden_hook_name, lambda act, hook: act * 0.5)]):
        halved = model(a, b)
    assert torch.allclose(model.logits_from_hidden(hidden * 0.5, pairs), halved, atol=1e-5)
    embed_width = 128 if kind == "Transformer" else width  # transformer: W_E rows live in d_model
    assert model.embedding_left().shape == model.embedding_right().shape == (n, embed_width)
    assert model.unembedding().shape == (n, width)
    if kind == "OneLayerMLP":
        assert torch.allclose(model.embedding_left(), model.W_x @ model.W[:8])
        assert torch.allclose(model.embedding_right(), model.W_y @ model.W[8:])
        assert torch.equal(model.unembedding(), model.W_U.T)
        # The hidden layer is the sum of the two total embeddings, rectified.
        assert torch.allclose(hidden, torch.relu(model.embedding_left()[a] + model.embedding_right()[b]), atol=1e-6)
    if kind == "Transformer":
        assert torch.equal(model.embedding_left(), model.embed.W_E[:n])
        assert model.unembedding().shape == (n, 512)
        assert torch.allclose(model.unembedding(), (model.blocks[0].mlp.W_out @ model.unembed.W_U).T)


def test_transformer_attention_is_causal():
    model = Transformer(5, seed=0)
    a, b = all_pairs(5)
    _, cache = model.run_with_cache(a, b, names_filter=lambda name: name.endswith("hook_pattern"))
    pattern = cache["blocks.0.attn.hook_pattern"]  # [batch, head, query, key]
    assert pattern.shape == (25, 4, 3, 3)
    assert torch.allclose(pattern.sum(-1), torch.ones(25, 4, 3))
    assert torch.all(pattern[..., 0, 1:] < 1e-30) and torch.all(pattern[..., 1, 2] < 1e-30)
    # Logits at the last position depend on both inputs.
    assert not torch.allclose(model(a[:1], b[:1]), model(a[:1], b[1:2]))


# --- hooks ----------------------------------------------------------------------------------------------------
def test_hook_names_are_module_paths():
    mlp = OneLayerMLP(4, 4, 4)
    assert mlp.hook_names() == ["embed_stack", "hidden"]
    assert mlp.hidden.name == "hidden" and isinstance(mlp.hidden, HookPoint)
    t = Transformer(4)
    for name in ["hook_embed", "blocks.0.hook_resid_mid", "blocks.0.mlp.hook_post", "blocks.0.attn.hook_pattern"]:
        assert name in t.hook_names()
        assert t.hook_dict[name].name == name
    with pytest.raises(KeyError, match="no_such_hook"):
        with mlp.hooks(fwd_hooks=[("no_such_hook", lambda x, hook: x)]):
            pass


def test_hooks_are_removed_on_exit_and_on_error():
    model = OneLayerMLP(5, 6, 7, seed=0)
    a, b = all_pairs(5)
    clean = model(a, b)
    zero = lambda act, hook: torch.zeros_like(act)  # noqa: E731
    with model.hooks(fwd_hooks=[("hidden", zero)]):
        assert torch.count_nonzero(model(a, b)) == 0
        with model.hooks(fwd_hooks=[("embed_stack", lambda act, hook: act)]):
            assert torch.count_nonzero(model(a, b)) == 0
        assert len(model.hidden._forward_hooks) == 1 and len(model.embed_stack._forward_hooks) == 0
    assert torch.equal(model(a, b), clean)
    with pytest.raises(RuntimeError):
        with model.hooks(fwd_hooks=[("hidden", zero)]):
            raise RuntimeError("boom")
    assert len(model.hidden._forward_hooks) == 0
    assert torch.equal(model.run_with_hooks(a, b, fwd_hooks=[("hidden", zero)]), torch.zeros_like(clean))
    assert torch.equal(model(a, b), clean)


def test_run_with_cache_filters():
    model = Transformer(4, seed=0)
    a, b = all_pairs(4)
    logits, cache = model.run_with_cache(a, b)
    assert set(cache) == set(model.hook_names())
    assert torch.equal(logits, model(a, b))
    assert not any(v.requires_grad for v in cache.values())
    _, one = model.run_with_cache(a, b, names_filter="blocks.0.hook_resid_mid")
    assert list(one) == ["blocks.0.hook_resid_mid"] and one["blocks.0.hook_resid_mid"].shape == (16, 3, 128)
    _, two = model.run_with_cache(a, b, names_filter=["hook_embed", "blocks.0.mlp.hook_pre"])
    assert set(two) == {"hook_embed", "blocks.0.mlp.hook_pre"}
    assert all(len(hp._forward_hooks) == 0 for hp in model.hook_dict.values())


# --- seed-batched models ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["OneLayerMLP", "BilinearNet", "Transformer"])
def test_batched_equals_single(kind):
    n, seeds = 7, [3, 1, 4]
    batched = make_batched_model(kind, n, seeds=seeds, embed_dim=8, hidden_dim=12)
    assert isinstance(batched, BATCHED_MODELS[kind]) and batched.n_seeds == 3
    singles = [make_model(kind, n, seed=s, embed_dim=8, hidden_dim=12) for s in seeds]
    splits = [make_split("C7", 0.5, s) for s in seeds]
    a = torch.stack([s.a_train for s in splits])
    b = torch.stack([s.b_train for s in splits])
    out = batched(a, b)
    all_logits = batched.logits_all_pairs()
    for i, (m, s) in enumerate(zip(singles, splits)):
        assert batched.single_state_dict(i).keys() == m.state_dict().keys()
        for key, value in m.state_dict().items():
            assert torch.equal(batched.single_state_dict(i)[key], value), key
        assert torch.allclose(out[i], m(s.a_train, s.b_train), atol=1e-5, rtol=1e-5)
        assert torch.allclose(all_logits[i], m.logits_all_pairs(), atol=1e-5, rtol=1e-5)
        back = batched.to_single(i)
        assert type(back) is type(m)
        assert torch.equal(back(s.a_train, s.b_train), m(s.a_train, s.b_train))


def test_batched_round_trip_through_single_state_dicts():
    batched = BatchedOneLayerMLP(5, 4, 6, seeds=[1, 2])
    other = OneLayerMLP(5, 4, 6, seed=9)
    batched.load_single_state_dict(1, other.state_dict())
    assert torch.equal(batched.W_x[1], other.W_x) and torch.equal(batched.W_x[0], OneLayerMLP(5, 4, 6, seed=1).W_x)
    with pytest.raises(KeyError, match="W_y"):
        batched.load_single_state_dict(0, {"W_x": other.W_x, "W": other.W, "W_U": other.W_U})
    with pytest.raises(ValueError, match="shape"):
        batched.load_single_state_dict(0, OneLayerMLP(6, 4, 6).state_dict())
    stacked = BatchedOneLayerMLP.from_single([other, OneLayerMLP(5, 4, 6, seed=1)], seeds=[9, 1])
    assert torch.equal(stacked.W_U[0], other.W_U)


def test_batched_transformer_gradients_equal_single_in_float64():
    # The batched transformer evaluates only the last position from per-element tables: an exact
    # reparametrisation, so in float64 loss and gradients agree with the full forward to rounding.
    split = make_split("C7", 0.6, seed=1)
    single = Transformer(7, seed=1).double()
    batched = BatchedTransformer.from_single([single], seeds=[1]).double()
    ls = torch.nn.functional.cross_entropy(single(split.a_train, split.b_train), split.y_train)
    lb = torch.nn.functional.cross_entropy(batched(split.a_train[None], split.b_train[None])[0], split.y_train)
    ls.backward()
    lb.backward()
    assert lb.item() == pytest.approx(ls.item(), rel=1e-12)
    params = dict(single.named_parameters())
    for attr, key in batched._KEYS.items():
        p = getattr(batched, attr)
        if not p.requires_grad:
            assert not params[key].requires_grad
            continue
        assert torch.allclose(p.grad[0], params[key].grad, rtol=1e-9, atol=1e-12), key


def test_row_blocks_prefer_equal_blocks_near_the_size():
    from rep_theory.training.batched import _row_blocks
    assert _row_blocks(129600, 2048) == (64, 2025)   # S6 MLP: 64 equal blocks, no copy
    assert _row_blocks(5760, 2048) == (3, 1920)      # S5 MLP
    assert _row_blocks(4096, 2048) == (2, 2048)
    assert _row_blocks(4099, 2048) == (2, 2048)      # a prime: two blocks and a remainder of 3 rows
    assert _row_blocks(1000, 2048)[0] < 2            # too short to split


@pytest.mark.parametrize("split_rows", [0, 1, 8, 64, 100, 1000])
def test_split_weight_gradient_equals_one_product(split_rows):
    """The CUDA weight gradient as a sum over row blocks (split-K; 453 rows: equal blocks of 1 and
    of 151 for 1 and 100, blocks and a remainder for 8 and 64) equals one batched product: exactly when it does not
    split (0, or fewer than two blocks), to rounding else."""
    from rep_theory.training.batched import _weight_grad
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 453, 16, generator=gen, dtype=torch.float64)
    grad = torch.randn(3, 453, 24, generator=gen, dtype=torch.float64)
    got = _weight_grad(x, grad, split_rows)
    want = torch.bmm(x.transpose(1, 2), grad)
    assert got.shape == (3, 16, 24)
    if split_rows in (0, 1000):
        assert torch.equal(got, want)
    else:
        assert torch.allclose(got, want, rtol=1e-12, atol=1e-12)
        assert not torch.allclose(got, torch.bmm(x[:, :-1].transpose(1, 2), grad[:, :-1]), rtol=1e-6)  # every row counts


@pytest.mark.parametrize("kind", ["OneLayerMLP", "Transformer", "WuMLP"])
def test_split_weight_gradients_leave_batched_gradients_unchanged(kind, monkeypatch):
    """The split weight gradients (CUDA's path, forced here on the CPU with small blocks) give every
    parameter of the seed-batched models the same gradient as plain products, in float64."""
    import rep_theory.training.batched as batched_module
    split = make_split("S3", 0.8, seed=1)
    a, b, y = split.a_train[None].expand(2, -1), split.b_train[None].expand(2, -1), split.y_train
    grads = []
    for devices in [(), ("cpu",)]:
        monkeypatch.setattr(batched_module, "_SPLIT_DEVICES", devices)
        monkeypatch.setattr(batched_module, "_SPLIT_ROWS", 4)
        model = make_batched_model(kind, 6, seeds=[1, 2], embed_dim=8, hidden_dim=12).double()
        logits = model(a, b)
        torch.nn.functional.cross_entropy(logits.reshape(-1, 6), y.repeat(2)).backward()
        grads.append({name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) >= 3
    for name, g in grads[0].items():
        assert torch.allclose(grads[1][name], g, rtol=1e-10, atol=1e-13), name


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="embed_dim"):
        OneLayerMLP(5, 0, 4)
    with pytest.raises(ValueError, match="seed"):
        OneLayerMLP(5, 4, 4, seed=-2)
    with pytest.raises(ValueError, match="element_perm"):
        OneLayerMLP(5, 4, 4, element_perm=torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="Perceptron"):
        make_model("Perceptron", 5)
