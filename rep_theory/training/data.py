"""The pair dataset and the seeded train/test split.

Conventions:

* The dataset is all ``n^2`` pairs ``(a, b)`` of group elements in row-major order: pair index
  ``p = a * n + b``; its label is ``table[a, b]``, the index of ``a * b``.
* The split is the paper's: ``perm = torch.randperm(n * n)`` drawn on the CPU from a generator
  seeded with ``seed`` (identical to the paper's ``torch.manual_seed(seed); torch.randperm(n*n)``,
  checked in the tests, but the global RNG is left untouched); the first
  ``int(frac_train * n * n)`` entries of ``perm`` are the training pairs, the rest the test pairs,
  both in permutation order.
* For S5, S6 and A5 the paper drew that permutation over pairs in *its* element order.  Passing
  ``element_perm = paper_to_package(spec)`` maps it: the paper's pair ``(a_p, b_p)`` is the
  package pair ``(element_perm[a_p], element_perm[b_p])``.  With it a package run of seed ``k``
  trains on exactly the pairs the paper's run ``k`` trained on.

>>> train, test = train_test_split(5, 0.4, seed=1)
>>> len(train), len(test)
(10, 15)
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch

from rep_theory.algebra.groups import Group, get_group
from rep_theory.algebra.paper_order import PAPER_ORDERED_GROUPS, paper_to_package
from rep_theory.device import resolve_device

__all__ = ["all_pairs", "pair_labels", "split_permutation", "n_train_pairs", "train_test_split",
           "paper_train_test_split", "element_permutation", "PairSplit", "make_split"]


def all_pairs(n: int, device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a, b)``: LongTensors ``[pair]`` (``pair = n*n``, row-major: ``a = p // n``, ``b = p % n``)."""
    a = torch.arange(n, device=device).repeat_interleave(n)
    b = torch.arange(n, device=device).repeat(n)
    return a, b


def pair_labels(group: Group | str, device: torch.device | str | None = None) -> torch.Tensor:
    """``[pair]`` LongTensor: ``table[a, b]`` for all pairs in row-major order."""
    return get_group(group).table.reshape(-1).to(device)


def split_permutation(n: int, seed: int) -> torch.Tensor:
    """``[pair]`` LongTensor: the paper's permutation of the ``n*n`` pair indices for ``seed`` (CPU)."""
    generator = torch.Generator(device="cpu")
    generator.manual_seed(int(seed))
    return torch.randperm(n * n, generator=generator)


def n_train_pairs(n: int, frac_train: float) -> int:
    """``int(frac_train * n * n)``, computed exactly as the paper did."""
    return int(frac_train * (n * n))


def train_test_split(n: int, frac_train: float, seed: int,
                     element_perm: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train, test)``: LongTensors of package pair indices ``a*n + b``, in permutation order.

    ``element_perm`` (``[n]``, ``element_perm[i]`` = package index of the split's element ``i``)
    maps a split drawn over another element order, e.g. ``paper_to_package("S5")``.
    """
    if not isinstance(frac_train, numbers.Real) or isinstance(frac_train, bool) or not 0 < frac_train < 1:
        raise ValueError(f"frac_train must be a number in (0, 1), got frac_train={frac_train!r}")
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or not 0 <= seed < 2 ** 63:
        raise ValueError(f"seed must be an integer in [0, 2^63), got seed={seed!r}")
    k = n_train_pairs(n, frac_train)
    if not 0 < k < n * n:
        raise ValueError(f"frac_train={frac_train} leaves an empty train or test set for {n * n} pairs "
                         f"({k} training pairs)")
    perm = split_permutation(n, seed)
    if element_perm is not None:
        element_perm = torch.as_tensor(element_perm, dtype=torch.long).cpu()
        if element_perm.shape != (n,) or not torch.equal(torch.sort(element_perm).values, torch.arange(n)):
            raise ValueError(f"element_perm must be a permutation of 0..{n - 1} of shape [{n}], "
                             f"got shape {tuple(element_perm.shape)}")
        perm = element_perm[perm // n] * n + element_perm[perm % n]
    return perm[:k].clone(), perm[k:].clone()


def element_permutation(group: Group | str, paper_order: bool = True) -> torch.Tensor | None:
    """``paper_to_package(group)`` for groups whose paper order differs (S5, S6, A5), else ``None``."""
    if not paper_order:
        return None
    G = get_group(group)
    return paper_to_package(G) if G.name in PAPER_ORDERED_GROUPS else None


def paper_train_test_split(spec: str, frac_train: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's split for ``(spec, frac_train, seed)`` as package pair indices (any group)."""
    G = get_group(spec)
    return train_test_split(G.order, frac_train, seed, element_perm=element_permutation(G))


@dataclass(frozen=True)
class PairSplit:
    """A train/test split with its inputs and labels (all LongTensors on one device).

    ``train``/``test``: pair indices ``[n_train]`` / ``[n_test]``; ``a_*``, ``b_*``: the elements;
    ``y_*``: labels ``table[a, b]``.
    """

    n: int
    train: torch.Tensor
    test: torch.Tensor
    labels: torch.Tensor

    @property
    def a_train(self) -> torch.Tensor:
        return self.train // self.n

    @property
    def b_train(self) -> torch.Tensor:
        return self.train % self.n

    @property
    def y_train(self) -> torch.Tensor:
        return self.labels[self.train]

    @property
    def a_test(self) -> torch.Tensor:
        return self.test // self.n

    @property
    def b_test(self) -> torch.Tensor:
        return self.test % self.n

    @property
    def y_test(self) -> torch.Tensor:
        return self.labels[self.test]

    def to(self, device: torch.device | str) -> "PairSplit":
        return PairSplit(self.n, self.train.to(device), self.test.to(device), self.labels.to(device))


def make_split(group: Group | str, frac_train: float, seed: int, *, paper_order: bool = True,
               device: torch.device | str | None = None) -> PairSplit:
    """The split a run of ``(group, frac_train, seed)`` trains on (see the module docstring).

    ``group``: a :class:`Group` (or its spec string, for convenience at the top level)."""
    G = get_group(group)
    train, test = train_test_split(G.order, frac_train, seed,
                                   element_perm=element_permutation(G, paper_order))
    return PairSplit(G.order, train, test, pair_labels(G)).to(resolve_device(device or "cpu"))
