"""When the package's Triton kernels may run on a device: the one rule the loss kernels
(:mod:`rep_theory.training.losses_triton`) and the row gathers (:mod:`rep_theory.training.gather_triton`)
share.

A kernel family runs only if Triton is installed, ``REP_THEORY_TRITON=0`` has not turned the kernels
off, and its self-check against the PyTorch path has passed on that device (run once per family and
device, then remembered).  A failing or raising check logs one warning and the PyTorch path is used
from then on.  No check runs while a CUDA graph is being captured (the answer is False until it has
run; the trainer's capture takes eager warm-up steps first, which is where it happens), and the check
runs with autograd on whatever the caller's mode: the first call may come from an evaluation under
``no_grad`` or ``inference_mode``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
from typing import Callable

import torch

logger = logging.getLogger(__name__)

__all__ = ["triton_enabled", "self_checked", "on_device"]

_READY: dict[tuple[str, str], bool] = {}
_HAVE_TRITON = importlib.util.find_spec("triton") is not None  # CUDA builds of torch ship it; the CPU build has none


def triton_enabled() -> bool:
    """Triton is importable and ``REP_THEORY_TRITON`` is not ``0``."""
    return _HAVE_TRITON and os.environ.get("REP_THEORY_TRITON", "1") != "0"


def on_device(device: torch.device):
    """Context in which a Triton kernel launches on ``device``: Triton launches on the *current* CUDA
    device and its stream, not on its tensors' device, so a launch for ``cuda:1`` must make it current."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def self_checked(family: str, device: torch.device, check: Callable[[], str | None]) -> bool:
    """Whether the kernels of ``family`` (a name for messages, e.g. "float64 cross-entropy") may run on
    ``device``.  ``check()`` runs them against the PyTorch path and returns None when they agree, else a
    description of the disagreement (logged)."""
    if not triton_enabled():
        return False
    key = (family, str(device))
    if key in _READY:
        return _READY[key]
    if device.type == "cuda" and torch.cuda.is_current_stream_capturing():
        return False
    try:
        with torch.inference_mode(False), torch.enable_grad(), on_device(device):
            problem = check()
        if problem is not None:
            logger.warning("the Triton %s disagrees with the PyTorch path on %s (%s); using the PyTorch path",
                           family, device, problem)
    except Exception as err:  # any failure to compile or run: fall back, once, loudly
        problem = str(err)
        logger.warning("the Triton %s failed its self-check on %s (%s); using the PyTorch path", family, device, err)
    _READY[key] = problem is None
    return _READY[key]
