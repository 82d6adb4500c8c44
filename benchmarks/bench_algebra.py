"""Benchmark: S6 subgroups (cold and from the disk cache), the S6 Fourier transform of a [720, 128]
batch, and S6 coset concentration over every subgroup.

    python benchmarks/bench_algebra.py

Prints one line per figure with its target.  Runs against a temporary, empty ``REP_THEORY_CACHE``
folder (removed afterwards); the S6 irreps are built into it first and not timed here (see
``bench_irreps.py``).  Fourier timings are the best of 5 repeats.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time


def _line(what: str, value: float, unit: str, target: str) -> None:
    print(f"{what:<58} {value:10.3g} {unit:<3}  (target {target})", flush=True)


def _best(fn, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="rep_theory_bench_") as folder:
        os.environ["REP_THEORY_CACHE"] = folder
        import torch

        from rep_theory.algebra import fourier as ft
        from rep_theory.algebra import subgroups as sg
        from rep_theory.algebra.groups import get_group

        print(f"cache folder: {folder}  (python {sys.version.split()[0]}, torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs visible)")
        G = get_group("S6")
        G.irreps()

        t0 = time.perf_counter()
        subs = sg.subgroups(G)
        t1 = time.perf_counter()
        _line(f"S6: all {len(subs)} subgroups, empty cache (incl. writing it)", t1 - t0, "s", "< 60 s")
        sg._MEMO.clear()  # drop the in-memory memo so the next call reads the file
        t0 = time.perf_counter()
        sg.subgroups(G)
        _line("S6: all subgroups from the disk cache", time.perf_counter() - t0, "s", "-")
        sg._MEMO.clear()
        t0 = time.perf_counter()
        sg.subgroups(G, use_cache=False)
        _line("S6: all subgroups, no cache", time.perf_counter() - t0, "s", "-")

        f = torch.randn(720, 128, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        ft.fourier(G, f)  # stack the irreps once
        fhat = ft.fourier(G, f)
        _line("S6: fourier of [720, 128] (float64, best of 5)", _best(lambda: ft.fourier(G, f)), "s", "< 1 s")
        _line("S6: inverse_fourier of [720, 128]", _best(lambda: ft.inverse_fourier(G, fhat)), "s", "< 1 s")
        _line("S6: fourier_power of [720, 128]", _best(lambda: ft.fourier_power(G, f)), "s", "-")
        err = float((ft.inverse_fourier(G, fhat) - f).abs().max())
        _line("S6: round-trip max abs error", err, "", "< 1e-10")
        t0 = time.perf_counter()
        sg.coset_concentration(G, f, side="left")
        _line(f"S6: coset_concentration of [720, 128], {len(subs)} subgroups", time.perf_counter() - t0, "s", "-")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
