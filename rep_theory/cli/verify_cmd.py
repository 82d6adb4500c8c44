"""``rep-theory verify``: thin wrapper over :func:`rep_theory.explain.proofs.verify_run` and
:func:`rep_theory.explain.proofs.verify_table`."""

from __future__ import annotations

import argparse
from pathlib import Path

from rep_theory.cli import arguments


def register(subparsers) -> None:
    from rep_theory.explain.proofs.methods import METHODS

    p = subparsers.add_parser(
        "verify", help="certified lower bounds on a trained MLP's accuracy (compact proofs)",
        description="RUN_DIR: run each --method and write RUN_DIR/verify/<method>.json (bound, seconds, "
                    "fit_seconds, flops, failure counts).  BATCH_DIR --table: print bound, seconds and "
                    "MFLOP per method for every run under BATCH_DIR that has verify/ results.")
    p.add_argument("path", metavar="RUN_DIR|BATCH_DIR")
    p.add_argument("--method", action="append", choices=METHODS, dest="methods",
                   help="verifier to run (repeatable; default: brute, rhoset and fourier)")
    p.add_argument("--device", type=arguments.device, default="cpu", help="where to load the model (the proofs run in float64 on the CPU)")
    p.add_argument("--table", action="store_true", help="print the table of BATCH_DIR instead of verifying")
    p.add_argument("--n-cores", type=_sizes("n_cores"), default=1, metavar="C[,C...]|auto",
                   help="fourier methods: cores per key irrep (default 1); several, or 'auto' (1,2,3,6): "
                        "the cheapest proof within --tol of the best bound, chosen per model")
    p.add_argument("--rank", type=_sizes("rank"), default=16, metavar="R[,R...]|auto",
                   help="fourier methods: rank of the residual bound (default 16); several, or 'auto' "
                        "(4,8,12,16,24): chosen per model as for --n-cores")
    p.add_argument("--tol", type=float, default=0.005,
                   help="with several sizes: bound that may be given up for fewer FLOPs (default 0.005)")
    p.set_defaults(handler=_verify)


def _sizes(name: str):
    """Parser of ``--n-cores``/``--rank`` (an int, a comma-separated list: a search, or ``auto``):
    :func:`~rep_theory.explain.proofs.fourier_search.size_argument`, imported on first use so that
    building the command line does not import torch."""
    def parse(text: str):
        from rep_theory.explain.proofs.fourier_search import size_argument

        return size_argument(name)(text)
    return parse


def _verify(args: argparse.Namespace) -> int:
    from rep_theory.explain.proofs.api import format_verify_table, verify_run, verify_table

    if args.table:
        rows = verify_table(args.path)
        if not rows:
            raise FileNotFoundError(f"no run under {args.path} has verify/ results; run 'rep-theory verify RUN_DIR' first")
        print(format_verify_table(rows))
        stale = [f"{r['run']} ({', '.join(r['stale'])})" for r in rows if r["stale"]]
        if stale:
            print(f"stale, not shown (their model.pt changed since they were verified; run 'rep-theory verify "
                  f"RUN_DIR' again): {'; '.join(stale)}")
        return 0
    if not (Path(args.path) / "model.pt").is_file():
        raise FileNotFoundError(f"{Path(args.path) / 'model.pt'} not found: {args.path} is not a trained run directory")
    options = {"fourier": {"n_cores": args.n_cores, "rank": args.rank}}
    if any(isinstance(v, tuple) for v in (args.n_cores, args.rank)):
        options["fourier"]["tol"] = args.tol
    options["fourier_hybrid"] = options["fourier"]
    methods = args.methods or ["brute", "rhoset", "fourier"]
    for method, r in verify_run(args.path, methods, args.device, fit_options=options).items():
        print(f"{method:>14}: bound {r.bound:.4f}  proof {r.seconds:.3f} s  fit {r.fit_seconds:.3f} s  "
              f"{r.flops / 1e6:.1f} MFLOP  uncertified {r.failures}")
    return 0
