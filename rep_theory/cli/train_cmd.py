"""``rep-theory new`` and ``rep-theory train``: thin wrappers over :mod:`rep_theory.training.train`.

    rep-theory new RUN_DIR --group SPEC --model {MLP,T,B,Wu} --seed K [--recipe {paper,wu}] [--epochs E]
                   [--frac-train F] [--lr X] [--weight-decay X] [--embed-dim E] [--hidden-dim H]
                   [--route-irrep NAME | --route-subgroup NAME --route-units K [--route-expand E] ...]
    rep-theory train RUN_DIR [RUN_DIR ...] [--device D]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rep_theory.cli import arguments
from rep_theory.cli.routing_cmd import add_route_arguments, route_from_args
from rep_theory.training.constants import DEFAULT_RESUME_EVERY_S, MODEL_SHORT_NAMES, Terminated


def register(subparsers) -> None:
    new = subparsers.add_parser(
        "new", help="create a run directory with cfg.json (the paper's hyperparameters by default)",
        description="Create RUN_DIR/cfg.json with the paper's defaults for the group and model; "
                    "refuses to overwrite a different existing cfg.json.")
    new.add_argument("run_dir", metavar="RUN_DIR")
    new.add_argument("--group", required=True, metavar="SPEC", help="group spec, e.g. S5, C113, D59, C4xC6")
    new.add_argument("--model", required=True, choices=sorted(MODEL_SHORT_NAMES), help="MLP, T (transformer), B (bilinear) or Wu (Wu et al.'s MLP and recipe)")
    new.add_argument("--seed", required=True, type=int, metavar="K")
    new.add_argument("--recipe", choices=["paper", "wu"], default=None,
                     help="hyperparameters: the paper's (default; Wu et al.'s for --model Wu), or Wu et al.'s "
                          "(with --model MLP: their S5 networks' form, 128-wide embeddings and Adam)")
    new.add_argument("--epochs", type=int, metavar="E", help="number of full-batch epochs")
    new.add_argument("--frac-train", type=float, metavar="F", help="fraction of pairs used for training")
    new.add_argument("--lr", type=float, metavar="X")
    new.add_argument("--weight-decay", type=float, metavar="X")
    new.add_argument("--embed-dim", type=int, metavar="E")
    new.add_argument("--hidden-dim", type=int, metavar="H")
    add_route_arguments(new)
    new.set_defaults(handler=_new)

    train = subparsers.add_parser(
        "train", help="train or resume run directories (runs differing only in seed train as one batch)",
        description="Train each RUN_DIR, or resume it from its newest resume state; finished runs are skipped.")
    train.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    train.add_argument("--device", type=arguments.device, default=None, metavar="D",
                       help="auto (CUDA when present, else CPU), cpu, cuda, cuda:K; default: each cfg's device")
    train.add_argument("--resume-every", type=arguments.non_negative_float, default=DEFAULT_RESUME_EVERY_S, metavar="SECONDS",
                       help=f"seconds between resume states (default {DEFAULT_RESUME_EVERY_S:g})")
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    train.set_defaults(handler=_train)


def _new(args: argparse.Namespace) -> int:
    from rep_theory.training.config import canonical_model_name, paper_defaults, wu_recipe
    from rep_theory.training.rundir import new_run

    overrides = {k: v for k, v in {
        "num_epochs": args.epochs, "frac_train": args.frac_train, "lr": args.lr,
        "weight_decay": args.weight_decay, "embed_dim": args.embed_dim, "hidden_dim": args.hidden_dim,
        "route": route_from_args(args),
    }.items() if v is not None}
    model = canonical_model_name(args.model)
    if args.recipe == "wu" and model not in ("WuMLP", "OneLayerMLP"):
        print(f"rep-theory new: error: --recipe wu needs --model Wu or MLP, got --model {args.model}", file=sys.stderr)
        return 2
    if args.recipe == "paper" and model == "WuMLP":
        print("rep-theory new: error: --model Wu has Wu et al.'s recipe only; use --recipe wu or leave it out",
              file=sys.stderr)
        return 2
    if args.recipe == "wu":
        architecture = "WuMLP" if model == "WuMLP" else "MLP2"
        cfg = wu_recipe(args.group, seed=args.seed, architecture=architecture, **overrides)
    else:
        cfg = paper_defaults(args.group, args.model, seed=args.seed, **overrides)
    run_dir = new_run(args.run_dir, cfg)
    print(f"{run_dir}/cfg.json: {cfg.run_name}, frac_train {cfg.frac_train}, {cfg.num_epochs} epochs")
    return 0


def _train(args: argparse.Namespace) -> int:
    from rep_theory.training.rundir import run_lock
    from rep_theory.training.train import train_runs

    missing = [d for d in args.run_dirs if not Path(d, "cfg.json").is_file()]
    if missing:
        print(f"rep-theory train: error: no cfg.json in {missing[0]} (create it with `rep-theory new`)",
              file=sys.stderr)
        return 2
    try:
        with run_lock(sorted(set(args.run_dirs))):  # the batch runner's lock: one writer per run
            trained = train_runs(args.run_dirs, device=args.device, progress=not args.no_progress,
                                 resume_every_s=args.resume_every)
    except KeyboardInterrupt as stop:
        detail = str(stop) or "stopped without saving the current epoch; run again to resume"
        terminated = isinstance(stop, Terminated)
        print(f"rep-theory train: {'SIGTERM' if terminated else 'interrupted'}: {detail}", file=sys.stderr)
        return 143 if terminated else 130
    skipped = len(set(args.run_dirs)) - len(trained)
    print(f"trained {len(trained)} run(s)" + (f", {skipped} already finished" if skipped > 0 else ""))
    return 0
