"""Benchmark the compact proofs on the paper's 50 S5 MLPs (``reference/paper_s5_mlp_50``); prints its figures.

Per model and method (:func:`rep_theory.explain.proofs.verify`): the bound, proof seconds (best of
``--repeats``), fitting seconds and FLOPs; checks every bound against brute force (soundness:
every certified pair is correct).  Then per method: the fraction of models with bound >= 95%, the
median bound, the median proof time as a fraction of brute force's on the same model, and the
median FLOPs as a fraction of brute force's.  Published record (Wu, Jaburi, Drori and Gross,
ICLR 2025): on 100 S5 MLPs the rho-set verifier gave >= 95% on 45% of them at 30% of brute force's time.

Diagnostic (not a proof; costs a brute-force pass): the fraction of pairs on which the network's
*true* margin deviation from the fitted symmetric rho-set ideal is below the ideal margin, i.e. what a
perfectly tight deviation bound would certify with this interpretation.

``--floor``: also times, per model, the two steps no Fourier proof can skip (building the hidden
layer and its one product with the explanation's functionals, in the proof's layout) and prints
their median share of brute force's time: a lower limit of ``fourier``'s time ratio.

Run: ``python benchmarks/bench_verify.py [--seeds 50] [--repeats 1] [--methods brute gcr coset rhoset hybrid fourier fourier_hybrid] [--floor]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

import rep_theory.algebra  # noqa: F401
from rep_theory.algebra.groups import get_group
from rep_theory.explain.proofs import METHODS, verify
from rep_theory.explain.proofs.core import mlp_matrices
from rep_theory.explain.proofs.fourier_proof import fit_fourier, fourier_certificate, hidden_block_rows
from rep_theory.explain.proofs.fourier_search import add_size_arguments, is_search
from rep_theory.explain.proofs.rhofit import fit_rhoset
from rep_theory.explain.proofs.rhoset import ideal_table
from rep_theory.pipeline.paper_import import reorder_paper_state_dict
from rep_theory.training.models import make_model

ROOT = Path(__file__).resolve().parents[1]
BATCH = ROOT / "reference" / "paper_s5_mlp_50"


def load(seed: int, G):
    state = torch.load(BATCH / f"S5_MLP_seed{seed}" / "model.pt", map_location="cpu", weights_only=True)
    model = make_model("OneLayerMLP", G.order)
    model.load_state_dict(reorder_paper_state_dict(state, G))
    return model


def oracle_fraction(model, G) -> float:
    """Fraction of pairs whose true margin deviation from the symmetric ideal is below its margin."""
    L, R, U = mlp_matrices(model)
    interp = fit_rhoset(G, L, R, U)
    Phi = ideal_table(G, interp)
    M = float(Phi[0] - Phi[1:].max())
    n = G.order
    tab, inv = G.table, G.inverses
    good = 0
    for x in range(n):
        logits = torch.relu(L[x] + R) @ U.T                                 # [y, z]
        g = tab[tab[inv[x]][None, :].expand(n, n), inv[:, None].expand(n, n)]   # [y, z] = x^-1 z y^-1
        dev = logits - Phi[g]
        star = dev.gather(1, tab[x][:, None])
        good += int(((star - dev).abs().max(1).values < M).sum())
    return good / (n * n)


def fourier_floor(model, G, repeats: int, **options) -> tuple[float, float, int]:
    """Seconds (best of ``repeats``) of the two steps no Fourier proof can skip: building the hidden
    layer ``[m, pairs]`` and the one product with its ``sum_K d^2 + rank`` functionals; and that row count.

    Everything else the proof does (the residual's norm, the per-pair algebra, the minimum over
    ``g``) comes on top, so ``(hidden + product) / brute`` is a lower limit of its time ratio.
    """
    L, R, U = mlp_matrices(model)
    n, m = L.shape
    Wt = fourier_certificate(G, U, fit_fourier(G, L, R, U, **options)).weights.T.contiguous()   # [rows, m]
    LT, RT = L.T.contiguous(), R.T.contiguous()
    inner = hidden_block_rows(n, m)                                         # the proof's blocks of x rows
    P = torch.empty((Wt.shape[0], n * n), dtype=torch.float64)

    def build(product: bool) -> float:
        t0 = time.perf_counter()
        for s in range(0, n, inner):
            t = min(n, s + inner)
            hT = torch.add(LT[:, s:t, None], RT[:, None, :]).clamp_(min=0)   # [m, x, y], in cache
            if product:
                torch.mm(Wt, hT.reshape(m, -1), out=P[:, s * n:t * n])
        return time.perf_counter() - t0

    hidden_s = min(build(False) for _ in range(repeats))
    product_s = max(0.0, min(build(True) for _ in range(repeats)) - hidden_s)
    return hidden_s, product_s, Wt.shape[0]


def write_plot(rows: list, methods: list, path: str) -> None:
    """Bound against FLOPs and against time (both relative to brute force), one point per model and
    method: the length-vs-tightness picture of Gross et al. (a self-contained HTML file)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.06,
                        subplot_titles=("proof FLOPs / brute force", "proof time / brute force"))
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
    for i, m in enumerate(x for x in methods if x != "brute"):
        text = [f"seed {r['seed']}" for r in rows]
        for col, key in ((1, "flops"), (2, "seconds")):
            fig.add_trace(go.Scatter(x=[getattr(r[m], key) / getattr(r["brute"], key) for r in rows],
                                     y=[r[m].bound for r in rows], mode="markers", name=m, legendgroup=m,
                                     showlegend=col == 1, text=text,
                                     marker={"size": 7, "opacity": 0.7, "color": palette[i % len(palette)]}),
                          row=1, col=col)
    fig.add_trace(go.Scatter(x=[0.3], y=[0.95], mode="markers", name="Wu et al. 2025: 45% of models >= 0.95 at 0.3x time",
                             marker={"symbol": "star", "size": 14, "color": "black"}), row=1, col=2)
    for col, axis in ((1, "x"), (2, "x2")):
        fig.add_shape(type="line", xref=f"{axis} domain", x0=0, x1=1, yref="y", y0=0.95, y1=0.95,
                      line={"dash": "dot", "color": "grey", "width": 1})
        fig.update_xaxes(type="log", row=1, col=col)
    fig.update_yaxes(title_text="certified accuracy bound", range=[-0.02, 1.02], row=1, col=1)
    fig.update_layout(title=f"Compact proofs on {len(rows)} S5 MLPs", template="simple_white", height=480)
    fig.write_html(path, include_plotlyjs=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (the same for every method)")
    parser.add_argument("--no-oracle", action="store_true", help="skip the rho-set diagnostic (a brute-force pass)")
    add_size_arguments(parser)
    parser.add_argument("--floor", action="store_true",
                        help="also time the fourier proof's unavoidable steps (hidden layer, one product) against brute force")
    parser.add_argument("--plot", default=None, metavar="FILE.html",
                        help="also write the proof-length vs tightness plot (one point per model and method)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    G = get_group("S5")
    methods = ["brute"] + [m for m in args.methods if m != "brute"]
    rows = []
    start = time.perf_counter()
    for seed in tqdm(range(1, args.seeds + 1), desc="S5 MLPs"):
        model = load(seed, G)
        row = {"seed": seed}
        for m in methods:
            opts = {"n_cores": args.n_cores, "rank": args.rank} if m.startswith("fourier") else {}
            runs = [verify(model, G, method=m, **opts) for _ in range(args.repeats)]
            r = min(runs, key=lambda r: r.seconds)
            row[m] = r
        correct = row["brute"].certified_mask
        for m in methods:
            assert not bool((row[m].certified_mask & ~correct).any()), f"seed {seed}: {m} is unsound"
            assert row[m].bound <= row["brute"].bound
        row["oracle"] = None if args.no_oracle else oracle_fraction(model, G)
        if args.floor:   # with a search, at the size it chose for this model
            c, k = ((row["fourier"].details["n_cores"], row["fourier"].details["rank"]) if "fourier" in row
                    else (args.n_cores, args.rank))
            if is_search(c, k):
                raise SystemExit("--floor with several sizes needs the fourier method (it times the chosen size)")
            row["floor"] = fourier_floor(model, G, max(3, args.repeats), n_cores=c, rank=k)
        rows.append(row)
    total = time.perf_counter() - start

    print(f"\n{len(rows)} S5 MLPs (120 elements, 14400 pairs, 128 neurons), float64 on "
          f"{torch.get_num_threads()} CPU threads; benchmark wall time {total:.0f} s; all bounds sound\n")
    print(f"{'method':>14}  {'>=95%':>9}  {'median bound':>12}  {'mean bound':>10}  {'time/brute':>10}  "
          f"{'fit s':>6}  {'MFLOP':>8}  {'FLOP/brute':>10}")
    for m in methods:
        bounds = [r[m].bound for r in rows]
        ratio = statistics.median(r[m].seconds / r["brute"].seconds for r in rows)
        flop_ratio = statistics.median(r[m].flops / r["brute"].flops for r in rows)
        won = sum(b >= 0.95 for b in bounds)
        print(f"{m:>14}  {f'{won}/{len(rows)}':>9}  {statistics.median(bounds):>12.4f}  "
              f"{statistics.fmean(bounds):>10.4f}  {ratio:>10.2f}  {statistics.median(r[m].fit_seconds for r in rows):>6.2f}  "
              f"{statistics.median(r[m].flops for r in rows) / 1e6:>8.1f}  {flop_ratio:>10.3f}")
    print("\namong the models a method bounds at >= 95%: median time / brute, median FLOP / brute")
    for m in methods:
        won = [r for r in rows if r[m].bound >= 0.95]
        if won:
            print(f"{m:>14}  {len(won):>3} models  {statistics.median(r[m].seconds / r['brute'].seconds for r in won):>6.2f}"
                  f"  {statistics.median(r[m].flops / r['brute'].flops for r in won):>6.3f}")
    print(f"\nbrute force: median proof time {statistics.median(r['brute'].seconds for r in rows) * 1e3:.0f} ms; "
          f"exact accuracy 100% on {sum(r['brute'].bound == 1.0 for r in rows)} of {len(rows)} models")
    oracle = [r["oracle"] for r in rows if r["oracle"] is not None]
    if oracle:
        print(f"rho-set ideal, true deviation below the ideal margin (not a proof): median {statistics.median(oracle):.1%} "
              f"of pairs; >= 95% of pairs on {sum(o >= 0.95 for o in oracle) / len(rows):.0%} of models")
    if "rhoset" in methods:
        fails = {}
        for r in rows:
            for k, v in r["rhoset"].failures.items():
                fails[k] = fails.get(k, 0) + v
        circuits = statistics.median(len(r["rhoset"].details["circuits"]) for r in rows)
        print(f"rhoset uncertified pairs by cause (all models): {fails}; median circuits per model {circuits}")
        print("median ideal margin {:.2f}, median eps_neuron {:.2f}, median eps_cover {:.2f}".format(
            statistics.median(r["rhoset"].details["ideal_margin"] for r in rows),
            statistics.median(r["rhoset"].details["median_eps_neuron"] for r in rows),
            statistics.median(r["rhoset"].details["median_eps_cover"] for r in rows)))
    if "fourier" in methods:
        by_keys: dict = {}
        for r in rows:
            keys = "+".join(r["fourier"].details["key_irreps"])
            by_keys.setdefault(keys, []).append(r["fourier"].bound)
        print("fourier by key irreps (models with bound >= 95% / models, median bound):")
        for keys, b in sorted(by_keys.items(), key=lambda kv: -len(kv[1])):
            print(f"  {keys:<45} {sum(x >= 0.95 for x in b)}/{len(b)}  {statistics.median(b):.4f}")
        if is_search(args.n_cores, args.rank):
            chosen: dict = {}
            for r in rows:
                size = (r["fourier"].details["n_cores"], r["fourier"].details["rank"])
                chosen.setdefault(size, []).append(r["fourier"].bound >= 0.95)
            print("fourier sizes chosen per model (cores, rank: models, of them with bound >= 95%): " + ", ".join(
                f"({c}, {k}): {len(v)}, {sum(v)}" for (c, k), v in sorted(chosen.items())))
    if args.floor:
        size = ("the size chosen per model" if is_search(args.n_cores, args.rank)
                else f"rank {args.rank}, {args.n_cores} core(s)")
        print(f"\nfourier's floor ({size}; best of {max(3, args.repeats)}): "
              "the hidden layer and the one product alone, as fractions of brute force's time")
        groups = [("all models", rows)]
        if "fourier" in methods:
            groups.append(("bound >= 95%", [r for r in rows if r["fourier"].bound >= 0.95]))
        for label, group in groups:
            if not group:
                continue
            hidden = statistics.median(r["floor"][0] / r["brute"].seconds for r in group)
            both = statistics.median((r["floor"][0] + r["floor"][1]) / r["brute"].seconds for r in group)
            rows_med = statistics.median(r["floor"][2] for r in group)
            line = f"  {label:<13} {len(group):>3} models  functionals {rows_med:.0f}  hidden {hidden:.2f}  hidden + product {both:.2f}"
            if "fourier" in methods:
                line += f"  whole proof {statistics.median(r['fourier'].seconds / r['brute'].seconds for r in group):.2f}"
            print(line)
    if args.plot:
        write_plot(rows, methods, args.plot)
        print(f"plot written to {args.plot}")
    print("published (Wu et al. 2025, 100 S5 MLPs): rho-set bound >= 95% on 45% of models at 30% of brute-force time")


if __name__ == "__main__":
    main()
