"""Constants of the training layer that need no torch: the command line reads them to build its
``--help`` without importing torch (which takes about a second and a half)."""

from __future__ import annotations

__all__ = ["MODEL_SHORT_NAMES", "DEFAULT_RESUME_EVERY_S"]

MODEL_SHORT_NAMES = {"MLP": "OneLayerMLP", "T": "Transformer", "B": "BilinearNet", "Wu": "WuMLP"}
"""Short name (run directories, CLI) -> canonical model name."""

DEFAULT_RESUME_EVERY_S = 60.0
"""Seconds between resume states (besides Ctrl-C / SIGTERM and the end of training)."""
