"""``rep-theory lenses``: thin wrapper over :func:`rep_theory.lenses.run_lenses` and
:func:`rep_theory.lenses.batch_lens_table`.

    rep-theory lenses RUN_DIR [--lens L]... [--site S]...   # RUN_DIR/lenses/leaderboard.{csv,html}
    rep-theory lenses BATCH_DIR --table                     # markdown table over a batch's runs
"""

from __future__ import annotations

import argparse

from rep_theory.cli import arguments


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "lenses", help="score interpretability lenses against the irrep ground truth",
        description="Fit interpretability lenses (neuron, random, pca, lib, sae_topk, sae_l1, transcoder, "
                    "scae) on sites of a run's final model and score them against the group's irreps; "
                    "writes RUN_DIR/lenses/leaderboard.csv and leaderboard.html.  With --table, print a "
                    "markdown table over the runs of BATCH_DIR (means over seeds, cross-seed stability).")
    p.add_argument("path", metavar="RUN_DIR|BATCH_DIR", help="a run directory, or a batch directory with --table")
    p.add_argument("--lens", action="append", dest="lenses", metavar="L", help="a lens to run (repeatable; default all)")
    p.add_argument("--site", action="append", dest="sites", metavar="S",
                   help="a site (repeatable; default: embed_left, embed_right, hidden for an MLP; "
                        "resid_mid, mlp_post for a transformer)")
    p.add_argument("--table", action="store_true", help="PATH is a batch directory: print the batch table")
    p.add_argument("--seed", type=int, default=0, help="seed of the stochastic lenses (default 0)")
    p.add_argument("--device", type=arguments.device, default="auto", help="auto (CUDA when present), cpu, cuda, cuda:<k>")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(handler=_lenses)


def _lenses(args: argparse.Namespace) -> int:
    from rep_theory.lenses import batch_lens_table, run_lenses

    if args.table:
        print(batch_lens_table(args.path), end="")
        return 0
    path = run_lenses(args.path, lenses=args.lenses, sites=args.sites, device=args.device, seed=args.seed,
                      progress=not args.no_progress)
    print(f"wrote {path} and {path.with_suffix('.html')}")
    return 0
