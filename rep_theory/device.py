"""Where tensors live, and how many CPU threads work on them: one rule for every command."""

from __future__ import annotations

import os

import torch

__all__ = ["resolve_device", "describe_device", "available_cores", "choose_threads", "set_threads"]


def parse_device(device: str | torch.device | None) -> torch.device | None:
    """``device`` as a ``torch.device`` (``None`` for ``None`` or ``"auto"``), without asking whether
    it is present here; ``ValueError`` naming the value when it is not a device at all.

    >>> parse_device("cuda:1"), parse_device("auto")
    (device(type='cuda', index=1), None)
    """
    if device is None or str(device) == "auto":
        return None
    try:
        parsed = device if isinstance(device, torch.device) else torch.device(device)
    except (RuntimeError, TypeError):
        parsed = None
    if parsed is None or parsed.type not in ("cpu", "cuda"):
        raise ValueError(f"device {str(device)!r}: expected auto, cpu, cuda or cuda:K")
    return parsed


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``None`` or ``"auto"``: CUDA when present, else the CPU; anything else as ``torch.device(device)``,
    checked to exist here (``ValueError`` naming it otherwise: a bad name, no CUDA, no such GPU).

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    parsed = parse_device(device)
    if parsed is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r}: CUDA is not available on this machine; use cpu or auto")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                             f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return parsed


def describe_device(device: torch.device) -> str:
    """The card's name on CUDA (``"NVIDIA H200"``), else ``"CPU, <k> threads"`` (torch's intra-op threads)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} threads"


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def choose_threads(jobs: int = 1, *, requested: int | None = None) -> int:
    """Intra-op threads for each of ``jobs`` concurrent workers on this machine.

    ``requested`` (``--threads``) wins; else ``$OMP_NUM_THREADS`` when set; else the cores that are
    free, shared among the jobs: ``(cores - busy) // jobs`` and at least 1, where ``busy`` is the
    one-minute load average not counting this process.  Oversubscribing cores is what makes
    torch's CPU kernels 3-20x slower (threads spin and wait on each other), so on a loaded or small
    machine one thread per job is the right answer; a quiet many-core machine gets more.
    """
    if requested is not None:
        if requested < 1:
            raise ValueError(f"threads must be >= 1, got threads={requested}")
        return requested
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) >= 1:
        return int(env)
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got jobs={jobs}")
    cores = available_cores()
    try:
        busy = max(0.0, os.getloadavg()[0] - 1.0)  # this process counts about 1 in its own load
    except (AttributeError, OSError):
        busy = 0.0
    return max(1, int((cores - round(busy)) // jobs))


def set_threads(threads: int) -> None:
    """Set torch's intra-op threads (and OpenMP's, for worker processes started after this)."""
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
