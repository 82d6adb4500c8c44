"""Gradient routing for the one-layer MLP: masked backward passes, ablation and fine-tuning.

Gradient routing (Cloud, Goldman-Wetzler, Wybitul, Miller and Turner, "Gradient Routing: Masking
Gradients to Localize Computation in Neural Networks", 2024, arXiv 2410.04332; reference code
github.com/kxcloud/gradient-routing) trains with data-dependent masks on the backward pass,
``m * v + (1 - m) * v.detach()``: the forward value is unchanged and only the units with ``m = 1``
receive the gradient.  Expand, Route, Ablate (ERA, same paper) adds units, routes the chosen data
to them, then deletes them.  The route itself is described by :class:`rep_theory.training.route_spec.RouteSpec`.

Here the hidden layer ``h [seed, batch, m]`` of :class:`rep_theory.training.batched.BatchedOneLayerMLP`
is routed.  With ``D`` the designated units (the last ``units``) and ``g = dL/dlogits``:

* **subgroup** (data routing): a pair ``(a, b)`` with ``a, b`` in ``H`` updates only the units in ``D``;
  any other pair only the units outside ``D`` (``rest="others"``) or every unit (``rest="all"``).
  One mask ``M [seed, batch, m]``, no projection.
* **irrep** (target routing, new here): ``g`` splits over the output element axis into its component
  in the irrep's isotypic subspace, ``g P``, and the rest, ``g (I - P)``, with the isotypic projector
  ``P = (d / (c |G|)) [chi(g^-1 h)]_{g, h}`` (:func:`isotypic_projector`).  The units in ``D`` receive
  only ``g P``, the others only ``g (I - P)``.  Two (mask, projector) terms: ``(1_D, P)``, ``(1 - 1_D, I - P)``.

Each term ``(M, Pi)`` is computed as ``C = h_M @ W_U`` from a masked hidden layer and contributes
``(C - C.detach()) @ Pi``, which is exactly zero forward and ``g Pi`` backward; the logits are
``(h @ W_U).detach()`` plus these terms, so the forward pass is bit for bit the plain one.  The masked
hidden layer is

* ``mask="activation"`` (the paper's trick): ``h_M = M * h + (1 - M) * h.detach()``; the unembedding
  ``W_U`` still gets the full gradient ``h^T g`` (the terms' projectors sum to the identity);
* ``mask="unit"`` (default): ``h_M = M * h``; then a unit's unembedding row also learns only from its
  own routed gradient, so every weight of a designated unit (its column of ``W``, its row of ``W_U``)
  sees only the routed signal.  The embeddings ``W_x, W_y`` are shared by all units and learn from both.

Ablation (:func:`ablate_units`) zeroes the designated units' columns of ``W`` and rows of ``W_U``; an
ablated unit outputs ``relu(0) = 0`` and, with a zero gradient there, stays ablated under further
training.  :func:`finetune_ablated` trains the ablated models ``steps`` steps (the routing experiment's default: 1000) on the non-routed
signal only: for a subgroup route the pairs outside ``H x H``, for an irrep route every training pair
with the routing kept (so the surviving units never see the routed component).
"""

from __future__ import annotations

from typing import Sequence

import torch
from tqdm.auto import tqdm

from rep_theory.algebra.fourier import isotypic_projection
from rep_theory.algebra.groups import Group, get_group
from rep_theory.algebra.subgroups import subgroups
from rep_theory.training.config import RunConfig
from rep_theory.training.batched import BatchedOneLayerMLP
from rep_theory.training.data import make_split
from rep_theory.training.route_spec import RouteSpec

__all__ = ["Router", "routed_logits", "isotypic_projector", "route_subgroup", "check_route", "subgroup_pair_mask",
           "ablate_units", "finetune_ablated", "make_router"]


def isotypic_projector(G: Group | str, irrep: str) -> torch.Tensor:
    """``P [n, n]`` float64: the orthogonal projector onto ``irrep``'s isotypic subspace of ``R^n``.

    ``P[g, h] = (d / (c |G|)) chi(h^-1 g)`` (:mod:`rep_theory.algebra.fourier`; ``c`` the commutant
    dimension), computed as :func:`rep_theory.algebra.fourier.isotypic_projection` of the identity.
    Unknown irrep names raise ``KeyError`` naming the group's irreps.
    """
    G = get_group(G)
    return isotypic_projection(G, torch.eye(G.order, dtype=torch.float64), irrep)


