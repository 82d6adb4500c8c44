"""Rebuild the paper's universality tables (CSV, LaTeX, Markdown) from a batch directory.

    python paper/tables.py [BATCH_DIR] [--out DIR]     # default BATCH_DIR: batch_experiments/
    python paper/tables.py --paper [--out DIR]         # from the paper's own 132 runs (shipped)

The first form is ``rep-theory tables BATCH_DIR`` (files in ``BATCH_DIR/tables/``: per-run and
per-group tables per model, the comparison with the paper's values, ``tables.md``) and prints the
main tables as Markdown.  The second formats the paper's shipped run summaries
(``rep_theory/reference_data/paper_runs.csv``) with the same code and checks that the result is
the paper's published tables, cell for cell: the table code and the paper agree.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from rep_theory.analysis import summaries as analysis, tables
from rep_theory.io import atomic_write_text


def paper_tables(out: Path | None) -> int:
    """Format the paper's runs (seeds 1-4, default width) and compare with its published tables."""
    runs = [r for r in analysis.paper_runs() if r.seed <= 4 and not r.variant]
    mismatches = 0
    for model, stem in (("MLP", "mlp"), ("T", "transformer")):
        for kind, build in (("all", functools.partial(tables.run_table, mark_runs=False)),
                            ("avg", tables.average_table)):
            ours = build(runs, model=model)
            published = tables.paper_table(f"{stem}_{kind}")
            same = ours.header == published.header and ours.rows == published.rows
            mismatches += not same
            print(f"## {ours.title}: {'identical to' if same else 'DIFFERS from'} the paper's "
                  f"paper_{stem}_{kind}.csv\n")
            print(ours.to_markdown())
            if out is not None:
                for suffix, text in (("csv", ours.to_csv()), ("tex", ours.to_latex()),
                                     ("md", ours.to_markdown())):
                    atomic_write_text(out / f"paper_{stem}_{kind}.{suffix}", text)
    return mismatches


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("batch_dir", nargs="?", type=Path, default=Path("batch_experiments"))
    parser.add_argument("--out", type=Path, default=None, help="output folder")
    parser.add_argument("--paper", action="store_true", help="format the paper's shipped runs")
    args = parser.parse_args(argv)
    if args.paper:
        return min(paper_tables(args.out), 1)
    written = tables.write_tables(args.batch_dir, args.out)
    folder = written["tables.md"].parent
    for name in ("mlp_all", "mlp_avg", "transformer_all", "transformer_avg",
                 "compare_mlp_avg", "compare_transformer_avg"):
        if f"{name}.md" in written:
            print(f"## {name}\n\n{written[f'{name}.md'].read_text()}")
    print(f"{len(written)} files in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
