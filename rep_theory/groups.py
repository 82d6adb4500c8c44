"""Alias of :mod:`rep_theory.algebra.groups`, kept so that ``from rep_theory.groups import get_group``
(the contract of the design notes) goes on working.  New code imports from ``rep_theory.algebra``."""

from rep_theory.algebra.groups import *  # noqa: F401,F403
from rep_theory.algebra.groups import Group, get_group  # noqa: F401
