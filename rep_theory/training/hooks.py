"""Hook points: named, identity modules around the activations that metrics and users read.

A :class:`HookPoint` is an ``nn.Module`` that returns its input unchanged.  It does not choose its
own name: :meth:`HookedRootModule.setup` walks ``named_modules()`` once and gives every hook point
its attribute path, so a hook's name is where it sits in the model (``hidden``,
``blocks.0.mlp.hook_post``) and cannot drift from the code (the TransformerLens convention).

Hooks are global mutable state on a module, so temporary hooks only live inside a context
manager that removes them on exit::

    with model.hooks(fwd_hooks=[("hidden", fn)]):
        logits = model(a, b)          # fn(activation, hook) runs; its return value, if not None,
                                      # replaces the activation
    # the hook is gone here, even after an exception

:meth:`HookedRootModule.run_with_cache` returns ``(output, cache)`` where ``cache`` is a plain
dict of detached tensors keyed by full hook name.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterable, Iterator, Sequence, Union

import torch
from torch import nn

__all__ = ["HookPoint", "HookedRootModule", "HookFn", "NamesFilter"]

HookFn = Callable[[torch.Tensor, "HookPoint"], Union[torch.Tensor, None]]
"""``fn(activation, hook) -> None | replacement``: a forward hook on a :class:`HookPoint`."""

NamesFilter = Union[None, str, Sequence[str], Callable[[str], bool]]
"""Which hook points to cache: ``None`` (all), one name, a list of names, or a predicate."""


class HookPoint(nn.Module):
    """An identity module marking an activation; ``name`` is set by :meth:`HookedRootModule.setup`."""

    def __init__(self) -> None:
        super().__init__()
        self.name: str | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


def _names_predicate(names_filter: NamesFilter) -> Callable[[str], bool]:
    if names_filter is None:
        return lambda name: True
    if isinstance(names_filter, str):
        return lambda name: name == names_filter
    if callable(names_filter):
        return names_filter
    names = set(names_filter)
    return lambda name: name in names


class HookedRootModule(nn.Module):
    """Base class of every model: hook-point registry, temporary hooks, activation caching.

    Subclasses create their :class:`HookPoint` attributes in ``__init__`` and call
    :meth:`setup` at its end.
    """

    def setup(self) -> None:
        """Name every :class:`HookPoint` by its module path and build ``self.hook_dict``."""
        hook_dict: dict[str, HookPoint] = {}
        for name, module in self.named_modules():
            if isinstance(module, HookPoint):
                module.name = name
                hook_dict[name] = module
        # A plain dict (not a ModuleDict) so the registry adds no state-dict keys.
        object.__setattr__(self, "hook_dict", hook_dict)

    def hook_names(self) -> list[str]:
        """Names of all hook points, in module order."""
        return list(self.hook_dict)

    def _hook_point(self, name: str) -> HookPoint:
        try:
            return self.hook_dict[name]
        except KeyError:
            raise KeyError(f"{type(self).__name__} has no hook point {name!r}; "
                           f"its hook points are {self.hook_names()}") from None

    @contextlib.contextmanager
    def hooks(self, fwd_hooks: Iterable[tuple[str | Callable[[str], bool], HookFn]] = ()) -> Iterator["HookedRootModule"]:
        """Context manager adding forward hooks, removed on exit (also on exceptions).

        ``fwd_hooks`` is a list of ``(name_or_predicate, fn)``; ``fn(activation, hook)`` may return
        a tensor to replace the activation.  Contexts nest: each removes only its own hooks.
        """
        handles = []
        try:
            for name, fn in fwd_hooks:
                if callable(name):
                    points = [hp for n, hp in self.hook_dict.items() if name(n)]
                else:
                    points = [self._hook_point(name)]
                for hp in points:
                    handles.append(hp.register_forward_hook(_wrap(fn)))
            yield self
        finally:
            for handle in handles:
                handle.remove()

    def run_with_hooks(self, *args, fwd_hooks: Iterable[tuple[str, HookFn]] = (), **kwargs):
        """``self(*args, **kwargs)`` with temporary ``fwd_hooks``."""
        with self.hooks(fwd_hooks=fwd_hooks):
            return self(*args, **kwargs)

    def run_with_cache(self, *args, names_filter: NamesFilter = None, **kwargs
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(output, cache)``: the forward output and a dict ``hook name -> detached activation``."""
        keep = _names_predicate(names_filter)
        cache: dict[str, torch.Tensor] = {}

        def save(act: torch.Tensor, hook: HookPoint) -> None:
            cache[hook.name] = act.detach()

        names = [n for n in self.hook_dict if keep(n)]
        with self.hooks(fwd_hooks=[(n, save) for n in names]):
            out = self(*args, **kwargs)
        return out, cache


def _wrap(fn: HookFn):
    def hook(module: HookPoint, inputs, output):
        return fn(output, module)
    return hook
