"""Train Wu et al.'s MLPs (``WuMLP``, the ``wu_recipe``) seed-batched on the CPU and run every verifier on them.

Per group (``--groups``, default S4 A4): ``--seeds`` seeds (default 100) trained together in memory
with :func:`rep_theory.training.config.wu_recipe` (``--architecture WuMLP`` or ``MLP2``; ``--epochs``,
``--frac-train`` override it), then
each verifier of ``--methods`` (default: all of :data:`rep_theory.explain.proofs.METHODS`) on each
final model.  Soundness is asserted: every pair a verifier certifies is correct by brute force.

Printed per group and method: models with bound >= 0.95 (number and fraction), the median bound,
the median of ``seconds(method) / seconds(brute)`` per model (proof seconds, best of ``--repeats``)
and the median FLOP ratio; per group the number of models that generalised (exact accuracy >= 99%
over all pairs; the test accuracy of the training log is printed too).  Per-model rows go to
``--out`` (JSON), rewritten after every model, so a run cut short keeps what it finished.

Run: ``python benchmarks/bench_verify_wu.py [--groups S4 A4] [--seeds 100] [--repeats 3] [--threads 1]``;
``--cache DIR`` keeps the trained models and reuses them on the next run (same configs only), so the
verifiers can be timed again, e.g. with another ``--verify-threads``, without training again.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from rep_theory.algebra.groups import get_group
from rep_theory.explain.proofs import METHODS, verify
from rep_theory.explain.proofs.fourier_search import add_size_arguments
from rep_theory.training.config import wu_recipe
from rep_theory.io import atomic_write_json, load_checked, save_checked
from rep_theory.training.models import make_model
from rep_theory.training.train import fit

ROOT = Path(__file__).resolve().parents[1]
GENERALISED = 0.99


def write_rows(args, rows: list[dict], wall: float) -> Path:
    """Write the rows so far to ``--out`` (atomically: a run cut short keeps every finished model)."""
    return atomic_write_json(args.out, {"args": vars(args), "wall_seconds": wall, "machine": platform.platform(),
                                        "threads": args.threads, "verify_threads": args.verify_threads or args.threads,
                                        "rows": rows}, indent=1)


def run_group(spec: str, args, done: list[dict] = (), t_start: float = 0.0) -> list[dict]:
    G = get_group(spec)
    overrides = {"device": args.device, "log_every": 1000}
    if args.epochs is not None:
        overrides["num_epochs"] = args.epochs
    if args.frac_train is not None:
        overrides["frac_train"] = args.frac_train
    cfg = wu_recipe(spec, architecture=args.architecture, **overrides)
    cfgs = [cfg.replace(seed=s) for s in range(1, args.seeds + 1)]
    cached = Path(args.cache) / f"{cfg.spec}_{cfg.model}_{cfg.num_epochs}_{cfg.frac_train}_{args.seeds}.pt" if args.cache else None
    t0 = time.perf_counter()
    if cached is not None and cached.is_file():
        saved = load_checked(cached)
        if saved["configs"] != [c.replace(device="cpu").to_dict() for c in cfgs]:
            raise SystemExit(f"{cached} holds models of other configs; delete it or pick another --cache")
        models = [make_model(c.model, G.order, embed_dim=c.embed_dim, hidden_dim=c.hidden_dim) for c in cfgs]
        for model, state in zip(models, saved["states"]):
            model.load_state_dict(state)
        logs = saved["logs"]
        print(f"{spec} {cfg.model}: {args.seeds} trained models loaded from {cached}", flush=True)
    else:
        models, logs = fit(cfgs, device=args.device, progress=True)
        print(f"{spec} {cfg.model}: trained {args.seeds} seeds x {cfg.num_epochs} epochs (frac_train {cfg.frac_train}, "
              f"{cfg.optimizer} lr {cfg.lr} wd {cfg.weight_decay}) in {time.perf_counter() - t0:.1f} s", flush=True)
        if cached is not None:
            save_checked(cached, {"configs": [c.replace(device="cpu").to_dict() for c in cfgs], "logs": logs,
                                  "states": [{k: v.detach().cpu() for k, v in m.state_dict().items()} for m in models]})
    torch.set_num_threads(args.verify_threads or args.threads)
    rows = []
    for seed, model, log in tqdm(list(zip(range(1, args.seeds + 1), models, logs)), desc=f"verify {spec}"):
        model = model.cpu()
        brute = None
        row = {"group": spec, "seed": seed, "num_epochs": cfg.num_epochs, "frac_train": cfg.frac_train,
               "test_acc": log[-1]["test_acc"], "train_acc": log[-1]["train_acc"], "methods": {}}
        for m in ["brute"] + [x for x in args.methods if x != "brute"]:
            opts = {"n_cores": args.n_cores, "rank": args.rank} if m.startswith("fourier") else {}
            runs = [verify(model, G, method=m, **opts) for _ in range(args.repeats)]
            r = min(runs, key=lambda v: v.seconds)
            if m == "brute":
                brute = r
                row["accuracy"] = r.bound
            unsound = r.certified_mask & ~brute.certified_mask
            assert not bool(unsound.any()), f"{spec} seed {seed} {m}: certified {int(unsound.sum())} wrong pairs"
            if m in args.methods:
                row["methods"][m] = {"bound": r.bound, "seconds": r.seconds, "fit_seconds": r.fit_seconds,
                                     "flops": r.flops, "failures": r.failures}
                if m.startswith("fourier"):
                    row["methods"][m]["size"] = [r.details["n_cores"], r.details["rank"]]
        rows.append(row)
        write_rows(args, [*done, *rows], time.perf_counter() - t_start)   # after every model
    return rows


def summarise(rows: list[dict], methods) -> None:
    spec = rows[0]["group"]
    n = len(rows)
    gen = sum(r["accuracy"] >= GENERALISED for r in rows)
    gen_test = sum(r["test_acc"] >= GENERALISED for r in rows)
    print(f"\n{spec}: {n} models; generalised (exact accuracy >= {GENERALISED:.0%}): {gen} ({gen / n:.0%}); "
          f"test accuracy >= {GENERALISED:.0%}: {gen_test}; median exact accuracy "
          f"{statistics.median(r['accuracy'] for r in rows):.4f}")
    print(f"{'method':<16}{'bound>=0.95':>13}{'frac':>7}{'median bound':>14}{'time/brute':>12}{'FLOP/brute':>12}")
    for m in methods:
        b = [r["methods"][m]["bound"] for r in rows]
        good = sum(v >= 0.95 for v in b)
        tr = statistics.median(r["methods"][m]["seconds"] / r["methods"]["brute"]["seconds"] for r in rows)
        fr = statistics.median(r["methods"][m]["flops"] / r["methods"]["brute"]["flops"] for r in rows)
        print(f"{m:<16}{good:>13}{good / n:>7.2f}{statistics.median(b):>14.4f}{tr:>12.2f}{fr:>12.3f}")
    for m in methods:
        won = [r for r in rows if r["methods"][m]["bound"] >= 0.95]
        if m != "brute" and won:
            print(f"  {m} on its {len(won)} models with bound >= 0.95: median time / brute "
                  f"{statistics.median(r['methods'][m]['seconds'] / r['methods']['brute']['seconds'] for r in won):.2f}, "
                  f"FLOP / brute {statistics.median(r['methods'][m]['flops'] / r['methods']['brute']['flops'] for r in won):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", nargs="+", default=["S4", "A4"])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--architecture", default="WuMLP", choices=["WuMLP", "MLP2"],
                        help="WuMLP: WU_RECIPE (the network of their equation); MLP2: WU_MLP2_RECIPE (the paper's MLP, "
                             "128-wide embeddings: the form of their S5 networks)")
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's num_epochs")
    parser.add_argument("--frac-train", type=float, default=None, help="override the recipe's frac_train (0.4)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (training, and verifying unless "
                        "--verify-threads)")
    parser.add_argument("--verify-threads", type=int, default=None, help="torch threads for the verifiers")
    parser.add_argument("--cache", default=None, metavar="DIR",
                        help="keep the trained models here (a checked file per group and recipe) and reuse them")
    add_size_arguments(parser)
    parser.add_argument("--device", default="cpu", help="where to train (cuda: seed-batched on the GPU); "
                        "the proofs always run in float64 on the CPU")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "verify_wu.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if "brute" not in args.methods:
        args.methods = ["brute"] + args.methods
    t0 = time.perf_counter()
    all_rows = []
    for spec in args.groups:
        rows = run_group(spec, args, all_rows, t0)
        summarise(rows, args.methods)
        all_rows.extend(rows)
    wall = time.perf_counter() - t0
    out = write_rows(args, all_rows, wall)
    print(f"\nwall {wall:.0f} s; rows written to {out}")


if __name__ == "__main__":
    main()
