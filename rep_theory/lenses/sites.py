"""Sites of a model where lenses look, and everything a lens may read about them.

A *site* is an activation of the model on every input pair, ``X [n_pairs, d]`` (row-major pairs
``p = a*n + b``), that a reconstruction can replace through a forward hook:

=================  ==========================================  ===========================================
site               ``OneLayerMLP``                             ``Transformer``
=================  ==========================================  ===========================================
``embed_left``     ``embed_stack[:, :embed]`` = ``W_x[a]``      --
``embed_right``    ``embed_stack[:, embed:]`` = ``W_y[b]``      --
``embed``          ``embed_stack`` (both halves)                --
``hidden``         ``hidden`` (post-ReLU)                       --
``resid_mid``      --                                          ``blocks.0.hook_resid_mid``, last position
``mlp_post``       --                                          ``blocks.0.mlp.hook_post``, last position
=================  ==========================================  ===========================================

The full hook names (``blocks.0.hook_resid_mid``...) are accepted as aliases.  Default sites:
``embed_left, embed_right, hidden`` (MLP) and ``resid_mid, mlp_post`` (Transformer).

:class:`SiteContext` caches per model what several lenses share (activations, the unique rows of
an embedding site, the all-pairs losses, the MLP's input and output for the transcoder, the
linear maps LIB differentiates through) so a leaderboard computes each once.  Lenses are never
given the group: only :mod:`rep_theory.lenses.scores` reads it.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from rep_theory.algebra.groups import Group
from rep_theory.training.models import GroupModel, OneLayerMLP, Transformer

__all__ = ["MLP_SITES", "TRANSFORMER_SITES", "SITE_ALIASES", "default_sites", "resolve_site", "check_sites", "SiteContext"]

MLP_SITES = ("embed_left", "embed_right", "embed", "hidden")
TRANSFORMER_SITES = ("resid_mid", "mlp_post")
SITE_ALIASES = {"blocks.0.hook_resid_mid": "resid_mid", "blocks.0.mlp.hook_post": "mlp_post",
                "embed_stack": "embed"}
_DEFAULT = {OneLayerMLP: ("embed_left", "embed_right", "hidden"), Transformer: TRANSFORMER_SITES}
_CHUNK_PAIRS = 4096  # pairs per forward pass: bounds the transformer's [chunk, 3, d_mlp] activations


def _cached(method):
    """Memoise a method per instance and arguments (a plain dict on the instance, so nothing outlives it)."""
    def wrapper(self, *args):
        memo = self.__dict__.setdefault("_memo", {})
        key = (method.__name__, *args)
        if key not in memo:
            memo[key] = method(self, *args)
        return memo[key]
    wrapper.__name__, wrapper.__doc__ = method.__name__, method.__doc__
    return wrapper


def _kind(model: GroupModel) -> type:
    for cls in _DEFAULT:
        if isinstance(model, cls):
            return cls
    raise ValueError(f"lenses support OneLayerMLP and Transformer models; got {type(model).__name__}")


def default_sites(model: GroupModel) -> tuple[str, ...]:
    """The sites a leaderboard scores by default for ``model``."""
    return _DEFAULT[_kind(model)]


def resolve_site(model: GroupModel, site: str) -> str:
    """Canonical site name; a ``ValueError`` names the bad site and lists the valid ones."""
    name = SITE_ALIASES.get(site, site)
    valid = MLP_SITES if _kind(model) is OneLayerMLP else TRANSFORMER_SITES
    if name not in valid:
        raise ValueError(f"unknown site {site!r} for a {type(model).__name__}; expected one of {list(valid)} "
                         f"(or an alias {[k for k, v in SITE_ALIASES.items() if v in valid]})")
    return name


class SiteContext:
    """One model's sites on all pairs, computed lazily and cached (float32 as the model, on its device).

    Parameters
    ----------
    model : OneLayerMLP or Transformer (single seed), put in eval mode; its parameters are not changed.
    G : the group; only its order and table (the labels of the losses) are read here.
    """

    def __init__(self, model: GroupModel, G: Group):
        self.kind = _kind(model)
        self.model = model.eval()
        self.G = G
        self.n = G.order
        if model.n != self.n:
            raise ValueError(f"model has n = {model.n} outputs but group {G.name} has order {self.n}")
        self.device = model.device
        n = self.n
        self.a = torch.arange(n, device=self.device).repeat_interleave(n)   # [n_pairs]
        self.b = torch.arange(n, device=self.device).repeat(n)              # [n_pairs]
        self.labels = G.table.reshape(-1).to(self.device)                   # [n_pairs]

    @property
    def n_pairs(self) -> int:
        return self.n * self.n

    # --- activations -----------------------------------------------------------------------------
    def _hook(self, site: str) -> tuple[str, slice | None, bool]:
        """``(hook name, slice of the last axis or None, last position only)``."""
        if self.kind is OneLayerMLP:
            e = self.model.embed_dim
            return {"embed_left": ("embed_stack", slice(0, e), False), "embed_right": ("embed_stack", slice(e, 2 * e), False),
                    "embed": ("embed_stack", None, False), "hidden": ("hidden", None, False)}[site]
        return {"resid_mid": ("blocks.0.hook_resid_mid", None, True), "mlp_post": ("blocks.0.mlp.hook_post", None, True)}[site]

    @_cached
    def activations(self, site: str) -> torch.Tensor:
        """``[n_pairs, d]``: the site on all pairs (model dtype, detached)."""
        site = resolve_site(self.model, site)
        hook, sl, last = self._hook(site)
        out = []
        with torch.no_grad():
            for start in range(0, self.n_pairs, _CHUNK_PAIRS):
                stop = start + _CHUNK_PAIRS
                _, cache = self.model.run_with_cache(self.a[start:stop], self.b[start:stop], names_filter=hook)
                x = cache[hook]
                x = x[:, -1] if last else x
                out.append(x[:, sl] if sl is not None else x)
        return torch.cat(out)

    def unique_rows(self, site: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rows [m, d], index [n_pairs])`` with ``activations(site) == rows[index]``.

        An embedding half depends on one element only (``m = n``): training a dictionary on its ``n``
        rows instead of the ``n^2`` pairs gives the same mean-over-pairs loss at ``1/n`` the cost.
        """
        site = resolve_site(self.model, site)
        X = self.activations(site)
        if site == "embed_left":
            return X.view(self.n, self.n, -1)[:, 0], self.a
        if site == "embed_right":
            return X.view(self.n, self.n, -1)[0], self.b
        return X, torch.arange(self.n_pairs, device=self.device)

    # --- losses ------------------------------------------------------------------------------------
    def _loss(self, logits: torch.Tensor) -> float:
        return float(F.cross_entropy(logits.to(torch.float64), self.labels))

    @_cached
    def model_loss(self) -> float:
        """Cross-entropy of the model on all pairs (float64)."""
        with torch.no_grad():
            logits = torch.cat([self.model(self.a[s:s + _CHUNK_PAIRS], self.b[s:s + _CHUNK_PAIRS])
                                for s in range(0, self.n_pairs, _CHUNK_PAIRS)])
        return self._loss(logits)

    def spliced_logits(self, site: str, replacement: torch.Tensor) -> torch.Tensor:
        """``[n_pairs, n]``: logits with the site replaced by ``replacement [n_pairs, d]`` (forward hook)."""
        site = resolve_site(self.model, site)
        hook, sl, last = self._hook(site)
        replacement = replacement.detach()
        out = []
        with torch.no_grad():
            for start in range(0, self.n_pairs, _CHUNK_PAIRS):
                stop = start + _CHUNK_PAIRS
                rows = replacement[start:stop]

                def put(act, hp, rows=rows):
                    act = act.clone()
                    target = act[:, -1] if last else act
                    if sl is None:
                        target[...] = rows.to(act.dtype)
                    else:
                        target[..., sl] = rows.to(act.dtype)
                    return act

                out.append(self.model.run_with_hooks(self.a[start:stop], self.b[start:stop], fwd_hooks=[(hook, put)]))
        return torch.cat(out)

    def spliced_loss(self, site: str, replacement: torch.Tensor) -> float:
        """Cross-entropy on all pairs with the site replaced by ``replacement [n_pairs, d]``."""
        return self._loss(self.spliced_logits(site, replacement))

    @_cached
    def zero_ablated_loss(self, site: str) -> float:
        """Cross-entropy on all pairs with the site set to zero."""
        X = self.activations(site)
        return self.spliced_loss(site, torch.zeros_like(X))

    # --- what particular lenses read ------------------------------------------------------------------
    def downstream_site(self) -> str:
        """The post-ReLU site (the MLP's output): ``hidden`` or ``mlp_post``."""
        return "hidden" if self.kind is OneLayerMLP else "mlp_post"

    @_cached
    def mlp_input(self) -> torch.Tensor:
        """``[n_pairs, d_in]``: the transcoder's input.  MLP: the pre-activation ``embed_stack @ W``
        (= ``Lx[a] + Ly[b]``, the embedding sum); Transformer: ``resid_mid`` at the last position."""
        if self.kind is OneLayerMLP:
            return (self.activations("embed") @ self.model.W).detach()
        return self.activations("resid_mid")

    def relu_layer(self, site: str) -> tuple[torch.Tensor, torch.Tensor, str]:
        """``(W [d_site, d_next], pre [n_pairs, d_next], next site)``: the site feeds the ReLU layer
        ``next = relu(site @ W + rest)``; ``pre`` is that layer's pre-activation on all pairs.

        For an embedding half ``rest`` is the other half's contribution (held fixed when LIB
        differentiates).  Raises ``ValueError`` for a site that feeds no ReLU layer.
        """
        m = self.model
        if self.kind is OneLayerMLP:
            e = m.embed_dim
            W = {"embed_left": m.W[:e], "embed_right": m.W[e:], "embed": m.W}.get(site)
            if W is None:
                raise ValueError(f"site {site!r} feeds no ReLU layer; expected one of embed_left, embed_right, embed")
            return W.detach(), self.mlp_input(), "hidden"
        if site != "resid_mid":
            raise ValueError(f"site {site!r} feeds no ReLU layer; expected resid_mid")
        mlp = m.blocks[0].mlp
        pre = self.activations("resid_mid") @ mlp.W_in + mlp.b_in
        return mlp.W_in.detach(), pre.detach(), "mlp_post"

    def readout(self, site: str) -> torch.Tensor:
        """``[d, n]``: the linear map from a post-ReLU site to the logits (``hidden @ W_U``;
        ``mlp_post @ W_out @ W_U`` in the transformer, whose other logit terms do not depend on it)."""
        m = self.model
        if self.kind is OneLayerMLP:
            return m.W_U.detach()
        return (m.blocks[0].mlp.W_out @ m.unembed.W_U).detach()


def check_sites(model: GroupModel, sites: Sequence[str] | None) -> list[str]:
    """Canonical names of ``sites`` (default: :func:`default_sites`), in order, without repeats."""
    if sites is None:
        return list(default_sites(model))
    out = []
    for s in sites:
        name = resolve_site(model, s)
        if name not in out:
            out.append(name)
    return out
