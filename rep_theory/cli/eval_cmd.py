"""``rep-theory eval`` and ``rep-theory import-paper``: thin wrappers over
:func:`rep_theory.pipeline.reports.evaluate_and_draw` and :func:`rep_theory.pipeline.paper_import.import_paper_run`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rep_theory.analysis.thresholds import KEY_THRESHOLD, ORDER_RULES, ORDER_THRESHOLD
from rep_theory.cli import arguments


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="compute the metrics of every checkpoint of run directories",
        description="Per run directory: metrics.csv (one row per checkpoint), summary_metrics.json "
                    "(final model), irreps.txt, key_reps.txt, key_reps_in_order.txt and figures/. "
                    "Checkpoints already in metrics.csv are skipped.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directory (cfg.json, model.pt, checkpoints/)")
    p.add_argument("--final", action="store_true", help="evaluate only the final model (model.pt)")
    p.add_argument("--key-threshold", type=arguments.finite_float, default=KEY_THRESHOLD,
                   help=f"final logit similarity above which an irrep is key (default {KEY_THRESHOLD})")
    p.add_argument("--order-threshold", type=arguments.finite_float, default=ORDER_THRESHOLD,
                   help=f"similarity at which a key irrep counts as learnt (default {ORDER_THRESHOLD})")
    p.add_argument("--order-rule", choices=ORDER_RULES, default="package",
                   help="learning order: 'package' (first crossing, ties by similarity) or 'paper' (the "
                        "paper's: at most one irrep per checkpoint, in key-irrep order); default package")
    p.add_argument("--device", type=arguments.device, default="auto", help="auto (CUDA when present), cpu, cuda, cuda:<k>")
    p.add_argument("--no-figures", action="store_true", help="do not write figures/")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(handler=_eval)

    p = subparsers.add_parser(
        "import-paper", help="turn a run of the paper's code into a run directory of this package",
        description="Reads PAPER_RUN_DIR/cfg.json and model.pt, reorders S5/S6/A5 weights into the "
                    "package's element order, keeps the paper's train/test split, writes OUT_RUN_DIR.")
    p.add_argument("paper_run_dir", metavar="PAPER_RUN_DIR")
    p.add_argument("out_run_dir", metavar="OUT_RUN_DIR")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT_RUN_DIR/model.pt")
    p.set_defaults(handler=_import_paper)


def _eval(args: argparse.Namespace) -> int:
    from rep_theory.pipeline.reports import evaluate_and_draw
    from rep_theory.training.rundir import run_lock

    for run_dir in args.run_dirs:
        if not Path(run_dir, "cfg.json").is_file():
            raise FileNotFoundError(f"{Path(run_dir, 'cfg.json')} not found: {run_dir} is not a run directory")
        with run_lock([run_dir]):  # the batch runner's lock: one writer per run
            summary = evaluate_and_draw(run_dir, final_only=args.final, key_threshold=args.key_threshold,
                                        order_threshold=args.order_threshold, order_rule=args.order_rule,
                                        device=args.device, figures=not args.no_figures,
                                        progress=not args.no_progress)
        print(f"{run_dir}: test_loss {summary['test_loss']:.3g}, "
              f"restricted loss {summary['total_hidden_restricted_loss']:.3g}, "
              f"logit FVE {summary['percent_logits_explained']:.3f}")
    return 0


def _import_paper(args: argparse.Namespace) -> int:
    from rep_theory.pipeline.paper_import import import_paper_run

    try:
        out = import_paper_run(args.paper_run_dir, args.out_run_dir, overwrite=args.overwrite)
    except FileExistsError as err:
        print(f"rep-theory import-paper: error: {err}", file=sys.stderr)
        return 2
    print(f"imported {args.paper_run_dir} -> {out}")
    return 0
