"""Constants of the training layer that need no torch: the command line reads them to build its
``--help`` without importing torch (which takes about a second and a half)."""

from __future__ import annotations

__all__ = ["MODEL_SHORT_NAMES", "DEFAULT_RESUME_EVERY_S", "Terminated"]

MODEL_SHORT_NAMES = {"MLP": "OneLayerMLP", "T": "Transformer", "B": "BilinearNet", "Wu": "WuMLP"}
"""Short name (run directories, CLI) -> canonical model name."""

DEFAULT_RESUME_EVERY_S = 60.0
"""Seconds between resume states (besides Ctrl-C / SIGTERM and the end of training)."""


class Terminated(KeyboardInterrupt):
    """A command stopped by SIGTERM (training: after saving a resume state): a ``KeyboardInterrupt``
    to every handler, so that the same clean-up runs; the command line exits 143 for it, 130 for Ctrl-C."""
