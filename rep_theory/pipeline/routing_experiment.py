"""The routing experiment's settings, without torch (the command line's ``--help`` shows its
defaults); run by :func:`rep_theory.pipeline.routing.run_routing_experiment`, which re-exports it."""

from __future__ import annotations

import dataclasses

__all__ = ["RoutingExperiment"]


@dataclasses.dataclass(frozen=True)
class RoutingExperiment:
    """One routing experiment.  Defaults: S4, its standard irrep, 8 seeds, a configuration whose
    unrouted MLPs grok S4 on every seed in about 3000 full-batch epochs (a few minutes on 2 CPU cores).

    ``subgroup``: route pairs of that subgroup instead of the irrep's target component (``irrep`` is
    then only the irrep measured).  ``units`` designated units, ``expand`` of them added.
    """

    group: str = "S4"
    irrep: str = "standard"
    subgroup: str | None = None
    seeds: int = 8
    units: int = 24
    expand: int = 24
    mask: str = "unit"
    embed_dim: int = 128
    hidden_dim: int = 64
    num_epochs: int = 3000
    frac_train: float = 0.7
    lr: float = 1e-2
    finetune_steps: int = 1000
    log_every: int = 100

    def route(self) -> dict:
        if self.subgroup is not None:
            return {"kind": "subgroup", "subgroup": self.subgroup, "units": self.units, "expand": self.expand,
                    "mask": self.mask}
        return {"kind": "irrep", "irrep": self.irrep, "units": self.units, "expand": self.expand, "mask": self.mask}
