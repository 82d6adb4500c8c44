"""The demo's named presets, without torch (the command line's ``--help`` lists them); used and
re-exported by :mod:`rep_theory.pipeline.demo` (see its docstring for what each is for)."""

from __future__ import annotations

import dataclasses

__all__ = ["DemoPreset", "PRESETS"]


@dataclasses.dataclass(frozen=True)
class DemoPreset:
    """A demo configuration: the group, and the RunConfig fields that differ from the paper's."""

    group: str
    num_epochs: int
    frac_train: float
    lr: float = 1e-3
    seed: int = 1
    embed_dim: int = 256
    hidden_dim: int = 128
    log_every: int = 20
    num_checkpoints: int = 200
    description: str = ""


PRESETS: dict[str, DemoPreset] = {
    "default": DemoPreset("S4", num_epochs=3000, frac_train=0.7, lr=1e-2,
                          description="S4, paper MLP, lr 1e-2, 3000 epochs (15-20 s on 2 idle CPU cores)"),
    "quick": DemoPreset("S4", num_epochs=500, frac_train=0.8, lr=3e-2, embed_dim=128,
                        hidden_dim=64, log_every=10,
                        description="S4, half-width MLP, lr 3e-2, 500 epochs (tests, notebooks on CPU)"),
    "paper-s5": DemoPreset("S5", num_epochs=250_000, frac_train=0.4, lr=1e-3, log_every=1000,
                           num_checkpoints=1000, description="the paper's S5 MLP (250k epochs; use a GPU)"),
}
"""Named demo presets (see the module docstring)."""
