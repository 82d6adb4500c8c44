"""Which construction serves which group, the cache in front of it, and the cache commands."""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path
from typing import Iterable

from rep_theory.algebra.groups import Group, get_group
from rep_theory.algebra.irreps import cache
from rep_theory.algebra.irreps.decompose import regular_irreps
from rep_theory.algebra.irreps.families import (alternating_irreps, cyclic_irreps, dihedral_irreps,
                                                product_irreps, symmetric_irreps)
from rep_theory.algebra.irreps.irrep import Irrep
from rep_theory.algebra.irreps.verify import verify_irreps

__all__ = ["compute_irreps", "group_irreps", "build_cache", "verify_cache"]

_FAMILY_CONSTRUCTIONS = {"C": cyclic_irreps, "D": dihedral_irreps, "S": symmetric_irreps, "A": alternating_irreps}


def compute_irreps(G: Group, *, use_cache: bool = True) -> list[Irrep]:
    """Build every real irrep of ``G`` (no on-disk cache for ``G`` itself; factors of a product may
    use it when ``use_cache``)."""
    if not G.is_spec_group():
        return regular_irreps(G)
    factors = G.name.split("x")
    if len(factors) > 1:
        return product_irreps(G, [group_irreps(get_group(f), use_cache=use_cache) for f in factors])
    m = re.fullmatch(r"(C|D|S|A)(\d+)", G.name)
    if m is None:
        return regular_irreps(G)
    return _FAMILY_CONSTRUCTIONS[m.group(1)](G, int(m.group(2)))


def group_irreps(G: Group, *, use_cache: bool = True) -> list[Irrep]:
    """Every real irrep of ``G``, trivial first, in the documented deterministic order.

    Groups made from a spec are served from (and saved to, after :func:`verify_irreps`) the on-disk
    cache of :mod:`rep_theory.algebra.irreps.cache` when ``use_cache``; other groups are always
    computed.  :meth:`Group.irreps` memoises the result per group object.
    """
    if use_cache and G.is_spec_group():
        return cache.cached_irreps(G, lambda: compute_irreps(G, use_cache=use_cache), verify_irreps)
    return compute_irreps(G, use_cache=use_cache)


def build_cache(specs: Iterable[str] = cache.PAPER_SPECS, *, force: bool = False,
                progress: bool = False) -> list[dict]:
    """Fill the cache for ``specs``: load-and-verify, or compute-verify-write.

    Returns one ``{"spec", "path", "source": "cache" | "computed", "seconds", "n_irreps", "bytes"}`` per
    spec.  A cached file that fails :func:`verify_irreps` is recomputed.
    """
    from tqdm.auto import tqdm

    report = []
    for spec in tqdm(list(specs), desc="cache build", unit="group", disable=not progress):
        t0 = time.perf_counter()
        G = get_group(spec)
        path = cache.cache_path(G.name)
        irreps, source = None, "cache"
        if not force:
            try:
                irreps = cache.load_irreps(G)
                if irreps is not None:
                    verify_irreps(G, irreps)
            except ValueError as err:
                warnings.warn(f"cache file {path} is unusable ({err}); rebuilding it", cache.CacheWarning,
                              stacklevel=2)
                irreps = None
        if irreps is None:
            source = "computed"
            irreps = compute_irreps(G)
            verify_irreps(G, irreps)
            cache.save_irreps(G, irreps)
        report.append({"spec": G.name, "path": str(path), "source": source, "n_irreps": len(irreps),
                       "seconds": time.perf_counter() - t0, "bytes": path.stat().st_size})
    return report


def verify_cache(directory: str | None = None, *, progress: bool = False) -> list[dict]:
    """Re-check every cache file of the current format: checksum, table, and :func:`verify_irreps`.

    Returns one ``{"path", "spec", "ok": bool, "message"}`` per file (an empty list for an empty cache).
    """
    from tqdm.auto import tqdm

    folder = Path(directory if directory is not None else cache.cache_dir()) / f"v{cache.FORMAT_VERSION}"
    files = sorted(folder.glob("*.pt")) if folder.is_dir() else []
    results = []
    for path in tqdm(files, desc="cache verify", unit="file", disable=not progress):
        spec = path.stem
        try:
            G = get_group(spec)
            if G.name != spec:
                raise ValueError(f"{path}: file name {spec!r} is not a canonical spec (expected {G.name!r})")
            irreps = cache.load_irreps(G, directory)
            verify_irreps(G, irreps)
            results.append({"path": str(path), "spec": spec, "ok": True,
                            "message": f"{len(irreps)} irreps verified"})
        except (ValueError, TypeError, RuntimeError) as err:
            results.append({"path": str(path), "spec": spec, "ok": False, "message": str(err)})
    return results
