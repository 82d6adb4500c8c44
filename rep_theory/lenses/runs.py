"""Run- and batch-directory wrappers of the lens leaderboard.

``run_lenses(RUN_DIR)`` writes ``RUN_DIR/lenses/``::

    leaderboard.csv     one row per (lens, site): rep_theory.lenses.leaderboard.COLUMNS + key_irreps
    leaderboard.html    grouped bars per score (plotly, self-contained)
    summaries.pt        per (lens, site) the live features' pair-function summaries [k, 3n]
                        (float32), for the cross-seed stability of the batch table
    record.json         the stamp (size, mtime, sha256) of the model.pt they describe, taken before
                        loading it, the options (seed, key irreps) and the (lens, site) jobs; written last
    partial.pt          while running: every (lens, site) finished so far, with the same stamp and
                        options, rewritten after each; an interrupted run resumes from it (its
                        finished jobs are not fitted again) and a finished one deletes it

``batch_lens_table`` serves no leaderboard whose record does not match the run's current ``model.pt``
(retrained since, or written before records existed): such runs are listed as stale, with the
command that refreshes them.

``batch_lens_table(BATCH_DIR)`` reads the ``lenses/`` folders of the run directories in a batch
(subfolders holding ``cfg.json``), groups the runs by config (everything but the seed), and
returns a markdown table: per (config, lens, site) the mean of each score over seeds and the
cross-seed stability (``stability_match`` and ``stability_hist``, defined in
:mod:`rep_theory.lenses.scores`, averaged over all pairs of seeds).

Runs load through :mod:`rep_theory.training.rundir` (config, weights, key irreps).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import math
import os
from pathlib import Path
from typing import Sequence

import torch

from rep_theory.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from rep_theory.lenses.leaderboard import COLUMNS, lens_leaderboard
from rep_theory.lenses.scores import histogram_stability, match_stability, parse_hist

from rep_theory.algebra.groups import get_group
from rep_theory.device import resolve_device
from rep_theory.training.config import load_config
from rep_theory.training.rundir import file_stamp, key_files_staleness, load_run_model, read_lines, stamp_matches

__all__ = ["run_lenses", "batch_lens_table", "lens_staleness", "read_leaderboard", "leaderboard_figure",
           "SCORE_COLUMNS"]

log = logging.getLogger(__name__)

SCORE_COLUMNS = ("purity", "coverage", "alignment", "loss_recovered", "cross_irrep_edge_mass")
"""The scores in [0, 1] that the figure and the batch table show (L0 is shown in the table only)."""


def _load_run(run_dir: Path, device):
    """``(model, group, config, key irreps or None)`` of a run directory."""
    cfg = load_config(run_dir)
    G = get_group(cfg.spec)
    model = load_run_model(run_dir, device=resolve_device(device if device is not None else "auto"))
    key = None
    reason = key_files_staleness(run_dir)
    if reason is not None:   # evaluated here, but not these weights or this config: the model decides
        log.info("%s: its key irreps files are stale (%s); key irreps taken from the model", run_dir.name, reason)
    else:
        for name in ("key_reps_in_order.txt", "key_reps.txt"):
            if (run_dir / name).is_file():
                key = list(read_lines(run_dir / name))
                break
    return model.eval(), G, cfg, key


def _fmt(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def _csv_text(rows: list[dict], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_fmt(row.get(c, "")) for c in columns])
    return buf.getvalue()


def read_leaderboard(path: str | os.PathLike) -> list[dict]:
    """Rows of a ``leaderboard.csv`` (numbers as floats, empty cells as NaN)."""
    rows = []
    with open(path, newline="") as fh:
        for raw in csv.DictReader(fh):
            row = {}
            for k, v in raw.items():
                if k in ("lens", "site", "irrep_hist", "key_irreps"):
                    row[k] = v
                else:
                    row[k] = float(v) if v not in ("", None) else math.nan
            rows.append(row)
    return rows


def leaderboard_figure(rows: list[dict], title: str = "lens leaderboard"):
    """A plotly figure: one panel per site, grouped bars of :data:`SCORE_COLUMNS` per lens."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    sites = list(dict.fromkeys(r["site"] for r in rows))
    fig = make_subplots(rows=len(sites), cols=1, subplot_titles=sites, shared_yaxes=True)
    palette = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2"]
    for i, site in enumerate(sites, start=1):
        site_rows = [r for r in rows if r["site"] == site]
        for j, score in enumerate(SCORE_COLUMNS):
            fig.add_trace(go.Bar(name=score, x=[r["lens"] for r in site_rows],
                                 y=[None if isinstance(r.get(score), float) and math.isnan(r[score]) else r.get(score)
                                    for r in site_rows],
                                 marker_color=palette[j % len(palette)], legendgroup=score, showlegend=(i == 1)),
                          row=i, col=1)
        fig.update_yaxes(range=[0, 1.05], row=i, col=1)
    fig.update_layout(barmode="group", title=title, height=320 * len(sites) + 120)
    return fig


