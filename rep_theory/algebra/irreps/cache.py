"""The on-disk cache of group tables and irreps: storage only (filled by
:func:`rep_theory.algebra.irreps.group_irreps` and :func:`rep_theory.algebra.irreps.build_cache`).

Where it lives (the first that applies; read at every call, so it can change at run time):

1. ``$REP_THEORY_CACHE`` if set and non-empty;
2. ``<checkout>/utils/cache/`` when the package runs from a source checkout (the package's parent
   folder holds ``pyproject.toml`` and ``utils/``);
3. the user cache folder: ``$XDG_CACHE_HOME/rep_theory``, else ``~/.cache/rep_theory``.

Layout and key: one file per group spec, ``<dir>/v<FORMAT_VERSION>/<spec>.pt``, written by
:func:`rep_theory.io.save_checked` (atomic, with a sha256 of the payload).  The payload is a dict::

    format_version  int          FORMAT_VERSION
    spec            str          the group's canonical spec, e.g. "S5"
    order           int          n
    table           int16/int32 [n, n]  the Cayley table the irreps were built for
    irreps          list of {"name": str, "kind": str, "matrices": float64 [n, d, d]}
    package_version str

Only groups made from a spec (``get_group``) are cached; groups from ``Group.from_table`` or
``Group.from_permutations`` are always computed.  A file that fails its checksum, does not decode,
or whose table differs from the group's current table is reported with a :class:`CacheWarning`,
rebuilt and rewritten: never a wrong result, never a crash.  A file written by another package
version is rebuilt too (conventions may have changed without a format bump), and irreps are checked
by :func:`rep_theory.algebra.irreps.verify_irreps` before they are written.  Files are safe to delete at any time;
bump :data:`FORMAT_VERSION` whenever conventions or the payload change.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from rep_theory import __version__
from rep_theory.algebra.groups import Group
from rep_theory.algebra.irreps.irrep import Irrep
from rep_theory.algebra.paper_order import PAPER_GROUPS
from rep_theory.io import load_checked, save_checked

__all__ = ["FORMAT_VERSION", "ENV_VAR", "PAPER_SPECS", "CacheWarning", "cache_dir", "cache_path",
           "is_cacheable", "load_irreps", "save_irreps", "cached_irreps"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Part of every cache key; bump it when the payload or any convention behind it changes."""

ENV_VAR = "REP_THEORY_CACHE"
"""Environment variable naming the cache folder."""

PAPER_SPECS = PAPER_GROUPS
"""The groups of the paper's experiments: what ``rep-theory cache build`` fills by default."""


class CacheWarning(UserWarning):
    """A cache file could not be used (corrupt, stale or unwritable); the result was recomputed."""


def cache_dir() -> Path:
    """The cache folder (see the module docstring for the rule); not created here."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser()
    checkout = Path(__file__).resolve().parents[__name__.count(".")]  # the folder holding rep_theory/
    if (checkout / "pyproject.toml").is_file() and (checkout / "utils").is_dir():
        return checkout / "utils" / "cache"
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".cache") / "rep_theory"


def cache_path(spec: str, directory: str | os.PathLike | None = None) -> Path:
    """``<dir>/v<FORMAT_VERSION>/<spec>.pt``: the file holding ``spec``'s table and irreps."""
    if not spec or not spec.isalnum():
        raise ValueError(f"cache keys are group specs such as 'S5' or 'C4xC6', got {spec!r}")
    return Path(directory if directory is not None else cache_dir()) / f"v{FORMAT_VERSION}" / f"{spec}.pt"


def is_cacheable(G: Group) -> bool:
    """True for groups made from a spec (same name and table as ``get_group(G.name)``)."""
    return G.is_spec_group()


def _encode(G: Group, irreps: list[Irrep]) -> dict:
    dtype = torch.int16 if G.order <= torch.iinfo(torch.int16).max else torch.int32
    return {"format_version": FORMAT_VERSION, "spec": G.name, "order": G.order,
            "table": G.table.to(dtype).clone(),
            "irreps": [{"name": r.name, "kind": r.kind, "matrices": r.matrices} for r in irreps],
            "package_version": __version__}


