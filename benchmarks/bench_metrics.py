"""Benchmark the per-checkpoint metrics; prints its figures.

1. S5 MLP of the paper (``reference/paper_models/S5_MLP_seed1``): seconds per checkpoint of
   :func:`rep_theory.analysis.metrics.checkpoint_metrics` against a straightforward re-implementation of the
   paper's procedure (``tests/test_metrics.py::naive_metrics``: the hidden layer and logits recomputed
   for every metric of every irrep, explicit ``[n^2, r]`` pair bases, an ``n^3`` trace tensor per
   irrep).  Both get their per-run setup (bases, trace tensors) built beforehand, timed separately;
   the two results are checked to agree.  Target: >= 10x.
2. S6 MLP with random weights of the paper's shapes (n = 720, embed 256, hidden 128, frac_train
   0.25): seconds per checkpoint and the peak memory the evaluation adds (in a fresh subprocess:
   ``ru_maxrss`` after minus before; on CUDA also ``torch.cuda.max_memory_allocated``).  Goal: <= 4 GB.

Run: ``python benchmarks/bench_metrics.py [--repeats 3] [--skip-s6] [--device cpu]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "reference"
sys.path.insert(0, str(ROOT / "tests"))


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # Linux: KiB


def _best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best, out


def bench_s5(repeats: int, device: torch.device) -> None:
    from test_metrics import naive_metrics, naive_setup

    from rep_theory.training.config import RunConfig
    from rep_theory.training.data import make_split
    from rep_theory.analysis.metrics import IrrepBases, checkpoint_metrics
    from rep_theory.training.models import make_model
    from rep_theory.pipeline.paper_import import reorder_paper_state_dict

    src = REFERENCE / "paper_models" / "S5_MLP_seed1"
    cfg = RunConfig.from_dict(json.loads((src / "cfg.json").read_text()))
    state = reorder_paper_state_dict(torch.load(src / "model.pt", map_location="cpu", weights_only=True), "S5")
    model = make_model("OneLayerMLP", 120, embed_dim=cfg.embed_dim, hidden_dim=cfg.hidden_dim)
    model.load_state_dict(state)
    model = model.to(device).eval()
    train = make_split("S5", cfg.frac_train, cfg.seed).train
    keys = ["sign", "standard", "standard_sign", "s5_5d_a"]

    t = time.perf_counter()
    bases = IrrepBases.for_group("S5", device)
    fast_setup = time.perf_counter() - t
    t = time.perf_counter()
    setup = naive_setup("S5")
    naive_setup_s = time.perf_counter() - t
    checkpoint_metrics(model, bases, train_pairs=train.to(device), key_irreps=keys)  # warm-up
    fast_s, fast = _best_of(lambda: checkpoint_metrics(model, bases, train_pairs=train.to(device),
                                                       key_irreps=keys), repeats)
    model_cpu = model.cpu()
    naive_s, slow = _best_of(lambda: naive_metrics(model_cpu, "S5", train, keys, recompute=True, setup=setup),
                             max(1, repeats // 2))
    worst = max(abs(fast[k] - slow[k]) / max(abs(slow[k]), 1e-6) for k in slow)
    print(f"S5 MLP (paper weights), device {device}, torch threads {torch.get_num_threads()}")
    print(f"  setup once per run:    package {fast_setup:8.3f} s    paper-style {naive_setup_s:8.3f} s")
    print(f"  per checkpoint:        package {fast_s:8.3f} s    paper-style {naive_s:8.3f} s"
          f"    speed-up {naive_s / fast_s:6.1f}x (target >= 10x)")
    print(f"  largest relative difference between the two over {len(slow)} metrics: {worst:.2e}")


def s6_worker(device: str) -> None:
    """Runs in a fresh process: one S6 checkpoint; prints a JSON line of its figures."""
    from rep_theory.training.data import make_split
    from rep_theory.analysis.metrics import IrrepBases, checkpoint_metrics
    from rep_theory.training.models import make_model

    dev = torch.device(device)
    model = make_model("OneLayerMLP", 720, seed=0, embed_dim=256, hidden_dim=128).to(dev).eval()
    train = make_split("S6", 0.25, 1).train.to(dev)
    t = time.perf_counter()
    bases = IrrepBases.for_group("S6", dev)
    setup_s = time.perf_counter() - t
    before = _rss_mib()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        base_cuda = torch.cuda.memory_allocated(dev)
    times = []
    for _ in range(2):
        t = time.perf_counter()
        out = checkpoint_metrics(model, bases, train_pairs=train)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    result = {"setup_s": setup_s, "times_s": times, "rss_before_mib": before, "rss_peak_mib": _rss_mib(),
              "n_metrics": len(out), "key_irreps_of_random_model": sum(1 for k in out if k.endswith("similarity") and out[k] > 0.005)}
    if dev.type == "cuda":
        result["cuda_peak_extra_mib"] = (torch.cuda.max_memory_allocated(dev) - base_cuda) / 2 ** 20
    print(json.dumps(result))


def bench_s6(device: torch.device) -> None:
    proc = subprocess.run([sys.executable, __file__, "--s6-worker", "--device", str(device)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(f"S6 worker failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        return
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    extra = r["rss_peak_mib"] - r["rss_before_mib"]
    print(f"S6 MLP (random weights, n=720, 518400 pairs, hidden 128), device {device}")
    print(f"  setup once per run (bases): {r['setup_s']:.2f} s")
    print(f"  per checkpoint: {', '.join(f'{t:.2f}' for t in r['times_s'])} s")
    print(f"  peak RSS {r['rss_peak_mib']:.0f} MiB, of which the evaluation added {extra:.0f} MiB "
          f"(process before: {r['rss_before_mib']:.0f} MiB; goal: <= 4096 MiB)")
    if "cuda_peak_extra_mib" in r:
        print(f"  CUDA peak allocated by the evaluation: {r['cuda_peak_extra_mib']:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--skip-s6", action="store_true")
    parser.add_argument("--s6-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    from rep_theory.device import resolve_device
    device = resolve_device(args.device)
    if args.s6_worker:
        s6_worker(str(device))
        return
    bench_s5(args.repeats, device)
    if not args.skip_s6:
        bench_s6(device)


if __name__ == "__main__":
    main()