PARTIAL_NAME = "partial.pt"
RECORD_NAME = "record.json"


def _read_partial(path: Path, model_path: Path, options: dict) -> dict:
    """``{(lens, site): (row, summary)}`` kept by an interrupted run of the same weights and options,
    else empty (absent, unreadable, other weights or options)."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("options") != options or not stamp_matches(model_path, saved.get("weights"), deep=True):
            return {}
        return {tuple(job.split("@", 1)): (dict(entry["row"]), entry["summary"])
                for job, entry in saved["done"].items()}
    except FileNotFoundError:
        return {}
    except Exception as err:  # a damaged or foreign file: start over, say so
        log.warning("%s: unreadable (%s: %s); recomputing every lens", path, type(err).__name__, err)
        return {}


def _write_partial(path: Path, stamp: dict, options: dict, done: dict) -> None:
    buf = io.BytesIO()
    torch.save({"weights": stamp, "options": options,
                "done": {f"{lens}@{site}": {"row": row, "summary": summary}
                         for (lens, site), (row, summary) in done.items()}}, buf)
    atomic_write_bytes(path, buf.getvalue())


def lens_staleness(run_dir: str | os.PathLike) -> str | None:
    """Why ``RUN_DIR/lenses/leaderboard.csv`` does not describe the run's current ``model.pt``, or ``None``."""
    run_dir = Path(run_dir)
    out = run_dir / "lenses"
    if not (out / "leaderboard.csv").is_file():
        return "no lenses/leaderboard.csv"
    try:
        record = json.loads((out / RECORD_NAME).read_text())
    except (FileNotFoundError, ValueError):
        return "no lenses/record.json (written before records existed)"
    if not stamp_matches(run_dir / "model.pt", record.get("weights") if isinstance(record, dict) else None,
                         deep=True):
        return "model.pt changed since the lenses were scored"
    return None


