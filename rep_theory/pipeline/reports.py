"""What a run gets after training: its evaluation, then its figures (evaluation never draws).

The CLI, the batch runner and the demo call :func:`evaluate_and_draw`; a notebook may call
:func:`rep_theory.analysis.evaluate.evaluate_run` and :func:`rep_theory.analysis.run_figures.draw_run_figures`
itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rep_theory.analysis.evaluate import evaluate_run
from rep_theory.analysis.run_figures import draw_run_figures

__all__ = ["evaluate_and_draw"]


def evaluate_and_draw(run_dir: str | Path, *, figures: bool = True, **evaluate_kwargs: Any) -> dict[str, float]:
    """:func:`evaluate_run` (``evaluate_kwargs`` pass through), then the run's figures unless
    ``figures=False`` or ``final_only`` (figures need the checkpoint metrics); returns the summary."""
    summary = evaluate_run(run_dir, **evaluate_kwargs)
    if figures and not evaluate_kwargs.get("final_only", False):
        draw_run_figures(run_dir)
    return summary
