"""One full-batch training step of a seed-batched model, as the trainer runs it.

The pieces :mod:`rep_theory.training.train` builds a step from, shared with the benchmarks so that
they time exactly the trainer's step:

* :func:`make_optimizer`: AdamW (or Adam, ``optimizer="adam"``) over the stacked parameters;
* :func:`chunk_bounds`: the rows of the training set cut into forward chunks of at most
  :func:`logit_budget` logits (large on CUDA, bounded on the CPU);
* :func:`make_train_step`: zero the gradients, forward and the float64 cross-entropy chunk by chunk,
  backward, optimizer step; on CUDA captured once as a CUDA graph (:func:`capture_step`);
* :func:`evaluate_pairs`: per-seed float64 loss and accuracy, chunk by chunk.

``data`` is the dict of :func:`stack_splits`: ``a_train, b_train, y_train, a_test, b_test, y_test``,
each ``[seed, pairs]`` on the training device.
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

import torch

from rep_theory.training.batched import BatchedModel
from rep_theory.training.config import RunConfig
from rep_theory.training.data import PairSplit
from rep_theory.training.losses import cross_entropy64, sum_cross_entropy64

__all__ = ["make_optimizer", "stack_splits", "logit_budget", "chunk_bounds", "evaluate_pairs", "capture_step",
           "make_train_step", "CPU_LOGIT_BUDGET"]

logger = logging.getLogger(__name__)

CPU_LOGIT_BUDGET = 1 << 26
"""Logits per forward chunk on the CPU: bounds memory for large groups and many seeds."""
_CUDA_LOGIT_BUDGET_MAX = 1 << 30  # on CUDA a chunk may hold up to this many, and 1/64 of the card's memory


def make_optimizer(cfg: RunConfig, params: Sequence[torch.Tensor], *, capturable: bool = False) -> torch.optim.Optimizer:
    """The run's optimizer over ``params``: ``AdamW`` (``Adam`` for ``cfg.optimizer == "adam"``) with its
    ``lr``, ``betas`` and ``weight_decay``; ``capturable`` for CUDA graphs."""
    opt_class = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return opt_class(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, capturable=capturable)


def stack_splits(splits: Sequence[PairSplit], device: torch.device) -> dict[str, torch.Tensor]:
    """The seeds' splits as ``[seed, pairs]`` tensors on ``device`` (all seeds have as many pairs)."""
    return {name: torch.stack([getattr(s, name) for s in splits]).to(device)
            for name in ("a_train", "b_train", "y_train", "a_test", "b_test", "y_test")}


def logit_budget(device: torch.device) -> int:
    """Logits per forward chunk.  On CUDA larger chunks mean fewer, larger kernels (an S6 MLP step of 4
    seeds on an H200: 15.7 ms at the CPU's 2^26, 13.5 ms at 2^30); the float32 logits and their
    gradient then take at most 1/8 of the card's memory (Triton's loss stores no float64 copy)."""
    if device.type != "cuda":
        return CPU_LOGIT_BUDGET
    total = torch.cuda.get_device_properties(device).total_memory
    return max(CPU_LOGIT_BUDGET, min(_CUDA_LOGIT_BUDGET_MAX, total // 64))


def chunk_bounds(length: int, n_seeds: int, n: int, device: torch.device) -> list[tuple[int, int]]:
    """``[(lo, hi)]`` row ranges of at most :func:`logit_budget` logits (``n_seeds * n`` per row)."""
    size = max(1, logit_budget(device) // max(1, n_seeds * n))
    return [(lo, min(lo + size, length)) for lo in range(0, length, size)]


@torch.no_grad()
def evaluate_pairs(model: BatchedModel, a: torch.Tensor, b: torch.Tensor, y: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-seed mean float64 cross-entropy and accuracy (``[seed]`` each) on pairs ``a, b [seed, batch]``."""
    loss = torch.zeros(model.n_seeds, dtype=torch.float64, device=a.device)
    correct = torch.zeros(model.n_seeds, dtype=torch.float64, device=a.device)
    for lo, hi in chunk_bounds(a.shape[1], model.n_seeds, model.n, a.device):
        logits = model(a[:, lo:hi], b[:, lo:hi])
        loss += cross_entropy64(logits, y[:, lo:hi]) * (hi - lo)
        correct += (logits.argmax(-1) == y[:, lo:hi]).sum(-1).to(torch.float64)
    return loss / a.shape[1], correct / a.shape[1]


def capture_step(eager_step, optimizer: torch.optim.Optimizer, params: list[torch.Tensor]):
    """One training step (forward, backward, AdamW) as a CUDA graph; returns its ``replay``.

    Capturing needs a few warm-up steps, which change the weights and the AdamW state: both are
    saved first and restored in place afterwards, so training continues exactly where it was.
    """
    saved_params = [p.detach().clone() for p in params]
    saved_state = {i: {k: v.clone() for k, v in optimizer.state[p].items() if torch.is_tensor(v)}
                   for i, p in enumerate(params) if optimizer.state[p]}
    graph = torch.cuda.CUDAGraph()
    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                eager_step()
        torch.cuda.current_stream().wait_stream(side)
        with torch.cuda.graph(graph):
            eager_step()
    finally:
        with torch.no_grad():
            for i, p in enumerate(params):
                p.copy_(saved_params[i])
                for key, value in optimizer.state[p].items():
                    if torch.is_tensor(value):
                        if i in saved_state:
                            value.copy_(saved_state[i][key])
                        else:
                            value.zero_()  # a fresh AdamW: step 0, zero moments
        torch.cuda.synchronize()

    def replay() -> None:
        graph.replay()

    # The graph holds raw addresses of the weights, gradients, optimizer state and data, not references:
    # the replay keeps them alive (through the eager step's closure) for as long as it exists, so a caller
    # that keeps only the step cannot free them under the graph (their memory reused by later tensors).
    replay.keepalive = (eager_step, optimizer, tuple(params))
    return replay


def make_train_step(model: BatchedModel, optimizer: torch.optim.Optimizer, params: Sequence[torch.Tensor],
                    data: dict[str, torch.Tensor], *, graphs: bool) -> Callable[[], None]:
    """One full-batch step: zero the gradients; per chunk of :func:`chunk_bounds`, the logits and the
    float64 cross-entropy (mean over all training pairs) and its backward; the optimizer step.

    On the CPU the float64 copy of the logits reuses one buffer (a fresh 10-100 MB tensor per step
    costs more in page faults there than the loss's arithmetic; CUDA's allocator caches).  With
    ``graphs`` on CUDA the step is captured once (:func:`capture_step`) and replayed; if capture fails
    (an op that cannot be captured on this build) the eager step is used, with a warning.
    """
    a, b, y = data["a_train"], data["b_train"], data["y_train"]
    n_train = a.shape[1]
    chunks = chunk_bounds(n_train, model.n_seeds, model.n, a.device)
    workspace = None
    if a.device.type == "cpu" and chunks:
        longest = max(hi - lo for lo, hi in chunks)
        workspace = torch.empty(model.n_seeds * longest * model.n, dtype=torch.float64)

    def eager_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        for lo, hi in chunks:
            logits = model(a[:, lo:hi], b[:, lo:hi])
            sum_cross_entropy64(logits, y[:, lo:hi], 1.0 / n_train, workspace=workspace).backward()
        optimizer.step()

    if graphs and a.device.type == "cuda":
        try:
            return capture_step(eager_step, optimizer, params)
        except RuntimeError as err:
            logger.warning("CUDA graph capture failed (%s); training without it", err)
    return eager_step
