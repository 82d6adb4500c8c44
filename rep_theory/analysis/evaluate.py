"""Evaluate run directories: the metrics of every checkpoint and of the final model.

A run directory (:mod:`rep_theory.training.rundir`) holds ``cfg.json``, ``model.pt`` (final weights)
and ``checkpoints/epoch_<e>.pt``.  :func:`evaluate_run` writes, atomically (:mod:`rep_theory.io`):

* ``summary_metrics.json``: :func:`rep_theory.analysis.metrics.checkpoint_metrics` of ``model.pt``, with
  ``epoch = num_epochs``; its key irreps (final similarity > ``key_threshold``) define the
  ``total_*`` and ``percent_*_explained`` metrics of every row;
* ``irreps.txt`` (all irreps, trivial first), ``key_reps.txt`` (key irreps, in irrep order),
  ``key_reps_in_order.txt`` (key irreps by the first checkpoint whose similarity exceeds
  ``order_threshold``; only written when checkpoint metrics exist), one name per line as the paper;
  ``order_rule.txt`` beside it names the rule that ordered it (``package`` or ``paper``);
* ``metrics.csv``: one row per checkpoint, sorted by epoch, the columns of
  :func:`rep_theory.analysis.metrics.metric_names` (``epoch`` last).  Re-running evaluates only the
  checkpoints not yet in the file (all of them if the key irreps, the columns or the metrics'
  arithmetic, ``METRICS_REVISION``, changed), and
  rewrites the file periodically so an interrupted evaluation keeps its progress;
* ``evaluation.json``: the stamps (size, mtime, content sha256) of ``model.pt`` and of the checkpoint
  behind every row.  A row whose checkpoint changed since (a retrained run) is recomputed, a row
  whose checkpoint is gone is dropped, and a learning order with no rows behind it is deleted: no
  result older than the weights it describes survives an evaluation.  An unreadable checkpoint
  stops the evaluation with :class:`rep_theory.training.rundir.CorruptWeightsError` naming it, after
  the rows computed so far are written.

Figures are not drawn here: :func:`rep_theory.pipeline.reports.evaluate_and_draw` (what the CLI and
the batch runner call) evaluates, then draws :mod:`rep_theory.analysis.run_figures`.

Weight files may be plain ``torch.save`` state dicts (the paper's, possibly holding CUDA tensors)
or :func:`rep_theory.io.save_checked` files; a dict with a ``"model"``/``"state_dict"`` entry
(a trainer checkpoint) is unwrapped.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
from tqdm.auto import tqdm

from rep_theory.algebra.groups import get_group
from rep_theory.analysis.metrics import (KEY_THRESHOLD, METRICS_REVISION, ORDER_RULES, ORDER_THRESHOLD,
                                         CheckpointAggregates, IrrepBases,
                                         checkpoint_aggregates, checkpoint_metrics, learning_order, metric_names,
                                         pair_mask, select_key_irreps)
from rep_theory.analysis.metrics_batch import ckpt_batch_size, metrics_from_aggregates
from rep_theory.device import available_cores, resolve_device
from rep_theory.io import atomic_write_json
from rep_theory.training.config import load_config
from rep_theory.training.data import make_split
from rep_theory.training.rundir import (METRICS_NAME, ORDER_NAME, SUMMARY_NAME, EvaluationRecord, config_digest,
                                        file_stamp, list_checkpoints, load_weights, model_from_weights,
                                        read_csv_header, read_evaluation_record, read_metrics_csv, stamp_matches,
                                        write_lines, write_evaluation_record, write_metrics_csv)

__all__ = ["evaluate_run"]

log = logging.getLogger(__name__)

_FLUSH_SECONDS = 60.0


def _rows_use_keys(rows: Sequence[dict[str, float]], key_irreps: Sequence[str]) -> bool:
    """Whether the ``*_explained`` sums of ``rows`` are over ``key_irreps`` (so the totals are theirs)."""
    for row in rows:
        for part in ("x_embed", "y_embed", "unembed"):
            total = sum(row[f"percent_{part}_{k}_rep"] for k in key_irreps)
            if not math.isclose(total, row[f"percent_{part}_explained"], rel_tol=1e-9, abs_tol=1e-12):
                return False
    return True


class _Prefetch:
    """``(epoch, path, future of (stamp, prepared))`` for ``todo`` in order, made by ``workers``
    background threads at most ``ahead`` checkpoints ahead: reading, unpickling and ``prepare``
    (pass 1 over all pairs, by default nothing) of the next checkpoints overlap computing the
    metrics of the current ones.  The stamp is taken before the load, as the one-by-one path does
    (a file replaced in between then reads as changed, never as evaluated)."""

    def __init__(self, todo: Sequence[tuple[int, Path]], device, *, ahead: int,
                 prepare: Callable[[dict], object] | None = None, workers: int = 1):
        self._todo, self._device, self._ahead = list(todo), device, max(1, ahead, workers)
        self._prepare = prepare
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="checkpoint-load")

    def _load(self, path: Path):
        stamp, weights = file_stamp(path), load_weights(path, map_location=self._device)
        return stamp, (weights if self._prepare is None else self._prepare(weights))

    def __enter__(self) -> "_Prefetch":
        return self

    def __exit__(self, *exc) -> bool:
        self._pool.shutdown(wait=True, cancel_futures=True)
        return False

    def batches(self, size: int) -> Iterator[list]:
        """Batches of at most ``size``, the first ones smaller (``_FIRST_BATCH``, doubling): the
        caller starts computing while the loaders fill the pipeline, instead of waiting for a
        whole batch."""
        pending: deque = deque()
        items = iter(self._todo)
        batch, target = [], min(size, _FIRST_BATCH)
        while True:
            while len(pending) < size + self._ahead:
                item = next(items, None)
                if item is None:
                    break
                pending.append((item[0], item[1], self._pool.submit(self._load, item[1])))
            if not pending:
                break
            batch.append(pending.popleft())
            if len(batch) == target or not pending:
                yield batch
                batch, target = [], min(size, 2 * target)


_FIRST_BATCH = 4


_SMALL_ELEMENTS = 1 << 20  # pairs x hidden of one checkpoint below which intra-op threads do not pay


@contextlib.contextmanager
def _one_thread_if_small(device: torch.device, elements: int) -> Iterator[bool]:
    """One torch intra-op thread while small checkpoints are evaluated on the CPU (restored after);
    yields whether it applies.

    Their tensors are too small for intra-op parallelism to pay (a [576, 128] hidden layer for S4),
    while a thread that is descheduled on a busy machine stalls every op at its barrier: on the
    shared 2-core development machine, evaluating a 20k-epoch S4 run one checkpoint at a time took
    30 s with torch's default 2 threads and 4.8 s with 1 (benchmarks/bench_eval.py).  The cores
    are used by running the checkpoints' pass 1 in loader threads instead (``_loader_threads``).
    """
    before = torch.get_num_threads()
    small = _small_on_cpu(device, elements)
    if small and before > 1:
        torch.set_num_threads(1)
    try:
        yield small
    finally:
        torch.set_num_threads(before)


def _small_on_cpu(device: torch.device, elements: int) -> bool:
    """Whether checkpoints of ``elements`` (pairs x hidden) are small ones evaluated on the CPU."""
    return device.type == "cpu" and elements <= _SMALL_ELEMENTS


_MAX_LOADERS = 4


def _loader_threads(device: torch.device, small: bool) -> int:
    """Threads that load checkpoints and run their pass 1: one per core (at most
    ``_MAX_LOADERS``) for small checkpoints on the CPU, whose ops then run on one intra-op thread
    each (so a float32 matmul rounds as in the one-by-one path); else one, since each op already
    uses every core (CPU) or the device serialises them (CUDA)."""
    return min(_MAX_LOADERS, available_cores()) if small else 1


def evaluate_run(run_dir: str | Path, *, final_only: bool = False, key_threshold: float = KEY_THRESHOLD,
                 order_threshold: float = ORDER_THRESHOLD, device: str | torch.device | None = None,
                 progress: bool = True, chunk_size: int | None = None,
                 order_rule: str = "package", ckpt_batch: int | None = None) -> dict[str, float]:
    """Evaluate one run directory (see the module docstring); returns the summary metrics.

    Parameters
    ----------
    final_only
        Evaluate ``model.pt`` only (``summary_metrics.json``, ``irreps.txt``, ``key_reps.txt``),
        leaving ``metrics.csv`` untouched.
    key_threshold, order_threshold
        Similarity thresholds for key irreps (final model) and for the learning order.
    order_rule
        ``"package"`` or ``"paper"``: the rule of :func:`rep_theory.analysis.metrics.learning_order`;
        written to ``order_rule.txt`` beside ``key_reps_in_order.txt``.
    device
        ``None``/``"auto"``: CUDA when present, else CPU.
    ckpt_batch
        Checkpoints evaluated together (:func:`rep_theory.analysis.metrics_batch.metrics_from_aggregates`,
        the same numbers to ~1e-15); their pass 1 (:func:`rep_theory.analysis.metrics.checkpoint_aggregates`)
        runs in loader threads while the previous ones' metrics are computed.  ``None``: as many as
        fit a memory budget for small checkpoints on the CPU (S4 and smaller at the paper's widths)
        and on CUDA, else 1 (on the CPU, batching larger checkpoints saves no per-op overhead and
        costs memory traffic: S5 took 0.66-0.83x the one-by-one time); ``1``: one by one through
        :func:`rep_theory.analysis.metrics.checkpoint_metrics` (the reference path).
    """
    run_dir = Path(run_dir)
    cfg_path, final_path = run_dir / "cfg.json", run_dir / "model.pt"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path} not found: {run_dir} is not a run directory")
    if not final_path.is_file():
        raise FileNotFoundError(f"{final_path} not found: evaluate needs the final model of {run_dir}")
    if order_rule not in ORDER_RULES:
        raise ValueError(f"order_rule must be one of {ORDER_RULES}, got {order_rule!r}")
    for name, value in (("key_threshold", key_threshold), ("order_threshold", order_threshold)):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value}")
    for name, value in (("ckpt_batch", ckpt_batch), ("chunk_size", chunk_size)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be None or >= 1, got {value}")
    cfg = load_config(run_dir)
    dev = resolve_device(device)
    G = get_group(cfg.spec)  # the one parse of the spec; the Group flows down from here
    bases = IrrepBases.for_group(G, dev)
    split = make_split(G, cfg.frac_train, cfg.seed, paper_order=cfg.paper_order, device=dev)

    def load_model(weights_path: Path):
        return model_from_weights(cfg, load_weights(weights_path, map_location=dev), group=G, device=dev)

    def evaluate(model, epoch: float, key_irreps):
        return checkpoint_metrics(model, bases, train_pairs=split.train, key_irreps=key_irreps,
                                  key_threshold=key_threshold, epoch=epoch, chunk_size=chunk_size)

    record = read_evaluation_record(run_dir) or EvaluationRecord()
    settings = config_digest(run_dir)
    model_stamp = file_stamp(final_path)
    final_model = load_model(final_path)
    summary = evaluate(final_model, cfg.num_epochs, None)
    sims = {name: summary[f"logit_{name}_rep_trace_similarity"] for name in bases.names if name != "trivial"}
    key_irreps = select_key_irreps(sims, threshold=key_threshold)
    atomic_write_json(run_dir / SUMMARY_NAME, summary)
    write_lines(run_dir / "irreps.txt", bases.names)
    write_lines(run_dir / "key_reps.txt", key_irreps)
    log.info("%s: key irreps %s", run_dir.name, key_irreps)
    if final_only:
        if (record.metrics_revision != METRICS_REVISION or set(record.key_irreps) != set(key_irreps)
                or record.config not in (None, settings)):
            # the rows, if any, are of another revision, key set or config: no longer vouched for (a full
            # eval recomputes them), and neither is the learning order drawn from them
            record.checkpoints, record.key_irreps = {}, list(key_irreps)
            record.metrics_revision = METRICS_REVISION
            for name in (ORDER_NAME, "order_rule.txt"):
                (run_dir / name).unlink(missing_ok=True)
        record.model, record.config = model_stamp, settings
        write_evaluation_record(run_dir, record)
        return summary

    columns = metric_names(bases.names)
    csv_path = run_dir / METRICS_NAME
    rows: dict[float, dict[str, float]] = {}
    stamps: dict[str, dict] = {}
    if csv_path.is_file():
        old_columns, old_rows = read_csv_header(csv_path), read_metrics_csv(csv_path)
        if old_columns != columns:
            log.warning("%s: its columns differ from this version's; re-evaluating every checkpoint", csv_path)
        elif old_rows and record.config not in (None, settings):
            log.warning("%s: its rows were computed under another cfg.json; re-evaluating every checkpoint", csv_path)
        elif old_rows and record.metrics_revision != METRICS_REVISION:
            log.warning("%s: its rows were computed under metrics revision %d, not this version's %d; "
                        "re-evaluating every checkpoint", csv_path, record.metrics_revision, METRICS_REVISION)
        elif old_rows and not _rows_use_keys(old_rows, key_irreps):
            log.warning("%s: its rows were computed with other key irreps than %s; re-evaluating every "
                        "checkpoint", csv_path, key_irreps)
        else:
            rows = {row["epoch"]: row for row in old_rows}
    checkpoints = list_checkpoints(run_dir)
    todo = []
    for epoch, path in checkpoints:  # a row is kept only if it describes the checkpoint's current weights
        old = record.checkpoints.get(str(epoch))
        # same size and time, or (a touched file) the same digest; checkpoints, unlike model.pt, are not
        # re-read when size and time match (hundreds of header reads per run), as the README states
        if float(epoch) in rows and (stamp_matches(path, old) or stamp_matches(path, old, deep=True)):
            stamps[str(epoch)] = file_stamp(path, digest=old["sha256"])
        else:
            todo.append((epoch, path))
    present = {float(e) for e, _ in checkpoints}
    stale = sorted(e for e in rows if e not in present or str(int(e)) not in stamps)
    if stale:
        log.info("%s: dropping %d row(s) whose checkpoint changed or is gone", run_dir.name, len(stale))
    rows = {e: r for e, r in rows.items() if e in present and str(int(e)) in stamps}

    def flush() -> None:  # rows first, then the record naming their weights: a crash in between is safe
        write_metrics_csv(csv_path, columns, list(rows.values()))
        write_evaluation_record(run_dir, EvaluationRecord(model=model_stamp, checkpoints=dict(stamps),
                                                          key_irreps=list(key_irreps),
                                                          metrics_revision=METRICS_REVISION, config=settings))

    hidden = final_model.unembedding().shape[1]  # the run's hidden width
    if todo and (ckpt_batch is None or ckpt_batch > 1):
        if ckpt_batch is None:
            worth_it = dev.type != "cpu" or _small_on_cpu(dev, G.order ** 2 * hidden)
            ckpt_batch = ckpt_batch_size(G.order, hidden, len(split.train), n_irreps=len(bases.names)) if worth_it else 1
    local = threading.local()  # each loader thread's own model of the run's architecture
    train_mask = pair_mask(split.train, bases)

    def aggregates(weights: dict) -> CheckpointAggregates:  # pass 1 of a checkpoint, in a loader thread
        model = getattr(local, "model", None)
        if model is None:
            local.model = model = model_from_weights(cfg, weights, group=G, device=dev)
        else:
            model.load_state_dict(weights)
        with torch.inference_mode():
            return checkpoint_aggregates(model, bases, train_mask=train_mask, chunk_size=chunk_size)

    last_flush = time.monotonic()
    try:
        if not todo or ckpt_batch <= 1:  # one checkpoint at a time: the reference path, and the one for large groups
            for epoch, path in tqdm(todo, desc=f"eval {run_dir.name}", unit="ckpt", disable=not progress):
                stamp = file_stamp(path)
                rows[float(epoch)] = evaluate(load_model(path), epoch, key_irreps)
                stamps[str(epoch)] = stamp
                if time.monotonic() - last_flush > _FLUSH_SECONDS:
                    flush()
                    last_flush = time.monotonic()
        else:
            bar = tqdm(total=len(todo), desc=f"eval {run_dir.name}", unit="ckpt", disable=not progress)
            one_thread = _one_thread_if_small(dev, G.order ** 2 * hidden)
            with bar, one_thread as small, _Prefetch(todo, dev, ahead=ckpt_batch, prepare=aggregates,
                                                     workers=_loader_threads(dev, small)) as loaded:
                for batch in loaded.batches(ckpt_batch):
                    good, error = [], None
                    for epoch, _, future in batch:
                        try:
                            good.append((epoch, *future.result()))
                        except Exception as err:  # an unreadable checkpoint: compute the ones before it, then stop
                            error = err
                            break
                    if good:
                        results = metrics_from_aggregates(
                            [f for _, _, f in good], bases, train_pairs=split.train, key_irreps=key_irreps,
                            key_threshold=key_threshold, epochs=[e for e, _, _ in good])
                        for (epoch, stamp, _), row in zip(good, results):
                            rows[float(epoch)] = row
                            stamps[str(epoch)] = stamp
                        bar.update(len(good))
                    if error is not None:
                        raise error
                    if time.monotonic() - last_flush > _FLUSH_SECONDS:
                        flush()
                        last_flush = time.monotonic()
    finally:  # interrupted or failed: keep every row computed so far
        flush()
    history = sorted(rows.values(), key=lambda r: r["epoch"])
    if history:
        write_lines(run_dir / ORDER_NAME,
                    learning_order(history, key_irreps, threshold=order_threshold, rule=order_rule))
        write_lines(run_dir / "order_rule.txt", [order_rule])
    else:
        for name in (ORDER_NAME, "order_rule.txt"):  # never leave an order computed from other weights
            (run_dir / name).unlink(missing_ok=True)
        log.info("%s: no checkpoints, so no learning order (key_reps_in_order.txt not written)", run_dir.name)
    return summary
