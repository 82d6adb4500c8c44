"""``rep-theory routing``: the gradient-routing experiment (:mod:`rep_theory.pipeline.routing`).

    rep-theory routing OUT_DIR [--group SPEC] [--irrep NAME] [--subgroup NAME] [--seeds N] [--device D]
                       [--units K] [--expand E] [--mask {unit,activation}] [--epochs E] [--hidden-dim H]
                       [--embed-dim E] [--frac-train F] [--lr X] [--finetune-steps S]

Also the ``--route-*`` options of ``rep-theory new`` (:func:`add_route_arguments`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math

from rep_theory.cli import arguments
from rep_theory.training.route_spec import MASK_MODES, REST_MODES

__all__ = ["register", "add_route_arguments", "route_from_args"]


def add_route_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--route-*`` options of ``rep-theory new`` (gradient routing; see the README's "Gradient routing on group tasks")."""
    g = parser.add_argument_group("gradient routing (optional)")
    target = g.add_mutually_exclusive_group()
    target.add_argument("--route-irrep", metavar="NAME", help="route the target's component in this irrep's "
                        "isotypic subspace to the designated units, the rest to the others")
    target.add_argument("--route-subgroup", metavar="NAME", help="route the pairs in H x H (H: a subgroup by "
                        "name, e.g. A4) to the designated units")
    g.add_argument("--route-units", type=int, metavar="K", help="number of designated units (the last K hidden units)")
    g.add_argument("--route-expand", type=int, default=0, metavar="E", help="hidden units added to hidden_dim (default 0)")
    g.add_argument("--route-mask", choices=MASK_MODES, default="unit", help="unit (in- and out-weights, default) "
                   "or activation (the paper's hidden-activation mask)")
    g.add_argument("--route-rest", choices=REST_MODES, default="all", help="subgroup routes: what the other "
                   "pairs update (default all)")
    g.add_argument("--route-index", type=int, default=0, metavar="I", help="subgroup routes: which subgroup of that name")


def route_from_args(args: argparse.Namespace) -> dict | None:
    """The ``route`` config entry from :func:`add_route_arguments`' options (``None`` without one)."""
    if args.route_irrep is None and args.route_subgroup is None:
        if args.route_units is not None:
            raise ValueError("--route-units needs --route-irrep NAME or --route-subgroup NAME")
        return None
    if args.route_irrep is not None:
        return {"kind": "irrep", "irrep": args.route_irrep, "units": args.route_units,
                "expand": args.route_expand, "mask": args.route_mask}
    return {"kind": "subgroup", "subgroup": args.route_subgroup, "units": args.route_units,
            "expand": args.route_expand, "mask": args.route_mask, "rest": args.route_rest, "index": args.route_index}


def register(subparsers) -> None:
    from rep_theory.pipeline.routing_experiment import RoutingExperiment

    d = RoutingExperiment()
    p = subparsers.add_parser(
        "routing", help="gradient routing: routed vs unrouted MLPs, routed, ablated and measured",
        description="Train routed and unrouted runs of one config over N seeds (seed-batched), ablate the "
                    "designated units and measure: OUT_DIR/routing.csv, routing.md, routing.html. Running "
                    "it again resumes unfinished runs and reuses finished measurements.")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--group", default=d.group, metavar="SPEC", help=f"group spec (default {d.group})")
    p.add_argument("--irrep", default=d.irrep, metavar="NAME", help=f"the routed (and measured) irrep (default {d.irrep})")
    p.add_argument("--subgroup", default=None, metavar="NAME",
                   help="route the pairs of this subgroup instead of the irrep's target component (--irrep is then "
                        "only measured)")
    p.add_argument("--seeds", type=int, default=d.seeds, metavar="N", help=f"seeds 1..N (default {d.seeds})")
    p.add_argument("--device", type=arguments.device, default="auto", metavar="D", help="auto (default), cpu, cuda, cuda:K")
    for name, kind, help_ in (("units", int, "designated units"), ("expand", int, "hidden units added"),
                              ("epochs", int, "training epochs"), ("hidden-dim", int, "hidden units before expansion"),
                              ("embed-dim", int, "embedding width"), ("frac-train", float, "fraction of pairs trained on"),
                              ("lr", float, "AdamW learning rate"),
                              ("finetune-steps", int, "fine-tuning steps after ablation (0: none)")):
        field = {"epochs": "num_epochs"}.get(name, name.replace("-", "_"))
        p.add_argument(f"--{name}", type=kind, default=getattr(d, field), metavar="X",
                       help=f"{help_} (default {getattr(d, field)})")
    p.add_argument("--mask", choices=MASK_MODES, default=d.mask, help=f"masking (default {d.mask})")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(handler=_routing)


def _routing(args: argparse.Namespace) -> int:
    from rep_theory.pipeline.routing import RoutingExperiment, run_routing_experiment

    exp = dataclasses.replace(RoutingExperiment(), group=args.group, irrep=args.irrep, subgroup=args.subgroup,
                              seeds=args.seeds, units=args.units, expand=args.expand, mask=args.mask,
                              num_epochs=args.epochs, hidden_dim=args.hidden_dim, embed_dim=args.embed_dim,
                              frac_train=args.frac_train, lr=args.lr, finetune_steps=args.finetune_steps)
    if exp.finetune_steps < 0:
        raise ValueError(f"--finetune-steps must be >= 0, got {exp.finetune_steps}")
    rows = run_routing_experiment(args.out_dir, exp, device=args.device, progress=not args.no_progress)

    def mean(rs, key):  # over the seeds where the value is defined (ratios are NaN for non-key irreps)
        vals = [float(r[key]) for r in rs if r.get(key) is not None and not math.isnan(float(r[key]))]
        return f"{sum(vals) / len(vals):.3f} ({len(vals)} seeds)" if vals else "undefined"

    for arm in ("routed", "unrouted"):
        rs = [r for r in rows if r["arm"] == arm]
        print(f"{arm}: localisation mean {mean(rs, 'localisation')} (chance {rs[0]['chance']:.3f}), "
              f"ablated similarity ratio mean {mean(rs, 'ablated_similarity_ratio')}, "
              f"test acc {mean(rs, 'test_acc')} -> ablated {mean(rs, 'ablated_test_acc')}")
    print(f"wrote {args.out_dir}/routing.csv, routing.md, routing.html")
    return 0
