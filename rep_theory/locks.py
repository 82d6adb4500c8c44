"""The per-run lock: one writer per run directory, across processes (``fcntl.flock`` on ``<run>/.lock``).

The batch runner, ``rep-theory train``, ``rep-theory eval`` and the demo all take it, so a second
command on the same run says it is busy instead of writing beside the first.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path
from typing import Iterator, Sequence

__all__ = ["LOCK_NAME", "RunLockedError", "run_lock"]

LOCK_NAME = ".lock"
"""Lock file inside each run directory (the file itself stays)."""


class RunLockedError(RuntimeError):
    """Another process holds the lock of a run directory."""


@contextlib.contextmanager
def run_lock(run_dirs: Sequence[str | os.PathLike]) -> Iterator[None]:
    """Hold exclusive ``fcntl`` locks on ``<run>/.lock`` for every run directory, or raise.

    Non-blocking: if any run is locked by another process (or another lock in this one), the
    locks taken so far are released and :class:`RunLockedError` names the busy run.
    """
    handles = []
    try:
        for run_dir in sorted(Path(d) for d in run_dirs):
            fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                os.close(fd)
                if err.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise RunLockedError(f"{run_dir} is locked by another pipeline") from None
                raise
            handles.append(fd)
        yield
    finally:
        for fd in handles:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
