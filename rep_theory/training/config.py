"""Run configuration: one frozen dataclass, the paper's ``cfg.json`` keys plus a few of ours.

A paper ``cfg.json`` loads as is::

    {"lr": 0.001, "num_epochs": 250000, "weight_decay": 1, "betas": [0.9, 0.98],
     "layers": {"embed_dim": 256, "hidden_dim": 128}, "model": "OneLayerMLP",
     "group": "SymmetricGroup", "group_parameter": 5, "frac_train": 0.4, "seed": 1}

and :meth:`RunConfig.to_dict` writes those keys back with the same values (plus ``device``,
``log_every``, ``paper_order`` and ``version``).  Groups are stored as a spec (``"S5"``, see
:func:`rep_theory.algebra.groups.get_group`); the paper's families (``CyclicGroup``, ``DihedralGroup``,
``SymmetricGroup``, ``AlternatingGroup`` with ``group_parameter``) are read and written in the
paper's form, any other group as ``"group": "<spec>"``.  Models: ``"OneLayerMLP"``,
``"Transformer"``, ``"BilinearNet"`` (short forms ``"MLP"``, ``"T"``, ``"B"`` accepted) and
``"WuMLP"`` (``"Wu"``; Wu et al.'s recipe, :data:`WU_RECIPE`, :func:`wu_recipe`).

Validation happens in ``__post_init__`` (no seeding, logging, I/O or device probing): every error
names the field, the value and what was expected.

>>> cfg = paper_defaults("S5", "MLP", seed=3)
>>> cfg.spec, cfg.model, cfg.frac_train, cfg.num_epochs, cfg.run_name
('S5', 'OneLayerMLP', 0.4, 250000, 'S5_MLP_seed3')
>>> RunConfig.from_dict(cfg.to_dict()) == cfg
True
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from rep_theory import __version__
from rep_theory.algebra.groups import canonical_spec, spec_order
from rep_theory.checks import check_float, check_int
from rep_theory.training.route_spec import RouteSpec, parse_route
from rep_theory.training.constants import MODEL_SHORT_NAMES

__all__ = ["RunConfig", "paper_defaults", "wu_recipe", "WU_RECIPE", "WU_MLP2_RECIPE", "OPTIMIZERS", "MODEL_NAMES", "MODEL_SHORT_NAMES", "PAPER_GROUP_FAMILIES",
           "PAPER_GRID", "load_config", "group_spec", "model_short_name", "canonical_model_name", "PAPER_EXTRA_KEYS"]

MODEL_NAMES = ("OneLayerMLP", "Transformer", "BilinearNet", "WuMLP")
"""Canonical model names (the paper's class names)."""


_MODEL_TO_SHORT = {v: k for k, v in MODEL_SHORT_NAMES.items()}
_MODEL_ALIASES = {"mlp": "OneLayerMLP", "onelayermlp": "OneLayerMLP", "transformer": "Transformer",
                  "bilinear": "BilinearNet", "bilinearnet": "BilinearNet", "wu": "WuMLP", "wumlp": "WuMLP"}

OPTIMIZERS = ("adamw", "adam")
"""``adamw``: ``torch.optim.AdamW`` (decoupled weight decay, the paper's); ``adam``: ``torch.optim.Adam``,
whose ``weight_decay`` adds ``weight_decay * w`` to the gradient (L2, as Wu et al.'s code)."""

WU_RECIPE: dict[str, Any] = dict(model="WuMLP", frac_train=0.4, hidden_dim=128, optimizer="adam", lr=1e-2,
                                 weight_decay=2e-4, betas=(0.9, 0.98), num_epochs=5000)
"""Wu, Jaburi, Drori and Gross (ICLR 2025, arXiv 2410.07476): 128 neurons, 40% of the pairs, and the
optimiser defaults of their training code (Adam with L2 weight decay 2e-4, lr 1e-2, betas (0.9, 0.98),
full batch); ``num_epochs`` is our choice (their paper states none that we could find), measured to
generalise on S4 and A4 (``benchmarks/bench_verify_wu.py``)."""

WU_MLP2_RECIPE: dict[str, Any] = dict(model="OneLayerMLP", frac_train=0.4, embed_dim=128, hidden_dim=128,
                                      optimizer="adam", lr=1e-2, weight_decay=2e-4, betas=(0.9, 0.98),
                                      num_epochs=2000)
"""Wu et al.'s optimiser settings (as :data:`WU_RECIPE`) on the paper's MLP architecture with 128-wide
embeddings and 128 neurons: embeddings, two linear halves, ReLU, unembedding, which their code calls
``MLP2`` and whose run directories behind their S5 analyses are named ``gapS5_MLP2_128_wd2e-4``.
Folded (``L = W_x W[:e]``, ``R = W_y W[e:]``) it is the network of their paper's equation.  On S5 at
40% of the pairs it generalises (4 of 4 seeds within 1000 epochs on the CPU) where :data:`WU_RECIPE`'s
``WuMLP`` does not; ``num_epochs`` is their code's default, 2000.  The initialisation is the
package's (the paper's) for that architecture, not their code's."""
PAPER_EXTRA_KEYS = {"epochs": "the paper's S6_MLP_seed2-4 carry a stale 'epochs' beside 'num_epochs'; "
                              "num_epochs is what they trained"}
"""Keys found in the paper's released cfg.json files that are not config fields: accepted with a
warning and left out of the config."""

PAPER_GROUP_FAMILIES = {"CyclicGroup": "C", "DihedralGroup": "D", "SymmetricGroup": "S",
                        "AlternatingGroup": "A"}
"""The paper's ``cfg.json`` group names -> spec family prefix (``group_parameter`` is the n)."""

_FAMILY_TO_PAPER = {v: k for k, v in PAPER_GROUP_FAMILIES.items()}
_PAPER_SPEC_RE = re.compile(r"^([CDSA])(\d+)$")

PAPER_GRID: dict[tuple[str, str], tuple[float, int]] = {
    ("C113", "OneLayerMLP"): (0.3, 250_000), ("C113", "Transformer"): (0.3, 50_000),
    ("C118", "OneLayerMLP"): (0.3, 250_000), ("C118", "Transformer"): (0.3, 50_000),
    ("D59", "OneLayerMLP"): (0.3, 250_000), ("D59", "Transformer"): (0.3, 100_000),
    ("D61", "OneLayerMLP"): (0.3, 250_000), ("D61", "Transformer"): (0.3, 100_000),
    ("S5", "OneLayerMLP"): (0.4, 250_000), ("S5", "Transformer"): (0.6, 50_000),
    ("S6", "OneLayerMLP"): (0.25, 250_000), ("S6", "Transformer"): (0.4, 20_000),
    ("A5", "OneLayerMLP"): (0.5, 250_000), ("A5", "Transformer"): (0.6, 250_000),
    # BilinearNet: the fractions of the paper's (unused) batch configs.
    ("S5", "BilinearNet"): (0.5, 250_000), ("S6", "BilinearNet"): (0.3, 250_000),
    ("C113", "BilinearNet"): (0.3, 250_000), ("C118", "BilinearNet"): (0.3, 250_000),
    ("D59", "BilinearNet"): (0.3, 250_000), ("D61", "BilinearNet"): (0.3, 250_000),
    ("A5", "BilinearNet"): (0.5, 250_000),
}
"""``(spec, model) -> (frac_train, num_epochs)`` of the paper's training grid (the README's "Grids" and "Training")."""

_DEFAULT_FRAC = {"OneLayerMLP": 0.4, "Transformer": 0.4, "BilinearNet": 0.4, "WuMLP": WU_RECIPE["frac_train"]}
_DEFAULT_EPOCHS = {"OneLayerMLP": 250_000, "Transformer": 50_000, "BilinearNet": 250_000,
                   "WuMLP": WU_RECIPE["num_epochs"]}

_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one training run (one seed of one model on one group).

    Attributes
    ----------
    group : str
        Group spec (``"S5"``, ``"C113"``, ``"C4xC6"``; see :func:`rep_theory.algebra.groups.get_group`).
        The paper's form ``group="SymmetricGroup", group_parameter=5`` is accepted and folded
        into the spec.
    model : str
        ``"OneLayerMLP"`` | ``"Transformer"`` | ``"BilinearNet"`` | ``"WuMLP"`` (``"MLP"``, ``"T"``, ``"B"``,
        ``"Wu"`` accepted).
    seed : int
        Seeds both the train/test split and the initialisation (each with its own generator,
        exactly as the paper's ``torch.manual_seed(seed)`` did).
    frac_train : float
        Fraction of the ``n^2`` pairs used for training, in (0, 1); the split keeps the first
        ``int(frac_train * n * n)`` pairs of a seeded permutation.
    num_epochs : int
        Number of full-batch optimizer steps (>= 1).
    lr : float
        Learning rate (> 0).
    weight_decay : float
        Weight decay (>= 0): decoupled for AdamW, an L2 term in the gradient for Adam.
    betas : tuple of two floats
        Adam(W) betas, each in [0, 1).
    embed_dim : int
        MLP / bilinear embedding width (``layers.embed_dim`` in cfg.json; unused by the Transformer,
        whose widths are fixed at the paper's d_model 128, 4 heads of 32, d_mlp 512).
    hidden_dim : int
        MLP hidden width (``layers.hidden_dim`` in cfg.json; unused by Transformer and BilinearNet).
    group_parameter : int or None
        Only for the paper's form of ``group``; always ``None`` after construction.
    device : str
        ``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:<k>"`` or ``"mps"``.
    log_every : int
        Train/test loss and accuracy are computed and logged every this many epochs (>= 1).
    paper_order : bool
        Draw the split and the initialisation over the paper's element order (only matters for
        S5, S6, A5: with it, seed k trains the paper's run k; see :mod:`rep_theory.algebra.paper_order`).
    num_checkpoints : int
        Log-spaced checkpoints in ``[1, num_epochs]`` (plus 0 and the last): the paper's 1000 by
        default; fewer make a lighter run directory (the demo's ``default`` and ``quick`` presets use 200).
    version : str
        Version of rep-theory that wrote the config.
    route : RouteSpec or None
        Gradient routing (:mod:`rep_theory.training.route_spec`; a ``cfg.json`` mapping is accepted).
        ``None`` (the default) trains exactly as without the option, and cfg.json then has no
        ``route`` key.  A route with ``expand`` builds ``hidden_dim + expand`` hidden units
        (:attr:`model_hidden_dim`).
    optimizer : str
        ``"adamw"`` (the default, the paper's) or ``"adam"`` (:data:`OPTIMIZERS`); cfg.json holds an
        ``optimizer`` key only when it is not ``"adamw"``.
    """

    group: str
    model: str
    seed: int = 1
    frac_train: float = 0.4
    num_epochs: int = 250_000
    lr: float = 1e-3
    weight_decay: float = 1.0
    betas: tuple[float, float] = (0.9, 0.98)
    embed_dim: int = 256
    hidden_dim: int = 128
    group_parameter: int | None = None
    device: str = "auto"
    log_every: int = 100
    paper_order: bool = True
    num_checkpoints: int = 1000
    version: str = field(default=__version__, compare=False)
    route: RouteSpec | None = None
    optimizer: str = "adamw"

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        set_("group", group_spec(self.group, self.group_parameter))
        set_("group_parameter", None)
        set_("model", _normalise_model(self.model))
        set_("seed", check_int("seed", self.seed, low=0, integral_float=True))
        set_("num_epochs", check_int("num_epochs", self.num_epochs, low=1, integral_float=True))
        set_("embed_dim", check_int("embed_dim (layers.embed_dim)", self.embed_dim, low=1, integral_float=True))
        set_("hidden_dim", check_int("hidden_dim (layers.hidden_dim)", self.hidden_dim, low=1, integral_float=True))
        set_("log_every", check_int("log_every", self.log_every, low=1, integral_float=True))
        set_("num_checkpoints", check_int("num_checkpoints", self.num_checkpoints, low=1, integral_float=True))
        frac = check_float("frac_train", self.frac_train)
        if not 0.0 < frac < 1.0:
            raise ValueError(f"frac_train must lie in (0, 1), got frac_train={self.frac_train!r}")
        set_("frac_train", frac)
        lr = check_float("lr", self.lr)
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got lr={self.lr!r}")
        set_("lr", lr)
        wd = check_float("weight_decay", self.weight_decay)
        if not wd >= 0:
            raise ValueError(f"weight_decay must be >= 0, got weight_decay={self.weight_decay!r}")
        set_("weight_decay", wd)
        betas = self.betas
        if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
            raise ValueError(f"betas must be a pair of floats, got betas={betas!r}")
        betas = tuple(check_float("betas", b) for b in betas)
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must each lie in [0, 1), got betas={self.betas!r}")
        set_("betas", betas)
        if not isinstance(self.device, str) or not _DEVICE_RE.match(self.device):
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:<k>' or 'mps', got device={self.device!r}")
        if not isinstance(self.paper_order, bool):
            raise TypeError(f"paper_order must be a bool, got paper_order={self.paper_order!r}")
        if not isinstance(self.version, str):
            raise TypeError(f"version must be a string, got version={self.version!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got optimizer={self.optimizer!r}")
        set_("route", parse_route(self.route, hidden_dim=self.hidden_dim, model=self.model))
        n = spec_order(self.group)  # parsed, never built: validation stays cheap
        if int(frac * n * n) < 1 or int(frac * n * n) >= n * n:
            raise ValueError(f"frac_train={frac} leaves an empty train or test set for group {self.group} "
                             f"({n * n} pairs)")

    # --- derived values -----------------------------------------------------------------------
    @property
    def spec(self) -> str:
        """The group spec, e.g. ``"S5"``."""
        return self.group

    @property
    def model_short(self) -> str:
        """``"MLP"`` | ``"T"`` | ``"B"``."""
        return _MODEL_TO_SHORT[self.model]

    @property
    def layers(self) -> dict[str, int]:
        """The paper's ``layers`` entry: ``{"embed_dim": ..., "hidden_dim": ...}``."""
        return {"embed_dim": self.embed_dim, "hidden_dim": self.hidden_dim}

    @property
    def model_hidden_dim(self) -> int:
        """The model's hidden width: ``hidden_dim`` plus the route's ``expand`` units (if any)."""
        return self.hidden_dim + (self.route.expand if self.route is not None else 0)

    @property
    def run_name(self) -> str:
        """The paper's run directory name, e.g. ``"S5_MLP_seed1"``."""
        return f"{self.spec}_{self.model_short}_seed{self.seed}"

    def replace(self, **changes) -> "RunConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def batch_key(self) -> tuple:
        """Runs with equal keys differ only in seed (and version) and can train in one batch."""
        d = self.to_dict()
        for k in ("seed", "version"):
            d.pop(k)
        d["layers"] = tuple(sorted(d["layers"].items()))
        if "route" in d:
            d["route"] = self.route  # hashable
        return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in d.items()))

    # --- cfg.json -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The ``cfg.json`` dict: the paper's keys (paper group form where it has one) plus ours."""
        d: dict[str, Any] = {
            "lr": self.lr,
            "num_epochs": self.num_epochs,
            "weight_decay": self.weight_decay,
            "betas": list(self.betas),
            "layers": self.layers,
            "model": self.model,
        }
        m = _PAPER_SPEC_RE.match(self.group)
        if m:
            d["group"] = _FAMILY_TO_PAPER[m.group(1)]
            d["group_parameter"] = int(m.group(2))
        else:
            d["group"] = self.group
        d.update(frac_train=self.frac_train, seed=self.seed, device=self.device,
                 log_every=self.log_every, paper_order=self.paper_order, version=self.version)
        if self.num_checkpoints != 1000:  # the paper's schedule stays implicit, so old cfg.json files compare equal
            d["num_checkpoints"] = self.num_checkpoints
        if self.route is not None:
            d["route"] = self.route.to_dict()
        if self.optimizer != "adamw":  # implicit by default, so older cfg.json files compare equal
            d["optimizer"] = self.optimizer
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunConfig":
        """Build from a ``cfg.json`` dict (the paper's or ours); unknown keys are an error naming them."""
        if not isinstance(d, Mapping):
            raise TypeError(f"a run config must be a mapping, got {type(d).__name__}")
        known = {"lr", "num_epochs", "weight_decay", "betas", "layers", "model", "group",
                 "group_parameter", "frac_train", "seed", "device", "log_every", "paper_order",
                 "version", "embed_dim", "hidden_dim", "num_checkpoints", "route", "optimizer"}
        extra = sorted(set(d) & set(PAPER_EXTRA_KEYS))
        if extra:
            warnings.warn(f"run config: ignoring the paper's extra key(s) {extra} "
                          f"({'; '.join(PAPER_EXTRA_KEYS[k] for k in extra)})", stacklevel=2)
            d = {k: v for k, v in d.items() if k not in PAPER_EXTRA_KEYS}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown key(s) in run config: {unknown}; known keys: {sorted(known)}")
        for required in ("group", "model"):
            if required not in d:
                raise ValueError(f"run config is missing the key {required!r}")
        kwargs = {k: v for k, v in d.items() if k not in ("layers",)}
        layers = d.get("layers")
        if layers is not None:
            if not isinstance(layers, Mapping):
                raise ValueError(f"layers must be a mapping with embed_dim and hidden_dim, got layers={layers!r}")
            extra = sorted(set(layers) - {"embed_dim", "hidden_dim"})
            if extra:
                raise ValueError(f"unknown key(s) in layers: {extra}; known: ['embed_dim', 'hidden_dim']")
            for k, v in layers.items():
                if k in kwargs and kwargs[k] != v:
                    raise ValueError(f"{k} given twice with different values: {kwargs[k]!r} and layers.{k}={v!r}")
                kwargs[k] = v
        if "betas" in kwargs and isinstance(kwargs["betas"], list):
            kwargs["betas"] = tuple(kwargs["betas"])
        return cls(**kwargs)


def paper_defaults(spec: str, model: str, *, seed: int = 1, **overrides) -> RunConfig:
    """The paper's hyperparameters for ``(spec, model)`` (the paper's grid), with ``overrides``.

    Shared: AdamW lr 1e-3, weight decay 1, betas (0.9, 0.98), embed 256, hidden 128.  Groups
    outside the paper's grid get frac_train 0.4 and 250k epochs (MLP, bilinear) or 50k (Transformer).
    ``model="WuMLP"`` gives Wu et al.'s recipe instead (:data:`WU_RECIPE`, any group).

    >>> paper_defaults("D59", "T").num_epochs
    100000
    >>> paper_defaults("C4xC6", "MLP", num_epochs=1000).frac_train
    0.4
    """
    model = _normalise_model(model)
    canonical = group_spec(spec)
    frac, epochs = PAPER_GRID.get((canonical, model), (_DEFAULT_FRAC[model], _DEFAULT_EPOCHS[model]))
    base = dict(group=canonical, model=model, seed=seed, frac_train=frac, num_epochs=epochs, lr=1e-3,
                weight_decay=1.0, betas=(0.9, 0.98), embed_dim=256, hidden_dim=128)
    if model == "WuMLP":
        base.update(WU_RECIPE)
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(RunConfig)})
    if unknown:
        raise ValueError(f"unknown RunConfig field(s) in overrides: {unknown}")
    base.update(overrides)
    return RunConfig(**base)


def wu_recipe(spec: str, *, seed: int = 1, architecture: str = "WuMLP", **overrides) -> RunConfig:
    """Wu et al.'s recipe on group ``spec``, with ``overrides``.

    ``architecture="WuMLP"`` (the default): :data:`WU_RECIPE`, the network of their equation trained
    directly (``WuMLP``); the same as ``paper_defaults(spec, "WuMLP", ...)``.  ``architecture="MLP2"``:
    :data:`WU_MLP2_RECIPE`, the paper's MLP with 128-wide embeddings, the form their S5 networks
    were trained in.

    >>> cfg = wu_recipe("S4", seed=2)
    >>> cfg.model, cfg.frac_train, cfg.hidden_dim, cfg.optimizer, cfg.lr, cfg.run_name
    ('WuMLP', 0.4, 128, 'adam', 0.01, 'S4_Wu_seed2')
    >>> cfg = wu_recipe("S5", architecture="MLP2")
    >>> cfg.model, cfg.embed_dim, cfg.hidden_dim, cfg.optimizer, cfg.weight_decay, cfg.num_epochs
    ('OneLayerMLP', 128, 128, 'adam', 0.0002, 2000)
    """
    if architecture == "WuMLP":
        return paper_defaults(spec, "WuMLP", seed=seed, **overrides)
    if architecture == "MLP2":
        recipe = {k: v for k, v in WU_MLP2_RECIPE.items() if k != "model"}
        return paper_defaults(spec, WU_MLP2_RECIPE["model"], seed=seed, **{**recipe, **overrides})
    raise ValueError(f"architecture must be 'WuMLP' or 'MLP2', got {architecture!r}")


# --- validation helpers ---------------------------------------------------------------------------
def group_spec(group: Any, parameter: Any = None) -> str:
    """The canonical spec of a ``cfg.json`` group: a spec (``"S5"``) or the paper's family name with its
    ``group_parameter`` (``"SymmetricGroup"``, 5).  Validated by parsing alone: no Cayley table is built.

    >>> group_spec("DihedralGroup", 59)
    'D59'
    """
    if not isinstance(group, str):
        raise TypeError(f"group must be a string (a spec such as 'S5' or a paper name such as "
                        f"'SymmetricGroup'), got group={group!r}")
    if group in PAPER_GROUP_FAMILIES:
        if parameter is None or isinstance(parameter, bool) or not isinstance(parameter, int):
            raise ValueError(f"group={group!r} needs an integer group_parameter, got group_parameter={parameter!r}")
        spec = f"{PAPER_GROUP_FAMILIES[group]}{parameter}"
    else:
        if parameter is not None:
            raise ValueError(f"group_parameter is only used with the paper's group names "
                             f"{sorted(PAPER_GROUP_FAMILIES)}; got group={group!r} with group_parameter={parameter!r}")
        spec = group
    try:
        return canonical_spec(spec)
    except (ValueError, TypeError) as err:
        raise ValueError(f"unknown group: group={group!r}"
                         f"{'' if parameter is None else f', group_parameter={parameter!r}'} ({err}); the paper's "
                         f"names {sorted(PAPER_GROUP_FAMILIES)} with a group_parameter are accepted too") from None


def _normalise_model(model: Any) -> str:
    if isinstance(model, str):
        if model in MODEL_NAMES:
            return model
        if model in MODEL_SHORT_NAMES:
            return MODEL_SHORT_NAMES[model]
        if model.lower() in _MODEL_ALIASES:
            return _MODEL_ALIASES[model.lower()]
    raise ValueError(f"unknown model: model={model!r}; expected one of {list(MODEL_NAMES)} "
                     f"or their short forms {list(MODEL_SHORT_NAMES)}")


def canonical_model_name(model: Any) -> str:
    """``"OneLayerMLP"`` | ``"Transformer"`` | ``"BilinearNet"`` | ``"WuMLP"`` for a model name in any
    accepted form (``"MLP"``, ``"t"``, ``"Wu"``...); a clear error for anything else."""
    return _normalise_model(model)


def model_short_name(model: Any) -> str:
    """``"MLP"`` | ``"T"`` | ``"B"`` for a model name in any accepted form (``"OneLayerMLP"``, ``"T"``...)."""
    return _MODEL_TO_SHORT[_normalise_model(model)]


def load_config(run_dir: str | os.PathLike) -> RunConfig:
    """The :class:`RunConfig` of ``run_dir/cfg.json`` (a paper cfg.json loads as is)."""
    path = Path(run_dir) / "cfg.json"
    if not path.is_file():
        raise FileNotFoundError(f"no cfg.json in run directory {run_dir} (create one with `rep-theory new`)")
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    try:
        return RunConfig.from_dict(d)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: {err}") from None
