"""``verify(model, G, method=...)``, ``verify_run`` (writes ``RUN_DIR/verify/<method>.json``) and the
table over a batch of runs.

>>> from rep_theory.explain.proofs import verify, planted_circuits_mlp     # doctest: +SKIP
>>> model, G = planted_circuits_mlp("S4", "standard")                    # doctest: +SKIP
>>> verify(model, G, method="rhoset").bound                            # doctest: +SKIP
1.0
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
from tqdm.auto import tqdm

from rep_theory.algebra.groups import Group, get_group
from rep_theory.explain.proofs.baselines import brute_proof, coset_proof, fit_coset, fit_gcr, gcr_proof
from rep_theory.explain.proofs.core import Flops, Timer, VerifyResult, mlp_matrices
from rep_theory.explain.proofs.fourier_proof import fit_fourier, fourier_proof
from rep_theory.explain.proofs.fourier_search import fit_fourier_search, is_search
from rep_theory.explain.proofs.methods import METHODS
from rep_theory.explain.proofs.rhofit import fit_rhoset
from rep_theory.explain.proofs.rhoset import rhoset_proof
from rep_theory.io import atomic_write_json
from rep_theory.training.config import load_config
from rep_theory.training.rundir import MODEL_NAME, file_stamp, load_run_model, stamp_matches

__all__ = ["METHODS", "verify", "verify_run", "verify_table", "format_verify_table", "VERIFY_DIR"]


VERIFY_DIR = "verify"


def verify(model, G: Group | str, *, method: str = "rhoset", keep_mask: bool = True, **fit_options) -> VerifyResult:
    """A certified lower bound on ``model``'s accuracy over all ``|G|^2`` pairs.

    Parameters
    ----------
    model : OneLayerMLP (any device; read as float64 on the CPU)
    G : Group or spec, in the element order of ``model``'s weights
    method : one of :data:`METHODS`
    keep_mask : keep the ``[n, n]`` certified mask on the result
    fit_options : passed to the fitting step (``key_irreps=[...]`` for ``gcr``, thresholds of
        :func:`~rep_theory.explain.proofs.rhofit.fit_rhoset` for ``rhoset``/``hybrid``; for the
        ``fourier`` methods ``n_cores`` and ``rank``, each an int or a sequence of candidates: with
        a sequence the size is chosen per model by
        :func:`~rep_theory.explain.proofs.fourier_search.fit_fourier_search`, inside ``fit_seconds``)

    ``fit_seconds`` times the explanation's fitting; ``seconds`` and ``flops`` the proof alone,
    including forming ``L, R, U`` from the weights, which every method (brute force too) needs.
    """
    if method not in METHODS:
        raise ValueError(f"unknown verification method {method!r}; expected one of {list(METHODS)}")
    G = get_group(G)
    flops = Flops()
    proof_timer, fit_timer = Timer(), Timer()
    with proof_timer:
        L, R, U = mlp_matrices(model, flops)
    n = L.shape[0]
    if n != G.order:
        raise ValueError(f"the model has {n} elements but {G.name} has {G.order}")
    for name, part in (("left embedding L", L), ("right embedding R", R), ("unembedding U", U)):
        if not bool(torch.isfinite(part).all()):
            raise ValueError(f"the model's {name} is not finite (NaN or infinite values): nothing can be verified")
    if method == "brute":
        with proof_timer:
            out = brute_proof(G, L, R, U, flops)
    elif method == "gcr":
        with fit_timer:
            fit = fit_gcr(G, L, R, U, **fit_options)
        with proof_timer:
            out = gcr_proof(G, L, R, U, fit, flops)
    elif method == "coset":
        with fit_timer:
            fit = fit_coset(G, L, R, U, **fit_options)
        with proof_timer:
            out = coset_proof(G, L, R, U, fit, flops)
    elif method in ("fourier", "fourier_hybrid"):
        with fit_timer:
            if is_search(fit_options.get("n_cores"), fit_options.get("rank")):
                fit = fit_fourier_search(G, L, R, U, fallback=(method == "fourier_hybrid"), **fit_options)
            elif "tol" in fit_options:
                raise ValueError(f"tol={fit_options['tol']!r} needs several sizes to choose from: give n_cores "
                                 f"or rank as a list or 'auto' (got n_cores={fit_options.get('n_cores', 1)!r}, "
                                 f"rank={fit_options.get('rank', 16)!r})")
            else:
                fit = fit_fourier(G, L, R, U, **fit_options)
        with proof_timer:
            out = fourier_proof(G, L, R, U, fit, fallback=(method == "fourier_hybrid"), flops=flops)
    else:
        with fit_timer:
            interp = fit_rhoset(G, L, R, U, **fit_options)
        with proof_timer:
            out = rhoset_proof(G, L, R, U, interp, lipschitz=(method == "rhoset"), fallback=(method == "hybrid"),
                               flops=flops)
    certified = out["certified"]
    count = int(certified.sum())
    # medians of the per-pair diagnostics: reported, not part of the proof (outside its timer)
    medians = {f"median_{k}": float(v.median()) for k, v in out.get("diagnostics", {}).items()}
    details = dict(out["details"], **medians, flops_by_step=dict(flops.steps))
    return VerifyResult(method=method, bound=count / (n * n), seconds=proof_timer.seconds,
                        fit_seconds=fit_timer.seconds, flops=flops.total, n_pairs=n * n, certified=count,
                        failures=out["failures"], details=details,
                        certified_mask=certified if keep_mask else None)


def verify_run(run_dir: str | os.PathLike, methods: Sequence[str] = ("brute", "rhoset", "fourier"),
               device: str = "cpu", *, progress: bool = False,
               fit_options: dict | None = None) -> dict[str, VerifyResult]:
    """Verify the final model of ``run_dir`` with each method; writes ``run_dir/verify/<method>.json``
    (atomically) and returns ``{method: result}``.

    ``fit_options``: ``{method: {option: value}}`` passed to that method's fitting step (e.g.
    ``{"fourier": {"n_cores": 3}}``); the options used are recorded in the JSON under ``options``.
    Each JSON records under ``weights`` the stamp (size, mtime, sha256) of the ``model.pt`` it
    verified, taken before loading it: :func:`verify_table` serves no result whose stamp no longer
    matches (a retrained run's old bounds are reported stale, not shown).

    The proofs run in float64 on the CPU whatever ``device`` says (it only places the loaded model).
    """
    if isinstance(methods, str):
        raise TypeError(f"methods must be a list of method names, got the string {methods!r}; pass [{methods!r}]")
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ValueError(f"unknown verification method(s) {bad}; expected among {list(METHODS)}")
    cfg = load_config(run_dir)
    G = get_group(cfg.spec)
    stamp = file_stamp(Path(run_dir) / MODEL_NAME)
    model = load_run_model(run_dir, device=device)
    try:  # before any method runs, so that an unsupported network leaves no partial results
        mlp_matrices(model)
    except TypeError as err:
        raise ValueError(f"{run_dir}: {err}") from None
    out = {}
    for method in tqdm(list(methods), desc=f"verify {Path(run_dir).name}", disable=not progress):
        options = dict((fit_options or {}).get(method, {}))
        result = verify(model, G, method=method, keep_mask=False, **options)
        atomic_write_json(Path(run_dir) / VERIFY_DIR / f"{method}.json",
                          dict(result.to_json(), options=options, weights=stamp))
        out[method] = result
    return out


def _read_json(path: Path) -> dict | None:
    import json
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def verify_table(batch_dir: str | os.PathLike) -> list[dict]:
    """One row per run directory under ``batch_dir`` holding ``verify/*.json``: ``run``, the exact
    accuracy (from ``brute`` when present), per method its bound, seconds and flops, and under
    ``stale`` the methods whose result describes other weights than the current ``model.pt`` (or
    records none): those are listed, never served as numbers."""
    rows = []
    for run in sorted(p for p in Path(batch_dir).iterdir() if (p / VERIFY_DIR).is_dir()):
        row: dict = {"run": run.name, "stale": []}
        for path in sorted((run / VERIFY_DIR).glob("*.json")):
            rec = _read_json(path)
            if rec is None:
                continue
            m = rec.get("method", path.stem)
            if not stamp_matches(run / MODEL_NAME, rec.get("weights"), deep=True):
                row["stale"].append(m)
                continue
            row[m] = {"bound": rec["bound"], "seconds": rec["seconds"], "flops": rec["flops"]}
            if m == "brute":
                row["accuracy"] = rec["bound"]
        rows.append(row)
    return rows


def format_verify_table(rows: list[dict], methods: Sequence[str] | None = None) -> str:
    """Plain-text table of :func:`verify_table` rows: per method ``bound / seconds / MFLOP``."""
    methods = list(methods or [m for m in METHODS if any(m in r or m in r.get("stale", ()) for r in rows)])
    head = ["run", "accuracy"] + [f"{m} bound  s  MFLOP" for m in methods]
    lines = ["  ".join(head)]
    for r in rows:
        cells = [r["run"], f"{r['accuracy']:.4f}" if "accuracy" in r else "-"]
        for m in methods:
            v = r.get(m)
            cells.append(f"{v['bound']:.4f} {v['seconds']:.3f} {v['flops'] / 1e6:.1f}" if v
                         else "stale" if m in r.get("stale", ()) else "-")
        lines.append("  ".join(cells))
    return "\n".join(lines)
