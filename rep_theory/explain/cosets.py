"""Per-neuron coset analysis of a trained one-layer MLP.

Stander, Yu, Fan and Biderman, "Grokking Group Multiplication with Cosets" (ICML 2024, arXiv
2312.06581) found that the neurons of MLPs trained on S5 and S6 are (nearly) constant on the
cosets of subgroups.  Here every hidden neuron ``j`` of a :class:`~rep_theory.training.models.OneLayerMLP`
is read as three functions on the group:

* ``left[g] = (W_x @ W[:embed])[g, j]``  its pre-activation contribution from the left input,
* ``right[g] = (W_y @ W[embed:])[g, j]`` the same from the right input,
* ``unembed[g] = W_U[j, g]``             its vote for the answer ``g``,

and for each function the largest proper non-trivial subgroup ``H`` on whose cosets (left ``gH``
or right ``Hg``, see :mod:`rep_theory.algebra.subgroups`) at least ``threshold`` of its centred
energy lies is found with :func:`rep_theory.algebra.subgroups.best_cosets`; the side with the
larger subgroup wins (ties: the higher concentration, then ``"left"``).

What to expect (Wu, Jaburi, Drori and Gross, ICLR 2025, arXiv 2410.07476): a neuron with
``left(x) = b^T rho(x) a`` satisfies ``left(h x) = left(x)`` for ``h`` in ``Stab(b)``, so it is
constant on the *right* cosets ``Stab(b) x``; ``right(y) = a^T rho(y) b'`` is constant on the
*left* cosets ``y Stab(b')``.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Sequence

import torch

from rep_theory.algebra.groups import Group
from rep_theory.algebra.subgroups import best_cosets, subgroups as all_subgroups

__all__ = ["FUNCTIONS", "CosetFit", "NeuronCosets", "neuron_functions", "function_cosets", "neuron_cosets"]

FUNCTIONS = ("left", "right", "unembed")
"""The three per-neuron functions on the group, in the order the tables list them."""


@dataclasses.dataclass(frozen=True, eq=False)
class CosetFit:
    """Best cosets of a batch of ``k`` functions on the group (one per neuron).

    Attributes
    ----------
    subgroup : long ``[k]``        index into ``subgroups`` (-1 where no subgroup reaches the threshold)
    order : long ``[k]``           its order (0 where none)
    side : list of str             ``"left"`` (cosets ``gH``), ``"right"`` (cosets ``Hg``) or ``""``
    concentration : float64 ``[k]``  the fraction of centred energy on those cosets (NaN where none)
    class_index : long ``[k]``     conjugacy class of the subgroup (-1 where none)
    class_name : list of str       its isomorphism type (``""`` where none)
    """

    subgroup: torch.Tensor
    order: torch.Tensor
    side: list
    concentration: torch.Tensor
    class_index: torch.Tensor
    class_name: list


@dataclasses.dataclass(frozen=True, eq=False)
class NeuronCosets:
    """:func:`neuron_cosets` of one model: a :class:`CosetFit` per function and a per-model summary.

    ``fits``: ``{"left" | "right" | "unembed": CosetFit}`` over the ``hidden`` neurons;
    ``subgroups``: the list the indices refer to (:func:`rep_theory.algebra.subgroups.subgroups`).
    """

    group: str
    threshold: float
    fits: dict
    subgroups: list

    @property
    def hidden(self) -> int:
        return int(self.fits[FUNCTIONS[0]].order.shape[0])

    def summary(self) -> dict:
        """Per function: the subgroup classes found, with the number of neurons and the mean concentration.

        ``{function: {"found": neurons with a subgroup, "classes": [{"class_index", "name", "order",
        "neurons", "mean_concentration", "sides": {"left": k, "right": k}}, ...]}}``, classes sorted by
        neuron count (descending), then class index.
        """
        out = {}
        for name, fit in self.fits.items():
            per: dict[int, list[int]] = {}
            for j, c in enumerate(fit.class_index.tolist()):
                if c >= 0:
                    per.setdefault(c, []).append(j)
            classes = []
            for c, members in per.items():
                idx = torch.tensor(members)
                classes.append({"class_index": c, "name": fit.class_name[members[0]],
                                "order": int(fit.order[members[0]]), "neurons": len(members),
                                "mean_concentration": float(fit.concentration[idx].mean()),
                                "sides": dict(Counter(fit.side[j] for j in members))})
            classes.sort(key=lambda r: (-r["neurons"], r["class_index"]))
            out[name] = {"found": int((fit.class_index >= 0).sum()), "classes": classes}
        return out


def neuron_functions(model) -> dict[str, torch.Tensor]:
    """``{"left", "right", "unembed": float64 [n, hidden]}``: each neuron's three functions on the group.

    ``model`` must offer ``embedding_left()``, ``embedding_right()`` and ``unembedding()`` (every
    single-seed model does; for the one-layer MLP they are the pre-activation contributions).
    """
    with torch.no_grad():
        return {"left": model.embedding_left().detach().cpu().to(torch.float64),
                "right": model.embedding_right().detach().cpu().to(torch.float64),
                "unembed": model.unembedding().detach().cpu().to(torch.float64)}


def function_cosets(G: Group, f, *, threshold: float = 0.9, sides: Sequence[str] = ("left", "right"),
                    subgroups: Sequence | None = None) -> CosetFit:
    """Best subgroup and side for each column of ``f`` ``[n, k]`` (see the module docstring).

    A column with (numerically) no centred energy gets no subgroup.
    """
    x = torch.as_tensor(f).to(torch.float64).cpu()
    if x.ndim != 2 or x.shape[0] != G.order:
        raise ValueError(f"f must have shape [n, k] with n = |{G.name}| = {G.order}, got {tuple(x.shape)}")
    subs = all_subgroups(G) if subgroups is None else list(subgroups)
    k = x.shape[1]
    centred = x - x.mean(0, keepdim=True)
    # a function that is constant up to rounding has no coset structure worth reporting
    flat = centred.pow(2).sum(0) <= 1e-20 * max(float(x.pow(2).sum()), 1e-300)
    best_index = torch.full((k,), -1, dtype=torch.long)
    best_order = torch.zeros(k, dtype=torch.long)
    best_conc = torch.full((k,), float("nan"), dtype=torch.float64)
    best_side = [""] * k
    for side in sides:
        fit = best_cosets(G, x, subgroups=subs, side=side, threshold=threshold)
        conc = torch.nan_to_num(fit.fraction, nan=-1.0)
        # larger subgroup first, then higher concentration; earlier side wins ties
        better = (fit.order > best_order) | ((fit.order == best_order) & (fit.order > 0) &
                                             (conc > torch.nan_to_num(best_conc, nan=-1.0)))
        better &= ~flat & (fit.index >= 0)
        best_index[better] = fit.index[better]
        best_order[better] = fit.order[better]
        best_conc[better] = fit.fraction[better]
        for j in torch.nonzero(better).flatten().tolist():
            best_side[j] = side
    # plain element lists (not Subgroup objects) have no class: -1 and "order k"
    class_index = torch.tensor([getattr(subs[i], "class_index", -1) if i >= 0 else -1
                                for i in best_index.tolist()], dtype=torch.long)
    class_name = [(subs[i].name if hasattr(subs[i], "name") else f"order {int(best_order[j])}") if i >= 0 else ""
                  for j, i in enumerate(best_index.tolist())]
    return CosetFit(best_index, best_order, best_side, best_conc, class_index, class_name)


def neuron_cosets(model, G: Group, *, threshold: float = 0.9,
                  functions: dict[str, torch.Tensor] | None = None) -> NeuronCosets:
    """The coset analysis of every hidden neuron of ``model`` (see the module docstring).

    Parameters
    ----------
    model : a single-seed model on ``G`` (``embedding_left``, ``embedding_right``, ``unembedding``)
    G : Group
    threshold : float in (0, 1]
        Concentration a subgroup's cosets must reach (as in :func:`~rep_theory.algebra.subgroups.best_cosets`).
    functions : optional precomputed :func:`neuron_functions` of ``model``.
    """
    if not isinstance(G, Group):
        raise TypeError(f"G must be a Group (rep_theory.algebra.groups.get_group), got {type(G).__name__}")
    funcs = neuron_functions(model) if functions is None else functions
    if funcs["left"].shape[0] != G.order:
        raise ValueError(f"the model has {funcs['left'].shape[0]} input elements, but |{G.name}| = {G.order}")
    subs = all_subgroups(G)
    fits = {name: function_cosets(G, funcs[name], threshold=threshold, subgroups=subs) for name in FUNCTIONS}
    return NeuronCosets(G.name, float(threshold), fits, subs)

