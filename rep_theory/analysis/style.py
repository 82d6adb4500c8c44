"""One look for every figure: an irrep keeps its colour and its name in every figure of a group,
metrics never borrow an irrep's colour, axes read in powers of ten, and figures fill their container.
"""

from __future__ import annotations

from typing import Sequence

import plotly.graph_objects as go

__all__ = ["IRREP_PALETTE", "METRIC_COLOURS", "OTHER_IRREP_LINE", "irrep_colours", "EPOCH_AXIS", "LOSS_AXIS",
           "figure_html"]

IRREP_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                 "#bcbd22", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d")
"""Colours of the non-trivial irreps, by their position in the group's irrep list."""

METRIC_COLOURS = {"train_loss": "#000000", "test_loss": "#7f7f7f", "train_acc": "#000000", "test_acc": "#7f7f7f",
                  "total_hidden_excluded_loss": "#000000", "total_hidden_restricted_loss": "#7f7f7f",
                  "total_logit_excluded_loss": "#000000", "total_logit_restricted_loss": "#7f7f7f"}
"""Loss and accuracy curves are black and grey (solid, dashed, dotted): never an irrep's colour."""

OTHER_IRREP_LINE = dict(color="rgba(150,150,150,0.45)", width=1)
"""Non-key irreps, drawn behind the key ones."""

EPOCH_AXIS = dict(type="log", dtick=1, exponentformat="power", title_text="epoch")
"""Log-epoch axes with a tick per decade only (no "2"/"5" minor labels; epoch 0 is drawn at 0.5)."""

LOSS_AXIS = dict(type="log", dtick=1, exponentformat="power")
"""Loss axes in powers of ten (10^-4), never SI prefixes (100µ)."""


def irrep_colours(irreps: Sequence[str]) -> dict[str, str]:
    """``{irrep name: colour}`` for a group's irreps in its own order (``trivial`` grey): the same
    irrep gets the same colour in every figure of that group."""
    out, k = {}, 0
    for name in irreps:
        if name == "trivial":
            out[name] = "#7f7f7f"
            continue
        out[name] = IRREP_PALETTE[k % len(IRREP_PALETTE)]
        k += 1
    return out


def figure_html(fig: go.Figure, *, include_plotlyjs, full_html: bool) -> str:
    """A figure as HTML that fills its container's width (no fixed pixel width) and resizes with it."""
    fig.update_layout(autosize=True, width=None)
    return fig.to_html(include_plotlyjs=include_plotlyjs, full_html=full_html, default_width="100%",
                       config={"responsive": True})