def route_subgroup(G: Group, spec: RouteSpec) -> tuple[int, ...]:
    """The elements of the subgroup a subgroup route names (the ``spec.index``-th of that name)."""
    named = [H for H in subgroups(G) if H.name == spec.target]
    if not named:
        names = sorted({H.name for H in subgroups(G)})
        raise ValueError(f"route.subgroup={spec.target!r}: {G.name} has no subgroup of that name; "
                         f"its subgroups are {names}")
    if spec.index >= len(named):
        raise ValueError(f"route.index={spec.index}: {G.name} has only {len(named)} subgroup(s) named "
                         f"{spec.target!r} (indices 0..{len(named) - 1})")
    return named[spec.index].elements


def check_route(G: Group, spec: RouteSpec) -> None:
    """``ValueError`` naming the problem when ``spec``'s irrep or subgroup is not one of ``G``'s:
    checked when a run is created, so that a bad route fails there and not when it trains."""
    if spec.kind == "irrep":
        names = [rho.name for rho in G.irreps()]
        if spec.target not in names:
            raise ValueError(f"route.irrep={spec.target!r}: not an irrep of {G.name}; expected one of {names}")
    else:
        route_subgroup(G, spec)


def subgroup_pair_mask(G: Group, elements: Sequence[int]) -> torch.Tensor:
    """``[n * n]`` bool: pair ``a * n + b`` has both ``a`` and ``b`` in ``elements``."""
    inside = torch.zeros(G.order, dtype=torch.bool)
    inside[list(elements)] = True
    return (inside[:, None] & inside[None, :]).reshape(-1)


def routed_logits(hidden: torch.Tensor, W_U: torch.Tensor,
                  terms: Sequence[tuple[torch.Tensor, torch.Tensor | None]], mode: str) -> torch.Tensor:
    """``hidden @ W_U`` forward, with the gradient of each term ``(M, Pi)`` routed (module docstring).

    ``hidden [seed, batch, m]``, ``W_U [seed, m, n]``; ``M`` broadcasts to ``hidden`` (0/1 entries);
    ``Pi`` is a symmetric ``[n, n]`` projector or ``None`` (identity); ``mode`` ``"unit"`` | ``"activation"``.
    """
    if mode not in ("unit", "activation"):
        raise ValueError(f"mode must be 'unit' or 'activation', got mode={mode!r}")
    out = torch.bmm(hidden, W_U).detach()
    for M, Pi in terms:
        h = M * hidden if mode == "unit" else M * hidden + (1 - M) * hidden.detach()
        C = torch.bmm(h, W_U)
        delta = C - C.detach()                     # exactly 0 forward; gradient g
        out = out + (delta if Pi is None else delta @ Pi)
    return out


