"""The irrep value object and the facts about real irreps that every construction uses.

``kind`` is the Frobenius-Schur type of a real irrep: ``"real"`` (absolutely irreducible; its character
has norm 1), ``"complex"`` (the realification of a pair of complex-conjugate irreps; norm 2) or
``"quaternionic"`` (norm 4).
"""

from __future__ import annotations

import numpy as np
import torch

from rep_theory.algebra.groups import Group

__all__ = ["Irrep", "KINDS", "FS_INDICATORS", "squares", "kind_of"]

KINDS = {"real": 1, "complex": 2, "quaternionic": 4}
"""Frobenius-Schur type -> squared norm of the real character (= dim of the commutant)."""

FS_INDICATORS = {"real": 1, "complex": 0, "quaternionic": -2}
"""Frobenius-Schur type -> ``mean_g chi(g^2)`` of the real character (the real irrep's own
indicator for ``real``; 0 for a pair of conjugates; 2 x (-1) for a quaternionic one).  Together
with the norm this tells an irreducible quaternionic irrep from two copies of a real one."""


class Irrep:
    """A real irreducible representation: a value keyed by ``(group, name)``.

    Attributes
    ----------
    group : str            the group's name (spec)
    name : str             e.g. ``"standard"``, ``"freq_7"``
    dim : int              ``d``
    kind : str             ``"real" | "complex" | "quaternionic"``
    matrices : torch.float64 ``[n, d, d]``   orthogonal, ``rho(a) @ rho(b) == rho(ab)``
    character : torch.float64 ``[n]``        trace of each matrix
    """

    __slots__ = ("_group", "_name", "_kind", "_matrices", "_character")

    def __init__(self, group: str | Group, name: str, matrices, kind: str):
        if kind not in KINDS:
            raise ValueError(f"irrep kind must be one of {sorted(KINDS)}, got {kind!r}")
        m = torch.as_tensor(matrices, dtype=torch.float64)
        if m.ndim != 3 or m.shape[1] != m.shape[2]:
            raise ValueError(f"irrep matrices must have shape [n, d, d], got {tuple(m.shape)}")
        self._group = str(group)
        self._name = str(name)
        self._kind = kind
        self._matrices = m.contiguous()
        self._character = torch.diagonal(m, dim1=1, dim2=2).sum(-1)

    group = property(lambda self: self._group)
    name = property(lambda self: self._name)
    kind = property(lambda self: self._kind)
    matrices = property(lambda self: self._matrices)
    character = property(lambda self: self._character)
    dim = property(lambda self: int(self._matrices.shape[1]))

    def __repr__(self) -> str:
        return f"{self._group}:{self._name}(d={self.dim})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Irrep) and (other._group, other._name) == (self._group, self._name)

    def __hash__(self) -> int:
        return hash(("Irrep", self._group, self._name))


def squares(G: Group) -> np.ndarray:
    """``[n]`` index of ``g * g`` for every element ``g``."""
    n = G.order
    return G.table.numpy()[np.arange(n), np.arange(n)]


def kind_of(character: np.ndarray, squares: np.ndarray) -> str:
    """Frobenius-Schur type from the real character ``[n]`` (``squares[g]`` is the index of ``g*g``);
    ``ValueError`` when norm and indicator fit no irreducible kind."""
    norm = float(np.mean(character ** 2))
    indicator = float(np.mean(character[squares]))
    for kind, value in KINDS.items():
        if abs(norm - value) < 1e-6 and abs(indicator - FS_INDICATORS[kind]) < 1e-6:
            return kind
    raise ValueError(f"a character with squared norm {norm:.6f} and Frobenius-Schur indicator {indicator:.6f} "
                     f"is not irreducible")
