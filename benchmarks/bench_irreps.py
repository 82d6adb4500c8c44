"""Benchmark: building every irrep, the on-disk cache's size, and warm loads.

    python benchmarks/bench_irreps.py

Prints one line per figure with its target.  Runs against a temporary, empty ``REP_THEORY_CACHE``
folder (removed afterwards), so the numbers are cold-cache numbers.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time


def _line(what: str, value: float, unit: str, target: str) -> None:
    print(f"{what:<58} {value:10.3f} {unit:<3}  (target {target})", flush=True)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="rep_theory_bench_") as folder:
        os.environ["REP_THEORY_CACHE"] = folder
        from rep_theory.algebra.irreps import cache
        from rep_theory.algebra.groups import Group, get_group
        from rep_theory.algebra.irreps import group_irreps, verify_irreps

        print(f"cache folder: {cache.cache_dir()}  (python {sys.version.split()[0]}, "
              f"{os.cpu_count()} CPUs visible)")
        for spec, target in (("S6", "<= 30 s"), ("S7", "<= 600 s"), ("A7", "-")):
            t0 = time.perf_counter()
            G = get_group(spec)
            t1 = time.perf_counter()
            irreps = group_irreps(G)  # empty cache: compute and write
            t2 = time.perf_counter()
            verify_irreps(G, irreps)
            t3 = time.perf_counter()
            _line(f"{spec}: Cayley table ({G.order} elements)", t1 - t0, "s", "-")
            _line(f"{spec}: all {len(irreps)} irreps, empty cache (incl. writing it)", t2 - t1, "s", target)
            _line(f"{spec}: verify_irreps", t3 - t2, "s", "-")
            _line(f"{spec}: cache file size", cache.cache_path(spec).stat().st_size / 1e6, "MB",
                  "<= 50 MB" if spec == "S6" else "-")

        G = get_group("S6")
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            irreps = group_irreps(G)  # warm: served from the file (Group.irreps() would memoise)
            best = min(best, time.perf_counter() - t0)
        assert len(irreps) == 11
        _line("S6: warm-cache load of all 11 irreps (best of 5)", best, "s", "<= 1 s")

        T = Group.from_table(G.table)  # not a spec group: the generic regular-representation route
        t0 = time.perf_counter()
        irreps = group_irreps(T)
        _line(f"S6 as a table group: generic decomposition ({len(irreps)} irreps)", time.perf_counter() - t0,
              "s", "-")
        verify_irreps(T, irreps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
