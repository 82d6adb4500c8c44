"""The paper's loss: cross-entropy computed in float64, whatever the logits' dtype.

The paper converts the logits to float64 before the log-softmax; its tiny late-training losses
(1e-7 and below) depend on it.  :func:`cross_entropy64` is the plain reference;
:func:`sum_cross_entropy64` computes the same numbers for training in fewer passes over memory.
"""

from __future__ import annotations

import torch

__all__ = ["cross_entropy64", "sum_cross_entropy64", "reference_sum_cross_entropy64"]


def cross_entropy64(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the last batch axis, computed in float64 as the paper did.

    ``logits [..., batch, n]``, ``labels [..., batch]`` -> ``[...]`` (float64).
    """
    log_probs = logits.to(torch.float64).log_softmax(dim=-1)
    return -log_probs.gather(-1, labels.unsqueeze(-1)).squeeze(-1).mean(dim=-1)


class _SumCrossEntropy64(torch.autograd.Function):
    """``scale * sum`` of the float64 cross-entropy over all rows, with a fused float64 backward.

    The same numbers as ``F.cross_entropy(logits.to(float64), labels, reduction="sum") * scale``
    (the gradient ``(softmax - onehot) * scale`` is computed in float64, then cast to the logits'
    dtype), in fewer passes over memory than the composite ops.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, labels: torch.Tensor, scale: float,
                workspace: torch.Tensor | None) -> torch.Tensor:
        # logits - max, in float64: float32 values convert exactly, so converting and then
        # subtracting the converted max gives the same bits as the promoted subtraction.
        top = logits.amax(dim=-1, keepdim=True).to(torch.float64)
        if workspace is not None:
            # a caller-owned float64 buffer: no fresh allocation of the largest tensor of the step
            # (on the CPU a new 40 MB tensor costs more in page faults than the arithmetic)
            x = workspace.view(-1)[:logits.numel()].view(logits.shape)
            x.copy_(logits).sub_(top)
        else:
            x = torch.sub(logits, top)
        target = x.gather(-1, labels.unsqueeze(-1))
        x.exp_()
        total = x.sum(dim=-1, keepdim=True)
        loss = (total.log() - target).sum() * scale
        ctx.save_for_backward(x, total, labels)
        ctx.scale = scale
        ctx.dtype = logits.dtype
        return loss

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        exp, total, labels = ctx.saved_tensors
        weight = grad_output * ctx.scale
        # (softmax - onehot) * weight, in place (the graph is not kept: no retain_graph in training)
        grad = exp.mul_(weight / total)
        grad.scatter_add_(-1, labels.unsqueeze(-1), (-weight).expand(*labels.shape, 1).to(grad.dtype))
        return grad.to(ctx.dtype), None, None, None


def reference_sum_cross_entropy64(logits: torch.Tensor, labels: torch.Tensor, scale: float = 1.0, *,
                                  workspace: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`sum_cross_entropy64` by the PyTorch path on every device (the reference the Triton
    kernels are checked against); ``workspace`` as there."""
    if workspace is not None:
        if workspace.dtype != torch.float64 or workspace.device != logits.device or workspace.numel() < logits.numel():
            raise ValueError(f"workspace must be float64 on {logits.device} with at least {logits.numel()} elements; "
                             f"got {workspace.dtype} on {workspace.device} with {workspace.numel()}")
    return _SumCrossEntropy64.apply(logits, labels, scale, workspace)


def sum_cross_entropy64(logits: torch.Tensor, labels: torch.Tensor, scale: float = 1.0, *,
                        workspace: torch.Tensor | None = None) -> torch.Tensor:
    """``scale * sum`` over all rows of the float64 cross-entropy; ``logits [..., n]``, ``labels [...]``.

    On CUDA, when Triton is installed and its kernels pass their self-check on the device
    (:mod:`rep_theory.training.losses_triton`), two fused kernels compute it without a float64 copy
    of the logits; elsewhere the PyTorch path (:func:`reference_sum_cross_entropy64`).

    ``workspace``: optional float64 tensor on the logits' device with at least ``logits.numel()``
    elements, used for the float64 copy of the logits (and the gradient) instead of a fresh
    allocation.  The caller must not reuse it before this loss's backward has run (a training loop
    that calls ``backward`` right after the loss satisfies this).  Same numbers with or without it.
    """
    if logits.is_cuda:
        from rep_theory.training.losses_triton import triton_ready, triton_sum_cross_entropy64

        if triton_ready(logits.device, reference_sum_cross_entropy64):
            return triton_sum_cross_entropy64(logits, labels, scale)
    return reference_sum_cross_entropy64(logits, labels, scale, workspace=workspace)
