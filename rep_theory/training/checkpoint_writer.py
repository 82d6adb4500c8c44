"""Checkpoint files written by a background thread, so training does not wait for the disk.

A 250k-epoch run writes 728 checkpoints (every epoch up to 85), each a ``torch.save``, a sha256
and an ``fsync`` per seed (:func:`rep_theory.io.save_checked`).  :class:`CheckpointWriter` takes a
snapshot of the stacked weights on the training thread (a clone on CPU; on CUDA an asynchronous
copy into pinned host memory, ordered on the current stream before the next step overwrites the
weights) and does everything else in one writer thread:

* the queue is bounded (``max_pending`` snapshots), so a slow disk throttles training instead of
  filling memory;
* :meth:`flush` waits until every queued file is on disk; the trainer calls it before a resume
  state is written (a resume state never precedes the checkpoints it implies) and before
  ``model.pt``;
* the first error of the writer thread is re-raised on the training thread by the next
  :meth:`write_seeds`, :meth:`flush` or :meth:`close`; files queued after it are not written.

The files are exactly those the synchronous code wrote: the same ``{key: stacked[key][i].clone()}``
dicts through the same :func:`rep_theory.io.save_checked`.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch

from rep_theory.io import save_checked

__all__ = ["CheckpointWriter", "host_snapshot"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_PENDING = 16
"""Snapshots queued at most; each holds every seed's weights (a few MiB for the paper's models)."""


def host_snapshot(stacked: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], object | None]:
    """Host copies of ``stacked`` that later in-place updates cannot change, and the CUDA event the
    copies complete at (``None`` on CPU, where they are complete on return).

    CUDA tensors go to pinned memory with ``non_blocking=True``: the copy is queued on the current
    stream, behind the step that produced the weights and ahead of the next one, and the training
    thread does not wait for it.
    """
    out, event = {}, None
    for key, tensor in stacked.items():
        tensor = tensor.detach()
        if tensor.device.type == "cuda":
            buffer = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
            out[key] = buffer.copy_(tensor, non_blocking=True)
            if event is None:
                event = torch.cuda.Event()
        else:
            out[key] = tensor.clone()
    if event is not None:
        event.record()  # on the current stream, after every copy above
    return out, event


@dataclass
class _Job:
    host: dict[str, torch.Tensor]
    ready: object | None             # CUDA event, or None
    targets: list[tuple[Path, int]]  # (path, seed index)


class CheckpointWriter:
    """One background thread writing single-seed checkpoints from stacked weights (see the module doc).

    Use as a context manager, or call :meth:`close`; it is also safe to :meth:`flush` at any time.
    """

    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING):
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="checkpoint-writer", daemon=True)
        self._thread.start()

    # --- training thread ------------------------------------------------------------------------
    def write_seeds(self, stacked: Mapping[str, torch.Tensor], targets: Sequence[tuple[str | Path, int]]) -> None:
        """Queue ``save_checked(path, {key: stacked[key][i].clone()})`` for every ``(path, i)``.

        ``stacked`` maps state-dict keys to ``[seed, ...]`` tensors; it is snapshotted before this
        returns, so the caller may update it in place right away.  Blocks while the queue is full.
        """
        self._raise_error()
        if self._closed:
            raise RuntimeError("CheckpointWriter is closed")
        targets = [(Path(path), int(i)) for path, i in targets]
        if not targets:
            return
        host, ready = host_snapshot(stacked)
        self._queue.put(_Job(host, ready, targets))

    def flush(self) -> None:
        """Wait until every queued checkpoint is on disk; re-raise the writer thread's error."""
        self._queue.join()
        self._raise_error()

    def close(self, *, raise_error: bool = True) -> None:
        """Write what is queued, stop the thread, then re-raise its error (unless ``raise_error``
        is false: the caller is already propagating an exception, which must not be masked)."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()
        if raise_error:
            self._raise_error()
        elif self._error is not None:
            logger.warning("a checkpoint could not be written: %r", self._error)

    def __enter__(self) -> "CheckpointWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.close(raise_error=exc_type is None)
        return False

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    # --- writer thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                if self._error is None:  # after a failure nothing more is written: the trainer stops
                    if job.ready is not None:
                        job.ready.synchronize()
                    for path, i in job.targets:
                        # the same dict the synchronous trainer saved: a compact clone per seed
                        save_checked(path, {key: value[i].clone() for key, value in job.host.items()})
            except BaseException as err:  # noqa: BLE001 - handed to the training thread
                self._error = err
            finally:
                self._queue.task_done()