def run_lenses(run_dir: str | os.PathLike, lenses: Sequence[str] | None = None, sites: Sequence[str] | None = None,
               device: str | torch.device | None = None, *, seed: int = 0, progress: bool = True) -> Path:
    """Score ``lenses`` on ``sites`` of the run's final model; returns ``RUN_DIR/lenses/leaderboard.csv``.

    Key irreps come from the run's ``key_reps_in_order.txt`` / ``key_reps.txt`` when it has been
    evaluated and that evaluation is current, else from the model (logit similarity above 0.005).
    Files are written atomically.
    Progress survives an interruption: every finished (lens, site) is kept in ``lenses/partial.pt``
    (tied to the weights' stamp, the seed and the key irreps) and not fitted again by the next call.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "cfg.json").is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no cfg.json)")
    model_path = run_dir / "model.pt"
    stamp = file_stamp(model_path) if model_path.is_file() else None   # before loading, as eval does
    model, G, cfg, key = _load_run(run_dir, device)
    out = run_dir / "lenses"
    options = {"seed": int(seed), "key_irreps": None if key is None else list(key)}
    done = _read_partial(out / PARTIAL_NAME, model_path, options)
    if done:
        log.info("%s: resuming; %d (lens, site) result(s) kept from an interrupted run", run_dir.name, len(done))

    def keep(lens: str, site: str, row: dict, summary: torch.Tensor) -> None:
        done[(lens, site)] = (row, summary)
        _write_partial(out / PARTIAL_NAME, stamp, options, done)

    summaries: dict = {}
    rows = lens_leaderboard(model, G, lenses=lenses, sites=sites, key_irreps=key, seed=seed, progress=progress,
                            summaries=summaries, done=dict(done), on_result=keep)
    columns = list(COLUMNS) + ["key_irreps"]
    path = atomic_write_text(out / "leaderboard.csv", _csv_text(rows, columns))
    fig = leaderboard_figure(rows, title=f"lens leaderboard: {run_dir.name} ({cfg.spec} {cfg.model}, seed {cfg.seed})")
    atomic_write_text(out / "leaderboard.html", fig.to_html(include_plotlyjs=True, full_html=True))
    buf = io.BytesIO()
    torch.save({f"{lens}@{site}": s for (lens, site), s in summaries.items()}, buf)
    atomic_write_bytes(out / "summaries.pt", buf.getvalue())
    atomic_write_json(out / RECORD_NAME, {"weights": stamp, "options": options,
                                          "jobs": [f"{r['lens']}@{r['site']}" for r in rows]})
    (out / PARTIAL_NAME).unlink(missing_ok=True)
    return path


def _config_key(run_dir: Path) -> str:
    d = json.loads((run_dir / "cfg.json").read_text())
    d.pop("seed", None)
    d.pop("version", None)
    d.pop("device", None)
    return json.dumps(d, sort_keys=True)


def batch_lens_table(batch_dir: str | os.PathLike) -> str:
    """Markdown table of the lens scores of a batch: mean over the seeds of each config, with stability.

    Runs without ``lenses/leaderboard.csv`` are listed as pending under the table.
    """
    batch_dir = Path(batch_dir)
    if not batch_dir.is_dir():
        raise (NotADirectoryError(f"{batch_dir} is a file; expected a batch directory of run directories")
               if batch_dir.exists() else FileNotFoundError(f"batch directory {batch_dir} does not exist"))
    run_dirs = sorted(p for p in batch_dir.iterdir() if (p / "cfg.json").is_file())
    if not run_dirs:
        raise FileNotFoundError(f"{batch_dir} holds no run directories (subfolders with cfg.json)")
    groups: dict[str, list[Path]] = {}
    pending, stale = [], []
    for rd in run_dirs:
        reason = lens_staleness(rd)
        if reason is None:
            groups.setdefault(_config_key(rd), []).append(rd)
        elif reason == "no lenses/leaderboard.csv":
            pending.append(rd.name)
        else:
            stale.append(f"{rd.name} ({reason})")
    header = ["config", "lens", "site", "seeds", *SCORE_COLUMNS, "l0", "stability_match", "stability_hist"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, rds in groups.items():
        boards = {rd: read_leaderboard(rd / "lenses" / "leaderboard.csv") for rd in rds}
        summaries = {}
        for rd in rds:
            path = rd / "lenses" / "summaries.pt"
            summaries[rd] = torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else {}
        label = _label(rds[0])
        cells = list(dict.fromkeys((r["lens"], r["site"]) for rows in boards.values() for r in rows))
        for lens, site in cells:
            per_run = {rd: next((r for r in rows if r["lens"] == lens and r["site"] == site), None)
                       for rd, rows in boards.items()}
            present = [rd for rd, r in per_run.items() if r is not None]
            means = []
            for col in (*SCORE_COLUMNS, "l0"):
                vals = [per_run[rd][col] for rd in present if not math.isnan(per_run[rd].get(col, math.nan))]
                means.append(f"{sum(vals) / len(vals):.3f}" if vals else "")
            pairs = list(itertools.combinations(present, 2))
            name = f"{lens}@{site}"
            match = [match_stability(summaries[x][name], summaries[y][name]) for x, y in pairs
                     if name in summaries[x] and name in summaries[y]]
            hist = [histogram_stability(parse_hist(per_run[x]["irrep_hist"]), parse_hist(per_run[y]["irrep_hist"]))
                    for x, y in pairs]
            stab = [f"{sum(v) / len(v):.3f}" if v else "" for v in ([m for m in match if not math.isnan(m)],
                                                                   [h for h in hist if not math.isnan(h)])]
            lines.append("| " + " | ".join([label, lens, site, str(len(present)), *means, *stab]) + " |")
    if pending:
        lines.append("")
        lines.append(f"pending (no lenses/leaderboard.csv): {', '.join(pending)}")
    if stale:
        lines.append("")
        lines.append(f"stale, not shown (refresh with `rep-theory lenses RUN_DIR`): {'; '.join(stale)}")
    return "\n".join(lines) + "\n"


def _label(run_dir: Path) -> str:
    d = json.loads((run_dir / "cfg.json").read_text())
    group = d.get("group", "?")
    if d.get("group_parameter") is not None:
        group = f"{group}{d['group_parameter']}"
    return f"{group} {d.get('model', '?')}"
