"""Our own A5 MLP seeds: which irreps are key, against dimension and minimal rho-set size.

The paper's A5 numbers cannot answer this (its 3-d irreps are not representations), so this trains
8 seeds with the package's exact irreps: the paper's MLP and split, lr 1e-2 and 4000 epochs (CPU).

    python paper/a5_universality.py [EPOCHS]
"""
import sys, time, torch
torch.set_num_threads(1)
from rep_theory.algebra.groups import get_group
from rep_theory.algebra.rhosets import min_rho_set_size
from rep_theory.analysis.bases import IrrepBases
from rep_theory.analysis.metrics import checkpoint_metrics, select_key_irreps
from rep_theory.training.config import paper_defaults
from rep_theory.training.data import make_split
from rep_theory.training.train import fit
G = get_group("A5")
seeds = list(range(1, 9))
epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
t0 = time.time()
cfgs = [paper_defaults("A5", "MLP", seed=s, lr=1e-2, num_epochs=epochs, log_every=500) for s in seeds]
models, logs = fit(cfgs, device="cpu")
bases = IrrepBases.for_group(G)
print("irrep, dimension, smallest rho-set:",
      [(r.name, r.dim, min_rho_set_size(G, r)) for r in G.irreps() if r.name != "trivial"])
print("seed, test accuracy, key irreps, logit similarities:")
for cfg, model, log in zip(cfgs, models, logs):
    split = make_split(G, cfg.frac_train, cfg.seed)
    m = checkpoint_metrics(model, bases, train_pairs=split.train)
    sims = {r.name: m[f"logit_{r.name}_rep_trace_similarity"] for r in G.irreps() if r.name != "trivial"}
    print(cfg.seed, round(m["test_acc"], 4), select_key_irreps(sims), {k: round(v, 3) for k, v in sims.items()}, flush=True)
print("seconds", time.time() - t0)
