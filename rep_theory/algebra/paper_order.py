"""The element orders the paper's code used for its permutation groups (S5, S6, A5).

The paper enumerated permutations in its own order (its identity is not element 0).  Its trained
weights and its train/test split are indexed in that order; this module maps them to the package's
order (lexicographic array forms, see :mod:`rep_theory.algebra.groups`).  The data ships inside the package
(``reference_data/paper_element_orders.json``); cyclic and dihedral groups need no reordering.

>>> perm = paper_to_package("S5")    # perm[i] = package index of the paper's element i
>>> perm.shape
torch.Size([120])
"""

from __future__ import annotations

import functools
import json
from importlib import resources

import numpy as np
import torch

from rep_theory.algebra.groups import Group, get_group

__all__ = ["paper_to_package", "package_to_paper", "PAPER_ORDERED_GROUPS", "PAPER_GROUPS"]

PAPER_GROUPS = ("C113", "C118", "D59", "D61", "S5", "S6", "A5")
"""The groups of the paper's experiments, in its tables' order."""

PAPER_ORDERED_GROUPS = ("S5", "S6", "A5")
"""Specs whose paper element order differs from the package's."""


@functools.lru_cache(maxsize=None)
def _paper_orders() -> dict[str, list[list[int]]]:
    text = resources.files("rep_theory").joinpath("reference_data/paper_element_orders.json").read_text()
    return json.loads(text)["orders"]


def paper_to_package(spec: Group | str) -> torch.Tensor:
    """``[n]`` LongTensor ``perm`` with ``perm[i]`` = package index of the paper's element ``i``.

    For groups the paper indexed like the package (cyclic, dihedral, anything not in
    :data:`PAPER_ORDERED_GROUPS`) this is the identity permutation.  Reorder paper weights indexed by
    element with ``W_package[perm] = W_paper``, i.e. ``W_package = W_paper[package_to_paper(spec)]``.
    """
    G = get_group(spec)
    orders = _paper_orders()
    if G.name not in orders:
        return torch.arange(G.order)
    paper = np.asarray(orders[G.name], dtype=np.int64)
    degree = G.elements.shape[1]
    base = degree ** np.arange(degree - 1, -1, -1, dtype=np.int64)
    codes = G.elements @ base
    perm = np.searchsorted(codes, paper @ base)
    if paper.shape != G.elements.shape or not np.array_equal(G.elements[perm], paper):
        raise ValueError(f"the shipped paper element order for {G.name} does not match the group's elements")
    return torch.from_numpy(perm)


def package_to_paper(spec: Group | str) -> torch.Tensor:
    """``[n]`` LongTensor: the inverse of :func:`paper_to_package` (paper index of each package element)."""
    perm = paper_to_package(spec)
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(len(perm))
    return inv
