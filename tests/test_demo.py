"""``rep-theory demo``: a small network groks, the report explains it, the numbers agree with the metrics."""

from __future__ import annotations

import json
import re

import pytest
import torch

from rep_theory.pipeline import demo
from rep_theory.analysis.neurons import neuron_irrep_fractions
from rep_theory.cli import main
from rep_theory.algebra.groups import get_group
from rep_theory.training.rundir import load_run_model


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return demo.run_demo(out, preset="quick", progress=False)


def test_quick_demo_groks_and_passes_every_gcr_check(quick_demo):
    assert quick_demo.test_acc >= 0.99
    assert quick_demo.gcr, quick_demo.text
    key = (quick_demo.run_dir / "key_reps_in_order.txt").read_text().split()
    assert list(quick_demo.key_irreps) == key and key
    summary = json.loads((quick_demo.run_dir / "summary_metrics.json").read_text())
    assert summary["test_acc"] == quick_demo.test_acc
    # The text reports the learning order and the measured numbers.
    assert "Key irreps, in the order learned: " + key[0] in quick_demo.text
    assert f"{summary['total_hidden_restricted_loss']:.2e}" in quick_demo.text
    memorised, generalised = demo.grokking_epochs(
        [dict(r) for r in _log_rows(quick_demo.run_dir)])
    assert memorised is not None and generalised is not None and generalised > memorised


def _log_rows(run_dir):
    from rep_theory.training.rundir import read_metrics_csv
    return read_metrics_csv(run_dir / "train_log.csv")


def test_report_is_self_contained(quick_demo):
    page = quick_demo.report.read_text()
    assert quick_demo.report.name == f"report_{quick_demo.run_dir.name}.html"  # one report per run
    assert page.count("plotly.js v") == 1  # plotly inlined exactly once
    assert not re.search(r"<script[^>]+src=\"https?:", page)  # nothing fetched from the network
    assert page.count("<figure>") >= 6
    assert "Verdict: the network computes group composition via representations" in page
    for name in quick_demo.key_irreps:
        assert name in page


def test_neuron_fractions_average_to_the_hidden_fve(quick_demo):
    """Variance-weighted over neurons, the per-neuron fractions are the metrics' total hidden FVE."""
    model = load_run_model(quick_demo.run_dir)
    names = [rho.name for rho in get_group("S4").irreps() if rho.name != "trivial"]
    fractions, got_names = neuron_irrep_fractions(model, "S4")
    assert got_names == names and fractions.shape == (64, len(names))
    hidden = model.hidden_all_pairs().to(torch.float64)
    weights = (hidden - hidden.mean(0)).pow(2).sum(0)
    pooled = (fractions * weights[:, None]).sum(0) / weights.sum()
    summary = json.loads((quick_demo.run_dir / "summary_metrics.json").read_text())
    for k, name in enumerate(names):
        assert pooled[k].item() == pytest.approx(summary[f"total_percent_hidden_{name}_rep"], abs=1e-6)
    assert (fractions >= -1e-12).all() and (fractions.sum(1) <= 1 + 1e-9).all()


def test_verdict_names_failed_checks():
    summary = {"test_acc": 0.4, "test_loss": 2.0, "percent_x_embed_explained": 0.5,
               "percent_y_embed_explained": 0.95, "percent_unembed_explained": 0.95,
               "percent_hidden_explained": 0.3, "percent_hidden_xy_explained": 0.05,
               "total_hidden_restricted_loss": 1.5, "total_hidden_excluded_loss": 0.5,
               "percent_logits_explained": 0.1}
    checks, text = demo.verdict(summary, group="S4", key_irreps=["standard"],
                                irrep_dims={"standard": 3})
    assert [c.passed for c in checks] == [False, False, False, False]
    assert "failed: generalisation, embeddings, sufficiency, necessity" in text
    summary.update(test_acc=1.0, percent_x_embed_explained=0.99, total_hidden_restricted_loss=1e-4,
                   total_hidden_excluded_loss=9.0)
    checks, text = demo.verdict(summary, group="S4", key_irreps=["standard"],
                                irrep_dims={"standard": 3})
    assert all(c.passed for c in checks) and "Verdict: the network computes" in text
    assert "ln 24 = 3.18" in text