class Router:
    """The routing of one :class:`RouteSpec` for a hidden layer of ``width`` units, on ``device``.

    Set as ``BatchedOneLayerMLP.router``; called as ``router(hidden, W_U, a, b)`` while gradients are
    enabled (evaluation under ``no_grad`` takes the plain path: the forward value is the same).
    """

    def __init__(self, spec: RouteSpec, G: Group, width: int, *, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32):
        if spec.units >= width:
            raise ValueError(f"route.units={spec.units} needs a hidden layer wider than that, got {width} units")
        self.spec = spec
        self.width = width
        unit = torch.zeros(width, dtype=dtype)
        unit[list(spec.designated(width))] = 1
        self.unit_mask = unit.to(device)                                   # [m]: 1 on designated units
        self.in_subgroup = self.projector = None
        if spec.kind == "subgroup":
            inside = torch.zeros(G.order, dtype=dtype)
            inside[list(route_subgroup(G, spec))] = 1
            self.in_subgroup = inside.to(device)                           # [n]
        else:
            try:
                P = isotypic_projector(G, spec.target)
            except KeyError as err:
                raise ValueError(f"route.irrep={spec.target!r}: {err.args[0]}") from None
            self.projector = P.to(device, dtype)
            self.complement = (torch.eye(G.order, dtype=torch.float64) - P).to(device, dtype)

    def terms(self, a: torch.Tensor, b: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """The ``(mask, projector)`` terms for pairs ``a, b [seed, batch]``."""
        u = self.unit_mask
        if self.projector is not None:
            return [(u, self.projector), (1 - u, self.complement)]
        r = (self.in_subgroup[a] * self.in_subgroup[b])[..., None]        # [seed, batch, 1]: pair in H x H
        rest = 1 - u if self.spec.rest == "others" else torch.ones_like(u)
        return [(r * u + (1 - r) * rest, None)]

    def __call__(self, hidden: torch.Tensor, W_U: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled():
            return torch.bmm(hidden, W_U)
        return routed_logits(hidden, W_U, self.terms(a, b), self.spec.mask)


def make_router(cfg: RunConfig, G: Group, device: torch.device | str, dtype: torch.dtype = torch.float32
                ) -> Router | None:
    """The :class:`Router` of ``cfg.route`` (``None`` without a route)."""
    if cfg.route is None:
        return None
    return Router(cfg.route, G, cfg.model_hidden_dim, device=device, dtype=dtype)


@torch.no_grad()
def ablate_units(model, units: Sequence[int]):
    """Zero hidden ``units`` of an MLP in place (their columns of ``W``, rows of ``W_U``); returns it.

    Works for :class:`rep_theory.training.models.OneLayerMLP` and its seed-batched form alike.
    """
    idx = torch.as_tensor(list(units), dtype=torch.long, device=model.W.device)
    width = model.W.shape[-1]
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= width):
        raise ValueError(f"units to ablate must lie in [0, {width}), got {sorted(set(idx.tolist()))}")
    model.W[..., idx] = 0
    model.W_U[..., idx, :] = 0
    return model


def finetune_ablated(models: Sequence, cfgs: Sequence[RunConfig], route: RouteSpec, *, steps: int,
                     lr: float | None = None, device: torch.device | str = "cpu", progress: bool = False) -> list:
    """Fine-tune ablated single-seed MLPs (same config up to seed) on the non-routed signal; new models.

    ``route``'s designated units are ablated first (idempotent).  A fresh AdamW with the configs'
    ``betas`` and ``weight_decay`` and learning rate ``lr`` (default: the configs' ``lr``; on S4, 1000
    steps at the training rate recovered more seeds than lower rates) runs ``steps`` full-batch steps on each seed's training pairs:
    pairs in ``H x H`` get weight 0 for a subgroup route; an irrep route keeps routing on, so the
    surviving units learn only from ``g (I - P)``.  The loss is the float64 mean cross-entropy.
    """
    if len(models) != len(cfgs) or not models:
        raise ValueError(f"finetune_ablated needs one config per model, got {len(models)} models and {len(cfgs)} configs")
    if len({c.replace(seed=0, route=None).batch_key() for c in cfgs}) != 1:
        raise ValueError("finetune_ablated fine-tunes configs that differ only in seed (and route)")
    cfg0 = cfgs[0]
    G = get_group(cfg0.spec)
    width = models[0].W.shape[-1]
    batched = BatchedOneLayerMLP.from_single([m.cpu() for m in models], [c.seed for c in cfgs]).to(device)
    ablate_units(batched, route.designated(width))
    batched.router = Router(route, G, width, device=device, dtype=batched.W.dtype)
    splits = [make_split(G, c.frac_train, c.seed, paper_order=c.paper_order) for c in cfgs]
    a = torch.stack([s.a_train for s in splits]).to(device)
    b = torch.stack([s.b_train for s in splits]).to(device)
    y = torch.stack([s.y_train for s in splits]).to(device)
    weight = torch.ones(a.shape, dtype=torch.float64, device=device)
    if route.kind == "subgroup":
        pair_mask = subgroup_pair_mask(G, route_subgroup(G, route)).to(device)
        weight = (~pair_mask[a * G.order + b]).to(torch.float64)
    weight = weight / weight.sum(dim=1, keepdim=True).clamp_min(1)
    params = [batched.W_x, batched.W_y, batched.W, batched.W_U]
    lr = cfg0.lr if lr is None else lr
    if not lr > 0:
        raise ValueError(f"fine-tuning lr must be > 0, got lr={lr!r}")
    opt = torch.optim.AdamW(params, lr=lr, betas=cfg0.betas, weight_decay=cfg0.weight_decay)
    for _ in tqdm(range(steps), desc="fine-tune ablated", disable=not progress, leave=False):
        opt.zero_grad(set_to_none=True)
        logp = batched(a, b).to(torch.float64).log_softmax(-1)
        loss = -(logp.gather(-1, y[..., None])[..., 0] * weight).sum()
        loss.backward()
        opt.step()
    batched.router = None
    return [batched.to_single(i).cpu() for i in range(len(cfgs))]
