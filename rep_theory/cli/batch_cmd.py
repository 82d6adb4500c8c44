"""``rep-theory create | batch | tables | figures | demo``: many runs at once, and the demo.

Each handler is one library call (``rep_theory.pipeline.runner``, ``rep_theory.analysis.summaries``,
``rep_theory.analysis.batch_figures``, ``rep_theory.pipeline.demo``) plus printing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rep_theory.cli import arguments
from rep_theory.pipeline.presets import PRESETS

_STAGES = ("train", "evaluate", "figures", "tables")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "create", help="create the run directories of a grid in a batch directory",
        description="Create one run directory (cfg.json) per (group, model, seed, variant) of a "
                    "grid. Idempotent: existing run directories are kept as they are.")
    p.add_argument("batch_dir", type=Path, help="batch directory (created if missing)")
    p.add_argument("--grid", default="paper",
                   help="grid name (paper, paper-s5-50, paper-width, smoke) or a JSON grid file "
                        "(schema: the README's Grids section)")
    p.add_argument("--only", type=arguments.regex, default=None, help="regular expression: create only matching run names")
    p.set_defaults(handler=_create)

    p = subparsers.add_parser(
        "batch", help="train, evaluate and tabulate every run of a batch directory",
        description="Train every pending run (seed groups batched in one job), evaluate every "
                    "checkpoint, then write the batch's figures and tables. Skips what is "
                    "complete, resumes what was interrupted, retries what failed. Exit status: "
                    "number of failed runs (at most 100).")
    p.add_argument("batch_dir", type=Path)
    p.add_argument("--only", type=arguments.regex, default=None, help="regular expression over run names")
    p.add_argument("--final-only", action="store_true",
                   help="evaluate only the final model (no per-checkpoint metrics, no learning order)")
    p.add_argument("--device", type=arguments.device_name, default="auto",
                   help="auto (CUDA when present), cpu, cuda, cuda:1, ... (checked where each job runs)")
    p.add_argument("--jobs", type=arguments.positive_int, default=1,
                   help="jobs run in parallel (worker processes; local backend)")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local (this machine; --jobs processes) or ray (one Ray task per job; "
                        "needs pip install \".[ray]\"; see the README's Ray section)")
    p.add_argument("--address", default=None,
                   help="Ray cluster address (HOST:6379, auto, ray://HOST:10001); default: "
                        "$RAY_ADDRESS or a cluster running here, else a new local one")
    p.add_argument("--gpus-per-job", type=float, default=None,
                   help="GPUs per Ray job, in [0, 1] (0.25 packs 4 jobs per GPU); default 1 "
                        "when the cluster has GPUs, else 0")
    p.add_argument("--retries", type=arguments.non_negative_int, default=1, help="retries of a failed job")
    p.add_argument("--no-figures", action="store_true", help="skip the batch figures")
    p.add_argument("--stage", action="append", choices=_STAGES, default=None,
                   help="run only this stage (repeatable; default: all four in order)")
    p.add_argument("--status", action="store_true",
                   help="only print each run's state (created/trained/evaluated, failures)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (e.g. for a log file)")
    p.set_defaults(handler=_batch)

    p = subparsers.add_parser(
        "tables", help="the paper's tables from a batch directory",
        description="Per-run and per-group tables (CSV, LaTeX, Markdown) in the paper's format, "
                    "and a comparison with the paper's values, written to BATCH_DIR/tables/.")
    p.add_argument("batch_dir", type=Path)
    p.add_argument("--out", type=Path, default=None, help="output folder (default BATCH_DIR/tables)")
    p.add_argument("--only", type=arguments.regex, default=None, help="regular expression over run names")
    p.set_defaults(handler=_tables)

    p = subparsers.add_parser(
        "figures", help="figures over the runs of a batch directory",
        description="Irrep frequency across seeds, key irreps per seed, learning order against "
                    "irrep dimension, training curves of all seeds, per-neuron irreps (HTML).")
    p.add_argument("batch_dir", type=Path)
    p.add_argument("--out", type=Path, default=None, help="output folder (default BATCH_DIR/figures)")
    p.add_argument("--only", type=arguments.regex, default=None, help="regular expression over run names")
    p.add_argument("--paper", action="store_true",
                   help="draw the paper's 132 runs (shipped reference data) instead of BATCH_DIR's")
    p.set_defaults(handler=_figures)

    p = subparsers.add_parser(
        "demo", help="train a small group to grokking and explain what the network learned",
        description="Train a small network until it groks, evaluate it, and write a "
                    "self-contained report (DIR/report_<run>.html) with a plain-language verdict. "
                    "A demo run's checkpoint schedule asks for 200 log-spaced epochs: 144 distinct ones in the "
                    "default 3000-epoch run (the paper's runs ask for 1000: 728 in 250k epochs).")
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default demo_out)")
    p.add_argument("--preset", default="default", choices=sorted(PRESETS),
                   help="; ".join(f"{name}: {preset.description}" for name, preset in PRESETS.items()))
    p.add_argument("--group", default=None,
                   help="group spec (default: the preset's; small groups get the fraction of pairs "
                        "they need to grok, see the README)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the preset's)")
    p.add_argument("--frac-train", type=float, default=None,
                   help="fraction of the pairs to train on (default: the preset's or the group's)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", type=arguments.device, default="auto")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (e.g. for a log file)")
    p.set_defaults(handler=_demo)


def _create(args: argparse.Namespace) -> int:
    from rep_theory.pipeline.grids import create_batch
    created, existing = create_batch(args.batch_dir, args.grid, only=args.only)
    print(f"{args.batch_dir}: created {len(created)} run(s), kept {len(existing)} existing")
    return 0


def _batch(args: argparse.Namespace) -> int:
    from rep_theory.pipeline.runner import batch_status, run_batch
    if args.status:
        status = batch_status(args.batch_dir, only=args.only, final_only=args.final_only)
        for name, info in status.items():
            failure = info["failure"]
            note = f"  ({info['reason']})" if info.get("reason") else ""
            note += f"  (last failure: {failure.get('error', '')})" if failure else ""
            print(f"{name:40s} {info['state']}{note}")
        return 0
    backend = None
    if args.backend == "ray":
        from rep_theory.pipeline.ray_backend import RayBackend
        backend = RayBackend(args.address, gpus_per_job=args.gpus_per_job)
    elif args.address is not None or args.gpus_per_job is not None:
        raise ValueError("--address and --gpus-per-job need --backend ray")
    try:
        report = run_batch(args.batch_dir, only=args.only, final_only=args.final_only,
                           device=args.device, jobs=args.jobs, retries=args.retries,
                           stages=tuple(args.stage or _STAGES), figures=not args.no_figures,
                           progress=not args.no_progress, backend=backend)
    finally:
        if backend is not None:
            backend.close()
    print(report.summary())
    return min(len(report.failed), 100)


def _tables(args: argparse.Namespace) -> int:
    from rep_theory.analysis.tables import write_tables
    written = write_tables(args.batch_dir, args.out, only=args.only)
    print(f"wrote {len(written)} table files to {Path(written['tables.md']).parent}")
    return 0


def _figures(args: argparse.Namespace) -> int:
    from rep_theory.analysis.summaries import paper_runs
    from rep_theory.analysis.batch_figures import write_figures
    written = write_figures(args.batch_dir, args.out, only=args.only,
                            runs=paper_runs() if args.paper else None)
    folder = args.out or args.batch_dir / "figures"
    print(f"wrote {len(written)} figure files to {folder}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from rep_theory.pipeline.demo import run_demo

    result = run_demo(args.out, preset=args.preset, group=args.group, epochs=args.epochs, seed=args.seed,
                      frac_train=args.frac_train, device=args.device, progress=not args.no_progress)
    print(result.text)
    return 0
