"""Import a run of the paper's code release into a run directory of this package.

The paper's run directory holds ``cfg.json`` (loads as a :class:`rep_theory.training.config.RunConfig` as is)
and ``model.pt`` (a plain state dict, often of CUDA tensors).  For S5, S6 and A5 its weights are
indexed in the paper's element order; :func:`import_paper_run` reorders every element-indexed axis
into the package's order (:mod:`rep_theory.algebra.paper_order`):

=========================================  ======================================
weights (paper names = package names)       element axis
=========================================  ======================================
``W_x``, ``W_y`` (MLP, bilinear)           rows
``W_U`` (MLP, bilinear)                    columns
``embed.W_E`` (Transformer)                first ``n`` rows (row ``n`` is "=")
``unembed.W_U``, ``unembed.b_U``           last axis
=========================================  ======================================

The split stays the paper's: the written ``cfg.json`` has ``paper_order: true``, so
:func:`rep_theory.training.data.make_split` draws the permutation over the paper's element order and maps
it to package pairs.  Entries of the paper's state dict that the package model lacks (the
Transformer's stale ``x_embed``/``y_embed`` copies of ``W_E``) are dropped and logged.

>>> import_paper_run("paper_runs/S5_MLP_seed1", "batch_experiments/S5_MLP_seed1")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from rep_theory.algebra.groups import Group, get_group
from rep_theory.algebra.paper_order import package_to_paper
from rep_theory.io import atomic_write_json, is_checked_file, save_checked
from rep_theory.training.config import load_config
from rep_theory.training.models import make_model

__all__ = ["import_paper_run", "reorder_paper_state_dict", "ELEMENT_ROW_KEYS", "ELEMENT_LAST_AXIS_KEYS"]

log = logging.getLogger(__name__)

ELEMENT_ROW_KEYS = ("W_x", "W_y", "embed.W_E")
"""State-dict entries whose first axis (its first ``n`` entries) is indexed by group element."""

ELEMENT_LAST_AXIS_KEYS = ("W_U", "unembed.W_U", "unembed.b_U")
"""State-dict entries whose last axis is indexed by group element (output class)."""


def reorder_paper_state_dict(state: dict[str, torch.Tensor], group: Group | str) -> dict[str, torch.Tensor]:
    """A copy of ``state`` with every element-indexed axis moved from the paper's to the package's order."""
    spec = str(group)
    inv = package_to_paper(group)            # package element i is the paper's element inv[i]
    n = len(inv)
    out = {}
    for key, value in state.items():
        value = value.detach().cpu().clone()
        if key in ELEMENT_ROW_KEYS:
            if value.shape[0] < n:
                raise ValueError(f"paper weight {key} has {value.shape[0]} rows; expected at least n = {n} ({spec})")
            value[:n] = value[:n][inv]
        elif key in ELEMENT_LAST_AXIS_KEYS:
            if value.shape[-1] != n:
                raise ValueError(f"paper weight {key} has last axis {value.shape[-1]}; expected n = {n} ({spec})")
            value = value[..., inv].contiguous()
        out[key] = value
    return out


def import_paper_run(paper_run_dir: str | Path, out_run_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Turn the paper's run directory into a package run directory; returns ``out_run_dir``.

    Writes ``cfg.json`` (the paper's config, ``paper_order: true``) and ``model.pt`` (checked file,
    package element order).  Refuses to replace an existing ``model.pt`` unless ``overwrite``.
    """
    src, dst = Path(paper_run_dir), Path(out_run_dir)
    for name in ("cfg.json", "model.pt"):
        if not (src / name).is_file():
            raise FileNotFoundError(f"{src / name} not found: {src} is not a paper run directory")
    if (dst / "model.pt").exists() and not overwrite:
        raise FileExistsError(f"{dst / 'model.pt'} exists; pass overwrite=True (--overwrite) to replace it")
    cfg = load_config(src).replace(paper_order=True)
    try:
        paper_state = torch.load(src / "model.pt", map_location="cpu", weights_only=True)
    except Exception as err:  # a checked file of this package, a truncated or foreign file: pickle, zip, index errors
        hint = " (it is a rep-theory checked file: is the folder already a rep-theory run?)" if is_checked_file(
            src / "model.pt") else ""
        raise ValueError(f"{src / 'model.pt'} is not a checkpoint of the paper's code{hint}: "
                         f"{type(err).__name__}: {err}") from None
    if not isinstance(paper_state, dict):
        raise ValueError(f"{src / 'model.pt'}: expected a state dict, got {type(paper_state).__name__}")
    G = get_group(cfg.spec)
    state = reorder_paper_state_dict(paper_state, G)

    model = make_model(cfg.model, G.order, embed_dim=cfg.embed_dim, hidden_dim=cfg.hidden_dim)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    if missing:
        raise ValueError(f"{src / 'model.pt'} lacks the weights {missing} of a {cfg.model} on {cfg.spec}")
    dropped = sorted(set(state) - set(expected))
    if dropped:
        log.info("%s: dropping paper state-dict entries the package model does not have: %s", src.name, dropped)
    state = {k: state[k].to(expected[k].dtype) for k in expected}
    for k, v in state.items():
        if v.shape != expected[k].shape:
            raise ValueError(f"paper weight {k} has shape {tuple(v.shape)}; the package {cfg.model} on "
                             f"{cfg.spec} expects {tuple(expected[k].shape)}")
    model.load_state_dict(state)  # proves the state dict loads before anything is written
    dst.mkdir(parents=True, exist_ok=True)
    atomic_write_json(dst / "cfg.json", cfg.to_dict())
    save_checked(dst / "model.pt", state)
    log.info("imported %s -> %s (%s %s, seed %d)", src, dst, cfg.spec, cfg.model, cfg.seed)
    return dst