def test_demo_command_reuses_the_run_and_refuses_another_config(quick_demo, capsys):
    out = quick_demo.run_dir.parent
    model_time = (quick_demo.run_dir / "model.pt").stat().st_mtime_ns
    assert main(["demo", "--preset", "quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Verdict:" in printed and quick_demo.report.name in printed
    assert "reused the finished run" in printed  # a rerun does not claim to have trained
    assert (quick_demo.run_dir / "model.pt").stat().st_mtime_ns == model_time
    assert main(["demo", "--preset", "quick", "--epochs", "7", "--out", str(out)]) == 2
    assert "different config" in capsys.readouterr().err


_FAILING = {"test_acc": 1.0, "test_loss": 1e-3, "percent_x_embed_explained": 0.97,
            "percent_y_embed_explained": 0.97, "percent_unembed_explained": 0.96,
            "percent_hidden_explained": 0.6, "percent_hidden_xy_explained": 0.3,
            "total_hidden_restricted_loss": 0.02, "total_hidden_excluded_loss": 0.34,
            "percent_logits_explained": 0.9}


def test_a_failed_check_never_states_the_pass_sentence():
    """D5: an excluded loss of 0.34 is *better* than chance (ln 10 = 2.30), and must be said so."""
    checks, text = demo.verdict(_FAILING, group="D5", key_irreps=["freq_1"], irrep_dims={"freq_1": 2},
                                irrep_kinds={"freq_1": "real"})
    necessity = next(c for c in checks if c.name == "necessity")
    assert not necessity.passed
    assert "worse than chance" not in necessity.sentence and "better than chance" in necessity.sentence
    assert "ln 10 = 2.30" in necessity.sentence
    assert demo.report_title("D5", checks).startswith("rep-theory demo: D5 composition learned")
    failed_gen = dict(_FAILING, test_acc=0.3)
    checks, text = demo.verdict(failed_gen, group="D5", key_irreps=["freq_1"], irrep_dims={"freq_1": 2})
    assert "it has not generalised" in checks[0].sentence and "grokking" not in checks[0].sentence
    assert "not generalised" in demo.report_title("D5", checks) and "learned" not in demo.report_title("D5", checks)
    assert "--frac-train" in text and "--epochs" in text


@pytest.mark.parametrize("group, key, span", [
    ("Q8", ["4d_a"], 4),                                 # quaternionic: d^2/4 = 4, not 16 of 8
    ("C4xC6", ["freq_1*sign", "trivial*freq_1"], 2 + 2),  # complex type: d^2/2 each
    ("S4", ["standard", "s4_2_2"], 9 + 4),
])
def test_span_counts_the_irreps_kind(group, key, span):
    irreps = {rho.name: rho for rho in get_group(group).irreps()}
    assert all(k in irreps for k in key), sorted(irreps)
    checks, _ = demo.verdict(_FAILING, group=group, key_irreps=key,
                             irrep_dims={k: irreps[k].dim for k in key},
                             irrep_kinds={k: irreps[k].kind for k in key})
    embeddings = next(c for c in checks if c.name == "embeddings")
    order = get_group(group).order
    assert f"span {span} of the {order} dimensions" in embeddings.sentence
    # the span is the dimension of the irreps' matrix-coefficient space, computed independently
    ranks = sum(int(torch.linalg.matrix_rank(irreps[k].matrices.reshape(order, -1))) for k in key)
    assert ranks == span


# --- the report in a browser ----------------------------------------------------------------------
_PROBE = """<script>
window.addEventListener('load', () => setTimeout(() => {
  const width = document.documentElement.clientWidth;
  const over = [...document.querySelectorAll('.plotly-graph-div, svg.main-svg, figure')]
    .filter(e => e.getBoundingClientRect().right > width + 1).length;
  document.body.setAttribute('data-overflow', String(over + (document.documentElement.scrollWidth > width ? 1 : 0)));
  document.body.setAttribute('data-figures', String(document.querySelectorAll('.plotly-graph-div').length));
}, 3000));
</script>"""


def _chromium():
    import os
    import shutil
    found = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("headless Chromium is missing: .ci/run installs the Debian package 'chromium'")
        pytest.skip("no headless Chromium here (apt-get install chromium); CI installs it and runs this test")
    return found


def _layout(tmp_path, page: str, name: str, width: int = 1280) -> dict:
    """Load ``page`` in headless Chromium at ``width`` px; the count of overflowing figures and of figures."""
    import subprocess
    path = tmp_path / f"{name}.html"
    path.write_text(page.replace("</body>", _PROBE + "</body>"))
    dom = subprocess.run([_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                          f"--window-size={width},1000", "--virtual-time-budget=15000", "--dump-dom",
                          path.as_uri()], capture_output=True, text=True, timeout=120).stdout
    values = dict(re.findall(r'data-(overflow|figures)="(\d+)"', dom))
    assert values, f"the probe did not run in Chromium (output: {dom[:300]!r})"
    return {k: int(v) for k, v in values.items()}


def test_report_fits_a_1280_px_window(quick_demo, tmp_path):
    """Every figure of the report fits a 1280 px window (none wider than the page)."""
    page = quick_demo.report.read_text()
    layout = _layout(tmp_path, page, "report")
    assert layout["figures"] >= 6 and layout["overflow"] == 0, layout
    # The probe itself can fail: a figure with a fixed 1500 px width overflows.
    wide = page.replace("</body>", '<figure><div class="plotly-graph-div" style="width:1500px;height:10px"></div></figure></body>')
    assert _layout(tmp_path, wide, "wide")["overflow"] >= 1
