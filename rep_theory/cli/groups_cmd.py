"""``rep-theory irreps`` and ``rep-theory cache``: groups, character tables and the irrep cache.

    rep-theory irreps D8            # classes and real character table, as text
    rep-theory irreps A5 --json     # the same, machine-readable
    rep-theory cache build          # the paper's groups: C113 C118 D59 D61 S5 S6 A5
    rep-theory cache build S7 Q8    # any specs
    rep-theory cache verify         # checksums + irreps of every cache file; exit 1 on problems
    rep-theory cache path           # print the cache folder
"""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    p = subparsers.add_parser("irreps", help="print a group's conjugacy classes and real character table",
                              description="Print a group's conjugacy classes (size, element order, a "
                                          "representative) and its real character table.")
    p.add_argument("spec", help="group spec, e.g. S5, D8, C113, A5, Q8, C4xC6")
    p.add_argument("--json", action="store_true", help="print JSON instead of a text table")
    p.set_defaults(handler=_irreps)

    c = subparsers.add_parser("cache", help="build, verify or locate the on-disk cache of tables and irreps")
    sub = c.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    b = sub.add_parser("build", help="compute (or load and verify) and write the cache for some groups")
    b.add_argument("specs", nargs="*", metavar="SPEC",
                   help="group specs (default: the paper's groups C113 C118 D59 D61 S5 S6 A5)")
    b.add_argument("--force", action="store_true", help="recompute even if a valid cache file exists")
    b.add_argument("--no-progress", action="store_true", help="no progress bar (e.g. for a log file)")
    b.set_defaults(handler=_cache_build)
    v = sub.add_parser("verify", help="re-check every cache file's checksum and irreps")
    v.add_argument("--no-progress", action="store_true", help="no progress bar (e.g. for a log file)")
    v.set_defaults(handler=_cache_verify)
    w = sub.add_parser("path", help="print the cache folder")
    w.set_defaults(handler=_cache_path)


def _irreps(args: argparse.Namespace) -> int:
    from rep_theory.algebra.groups import get_group
    from rep_theory.algebra.irreps import character_table, format_character_table

    table = character_table(get_group(args.spec))
    print(json.dumps(table, indent=2) if args.json else format_character_table(table))
    return 0


def _cache_build(args: argparse.Namespace) -> int:
    from rep_theory.algebra.irreps import build_cache, cache

    report = build_cache(args.specs or cache.PAPER_SPECS, force=args.force, progress=not args.no_progress)
    for row in report:
        print(f"{row['spec']:>8}  {row['source']:<8}  {row['n_irreps']:>3} irreps  {row['seconds']:7.2f} s  "
              f"{row['bytes'] / 1e6:8.2f} MB  {row['path']}")
    return 0


def _cache_verify(args: argparse.Namespace) -> int:
    from rep_theory.algebra.irreps import cache, verify_cache

    results = verify_cache(progress=not args.no_progress)
    if not results:
        print(f"no cache files in {cache.cache_dir()}")
    for row in results:
        print(f"{'ok' if row['ok'] else 'FAILED':<6}  {row['spec']:>8}  {row['message']}")
    bad = sum(not row["ok"] for row in results)
    if bad:
        print(f"{bad} of {len(results)} cache files failed; delete them or run `rep-theory cache build --force`")
    return 1 if bad else 0


def _cache_path(args: argparse.Namespace) -> int:
    from rep_theory.algebra.irreps import cache

    print(cache.cache_dir())
    return 0
