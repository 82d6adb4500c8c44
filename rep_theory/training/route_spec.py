"""The ``route`` entry of a run config: which gradients go to which hidden units (gradient routing).

Gradient routing (Cloud, Goldman-Wetzler, Wybitul, Miller and Turner, "Gradient Routing: Masking
Gradients to Localize Computation in Neural Networks", 2024, arXiv 2410.04332; reference code
github.com/kxcloud/gradient-routing) masks the backward pass per example so that chosen data update
only chosen units.  This module only *describes* a route (cheap, pure Python: a config is validated
without building a group); :mod:`rep_theory.training.routing` applies it.

A route, as written in ``cfg.json``::

    {"kind": "subgroup", "subgroup": "A4", "units": 16}          # data routing by subgroup
    {"kind": "irrep", "irrep": "standard", "units": 16}          # target routing by irrep

with optional keys (defaults in brackets):

* ``expand`` [0]: extra hidden units added to the model (Expand of Expand-Route-Ablate): the model
  has ``hidden_dim + expand`` hidden units, initialised as a model of that width.
* ``mask`` ["unit"]: ``"unit"`` masks everything a designated unit learns from, its input weights
  (through the hidden activation) *and* its unembedding row; ``"activation"`` is the paper's
  activation-level mask ``m * h + (1 - m) * h.detach()`` on the hidden layer alone (the unembedding
  then learns from every example).
* ``rest`` ["all"] (subgroup routes only): what the pairs outside ``H x H`` update: ``"all"`` (every
  unit, as the paper's Expand-Route-Ablate, where non-forget data is not routed) or ``"others"`` (only
  the non-designated units: a strict split, as the paper's MNIST autoencoder).  With a strict split
  nothing corrects what each group of units adds to the other group's logits; on S4 with ``H = A4``
  the training loss grew to 55 within 200 epochs.
* ``index`` [0] (subgroup routes only): which subgroup of that name (several conjugates share a
  name, e.g. the four ``S3`` of ``S4``): the ``index``-th in :func:`rep_theory.algebra.subgroups.subgroups` order.

The designated units are always the *last* ``units`` hidden units (with ``expand == units`` these
are exactly the added ones).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from rep_theory.checks import check_int

__all__ = ["RouteSpec", "parse_route", "ROUTE_KINDS", "MASK_MODES", "REST_MODES"]

ROUTE_KINDS = ("subgroup", "irrep")
MASK_MODES = ("unit", "activation")
REST_MODES = ("others", "all")
_KEYS = {"subgroup": ("kind", "subgroup", "units", "expand", "mask", "rest", "index"),
         "irrep": ("kind", "irrep", "units", "expand", "mask")}


@dataclasses.dataclass(frozen=True)
class RouteSpec:
    """A validated route (see the module docstring); hashable, so configs stay batchable.

    ``target`` is the subgroup name (``kind == "subgroup"``) or the irrep name (``"irrep"``).
    """

    kind: str
    target: str
    units: int
    expand: int = 0
    mask: str = "unit"
    rest: str = "all"
    index: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The ``cfg.json`` form (every key written, so the file says exactly what was trained)."""
        d: dict[str, Any] = {"kind": self.kind, self.kind: self.target, "units": self.units,
                             "expand": self.expand, "mask": self.mask}
        if self.kind == "subgroup":
            d.update(rest=self.rest, index=self.index)
        return d

    def designated(self, width: int) -> range:
        """The designated hidden units of a model with ``width`` hidden units: the last ``units``."""
        return range(width - self.units, width)


def parse_route(route: Any, *, hidden_dim: int, model: str) -> RouteSpec | None:
    """``None``, a :class:`RouteSpec` or a ``cfg.json`` mapping -> a validated :class:`RouteSpec` (or ``None``).

    Errors name the key, the bad value and what was expected.  Names of subgroups and irreps are
    checked when training starts (that needs the group), not here.
    """
    if route is None:
        return None
    if isinstance(route, RouteSpec):
        route = route.to_dict()
    if not isinstance(route, Mapping):
        raise TypeError(f"route must be null or a mapping such as {{'kind': 'irrep', 'irrep': 'standard', "
                        f"'units': 16}}, got route={route!r}")
    if model != "OneLayerMLP":
        raise ValueError(f"route is only implemented for model='OneLayerMLP', got model={model!r}")
    kind = route.get("kind")
    if kind not in ROUTE_KINDS:
        raise ValueError(f"route.kind must be one of {list(ROUTE_KINDS)}, got route.kind={kind!r}")
    unknown = sorted(set(route) - set(_KEYS[kind]))
    if unknown:
        raise ValueError(f"unknown key(s) in a {kind} route: {unknown}; known keys: {list(_KEYS[kind])}")
    target = route.get(kind)
    if not isinstance(target, str) or not target:
        raise ValueError(f"a {kind} route needs route.{kind}, a {kind} name, got route.{kind}={target!r}")
    expand = check_int("route.expand", route.get("expand", 0), low=0, integral_float=True)
    width = hidden_dim + expand
    if route.get("units") is None:
        raise ValueError(f"route.units (the number of designated hidden units) is required, got route={dict(route)!r}")
    units = check_int("route.units", route["units"], low=1, integral_float=True)
    if units >= width:
        raise ValueError(f"route.units={units} leaves no other unit in a hidden layer of "
                         f"hidden_dim + route.expand = {width} units")
    mask = route.get("mask", "unit")
    if mask not in MASK_MODES:
        raise ValueError(f"route.mask must be one of {list(MASK_MODES)}, got route.mask={mask!r}")
    rest = route.get("rest", "all")
    if rest not in REST_MODES:
        raise ValueError(f"route.rest must be one of {list(REST_MODES)}, got route.rest={rest!r}")
    index = check_int("route.index", route.get("index", 0), low=0, integral_float=True)
    return RouteSpec(kind=kind, target=target, units=units, expand=expand, mask=mask, rest=rest, index=index)