def _decode(payload, G: Group, path: Path) -> list[Irrep]:
    """Irreps from a loaded payload; ``ValueError`` naming what does not match ``G``."""
    if not isinstance(payload, dict):
        raise ValueError(f"{path}: payload is a {type(payload).__name__}, expected a dict")
    if payload.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format version {payload.get('format_version')!r}, expected {FORMAT_VERSION}")
    if payload.get("package_version") != __version__:
        raise ValueError(f"{path}: written by rep-theory {payload.get('package_version')!r}, this is "
                         f"{__version__!r}; rebuilt rather than trusted")
    if payload.get("spec") != G.name or payload.get("order") != G.order:
        raise ValueError(f"{path}: holds {payload.get('spec')!r} of order {payload.get('order')!r}, "
                         f"expected {G.name!r} of order {G.order}")
    table = payload.get("table")
    if not isinstance(table, torch.Tensor) or not np.array_equal(table.numpy(), G.table.numpy()):
        raise ValueError(f"{path}: its Cayley table differs from {G.name}'s current table (stale convention)")
    out = []
    for entry in payload.get("irreps", []):
        m = entry["matrices"]
        if not isinstance(m, torch.Tensor) or m.dtype != torch.float64 or m.ndim != 3 or m.shape[0] != G.order:
            raise ValueError(f"{path}: irrep {entry.get('name')!r} has malformed matrices")
        out.append(Irrep(G, entry["name"], m, entry["kind"]))
    if not out or out[0].name != "trivial":
        raise ValueError(f"{path}: the irrep list is empty or does not start with 'trivial'")
    return out


def load_irreps(G: Group, directory: str | os.PathLike | None = None) -> list[Irrep] | None:
    """The cached irreps of ``G``, or ``None`` if there is no file.

    Raises :class:`rep_theory.io.CorruptFileError` (a ``ValueError``) for a file that fails its
    checksum, and ``ValueError`` for one that cannot be read or does not match ``G``.
    """
    path = cache_path(G.name, directory)
    try:
        payload = load_checked(path)
    except (FileNotFoundError, NotADirectoryError):  # no such file
        return None
    except ValueError:
        raise
    except Exception as err:  # unreadable, or a damaged payload that fails to unpickle
        raise ValueError(f"{path}: cannot be read ({type(err).__name__}: {err})") from err
    return _decode(payload, G, path)


def save_irreps(G: Group, irreps: list[Irrep], directory: str | os.PathLike | None = None) -> Path:
    """Write ``G``'s table and irreps to its cache file (atomically, checksummed); returns the path."""
    if not is_cacheable(G):
        raise ValueError(f"only groups made from a spec are cached, got {G!r}")
    return save_checked(cache_path(G.name, directory), _encode(G, irreps))


def cached_irreps(G: Group, compute: Callable[[], list[Irrep]],
                  verify: Callable[[Group, list[Irrep]], None] | None = None) -> list[Irrep]:
    """``G``'s irreps from the cache, else ``compute()``, ``verify(G, irreps)`` (raises if wrong) and save.

    A cache file that cannot be used triggers a :class:`CacheWarning` and is rewritten; a cache
    folder that cannot be written triggers a :class:`CacheWarning` and the result is still returned.
    """
    path = cache_path(G.name)
    try:
        irreps = load_irreps(G)
    except ValueError as err:
        warnings.warn(f"ignoring the irrep cache file of {G.name} ({err}); rebuilding it",
                      CacheWarning, stacklevel=3)
        irreps = None
    if irreps is not None:
        logger.debug("loaded %d irreps of %s from %s", len(irreps), G.name, path)
        return irreps
    t0 = time.perf_counter()
    irreps = compute()
    if verify is not None:
        verify(G, irreps)
    logger.info("computed %d irreps of %s in %.2f s", len(irreps), G.name, time.perf_counter() - t0)
    try:
        save_irreps(G, irreps)
    except OSError as err:
        warnings.warn(f"could not write the irrep cache file {path} ({err}); continuing without it",
                      CacheWarning, stacklevel=3)
    return irreps
