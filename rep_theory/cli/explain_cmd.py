"""``rep-theory subgroups``, ``rho-sets``, ``explain`` and ``universality``: thin wrappers over
:mod:`rep_theory.algebra.subgroups`, :mod:`rep_theory.algebra.rhosets` and :mod:`rep_theory.explain`.

    rep-theory subgroups S5                  # conjugacy classes of subgroups
    rep-theory rho-sets S5                   # smallest rho-set of each irrep
    rep-theory explain RUN_DIR               # RUN_DIR/explain/neurons.csv + summary.json
    rep-theory universality BATCH_DIR        # universality.{csv,md,html} in BATCH_DIR (or --out)
"""

from __future__ import annotations

import argparse

from rep_theory.cli import arguments


def register(subparsers) -> None:
    p = subparsers.add_parser("subgroups", help="print a group's conjugacy classes of subgroups",
                              description="Conjugacy classes of subgroups: order, number of conjugates, "
                                          "isomorphism type, abelian, normal.")
    p.add_argument("spec", help="group spec, e.g. S5, D8, A5")
    p.set_defaults(handler=_subgroups)

    p = subparsers.add_parser("rho-sets", help="print each irrep's smallest rho-set",
                              description="Per irrep: dimension, kind, smallest rho-set size |G|/max|H| "
                                          "and the subgroups H attaining it (Wu et al., ICLR 2025).")
    p.add_argument("spec", help="group spec, e.g. S5")
    p.set_defaults(handler=_rho_sets)

    p = subparsers.add_parser(
        "explain", help="per-neuron coset and rho-set analysis of a trained MLP run",
        description="Writes RUN_DIR/explain/neurons.csv (one row per hidden neuron: irrep, Fourier power, "
                    "rank-one ratios, rho-set size and stabiliser, best coset subgroup, idealisation error) "
                    "and RUN_DIR/explain/summary.json.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory with cfg.json and model.pt (OneLayerMLP)")
    p.add_argument("--threshold", type=float, default=0.9,
                   help="coset concentration / fixed-vector fraction a subgroup must reach (default 0.9)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(handler=_explain)

    p = subparsers.add_parser(
        "universality", help="key-irrep frequency over seeds vs dimension and smallest rho-set",
        description="Reads the evaluated runs of BATCH_DIR (or, when none is evaluated, the key_reps.txt "
                    "of its run directories, e.g. reference/paper_s5_mlp_50) and writes universality.csv, "
                    "universality.md and universality.html.")
    p.add_argument("batch_dir", metavar="BATCH_DIR")
    p.add_argument("--out", metavar="DIR", help="output folder (default BATCH_DIR)")
    p.add_argument("--resamples", type=arguments.positive_int, default=1000, help="bootstrap resamples of the seeds (default 1000)")
    p.add_argument("--seed", type=arguments.non_negative_int, default=0, help="bootstrap RNG seed (default 0)")
    p.set_defaults(handler=_universality)


def _subgroups(args: argparse.Namespace) -> int:
    from rep_theory.algebra.subgroups import format_subgroup_classes

    print(format_subgroup_classes(args.spec))
    return 0


def _rho_sets(args: argparse.Namespace) -> int:
    from rep_theory.algebra.rhosets import format_rho_set_table

    print(format_rho_set_table(args.spec))
    return 0


def _explain(args: argparse.Namespace) -> int:
    from rep_theory.explain.run_explain import explain_run

    csv_path, json_path, _, summary = explain_run(args.run_dir, threshold=args.threshold,
                                                  progress=not args.no_progress)
    n = summary["neurons"]
    print(f"{summary['run']}: {n['live_neurons']} live neurons of {n['hidden']}, {n['rank_one_neurons']} rank one "
          f"(>= {n['rank_one_level']}); loss {n['loss']:.3g}, all neurons idealised {n['loss_all_idealised']:.3g}")
    for irrep, entry in n["irreps"].items():
        print(f"  {irrep}: {entry['neurons']} neurons, {entry['rank_one']} rank one, rho-set sizes {entry['rho_set_sizes']}")
    print(f"wrote {csv_path} and {json_path}")
    return 0


def _universality(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rep_theory.analysis.summaries import collect_runs
    from rep_theory.explain.universality import runs_from_key_reps, universality, write_universality

    runs, pending = collect_runs(args.batch_dir)
    source = "evaluated runs"
    if not runs:
        runs, source = runs_from_key_reps(args.batch_dir), "key_reps files (no evaluated runs)"
    if not runs:
        raise FileNotFoundError(f"{args.batch_dir} has no evaluated runs and no run directories with key_reps.txt")
    results = universality(runs, resamples=args.resamples, seed=args.seed)
    paths = write_universality(results, Path(args.out) if args.out else Path(args.batch_dir))
    for u in results:
        print(f"{u.group} {u.model}{' ' + u.variant if u.variant else ''}: {u.runs} seeds; Spearman(freq, min "
              f"rho-set size) {u.spearman_size[0]:+.3f}, (freq, dim) {u.spearman_dim[0]:+.3f}; monotone in "
              f"min rho-set size: {'yes' if u.monotone_size else 'no'}")
    print(f"from {len(runs)} {source}; wrote {', '.join(str(p) for p in paths)}")
    return 0
