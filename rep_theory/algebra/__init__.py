"""Layer 1, pure mathematics: finite groups, their real irreps, subgroups and Fourier analysis.

No models and no files besides the irrep cache.  Importing this package registers the irrep
construction with :meth:`Group.irreps`.
"""

from rep_theory.algebra.groups import Group, get_group
from rep_theory.algebra.irreps import Irrep

__all__ = ["Group", "get_group", "Irrep"]
