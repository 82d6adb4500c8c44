#!/usr/bin/env bash
# The paper's batch pipeline over `rep-theory` commands:
#   create -> train -> evaluate (every checkpoint, learning order, per-run figures)
#   -> batch figures -> tables
#
# Usage: ./create_run_and_eval_batch_experiments.sh [--grid NAME|FILE.json] [--dir BATCH_DIR]
#                                                   [--device D] [--jobs N] [--final-only]
# Defaults: --grid paper --dir batch_experiments/
#
# Restartable: every step skips what is complete, so after an interruption (Ctrl-C, a killed job,
# a reboot) run the same command again and it continues where it stopped.  Failed runs are
# recorded in <run>/failure.json and retried on the next invocation; the script exits non-zero
# when some runs are still failing after all steps ran.
set -euo pipefail
# One line on Ctrl-C (each rep-theory command already stops cleanly and keeps what it finished).
trap 'echo "interrupted: what was finished is kept; run the same command again to continue" >&2; exit 130' INT

grid="paper"
dir="batch_experiments/"
device="auto"
jobs="1"
final_only=()

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --grid|--dir|--device|--jobs)
            if [[ $# -lt 2 ]]; then echo "$1 needs a value (try --help)" >&2; exit 2; fi ;;
    esac
    case "$1" in
        --grid) grid="$2"; shift 2 ;;
        --dir) dir="$2"; shift 2 ;;
        --device) device="$2"; shift 2 ;;
        --jobs) jobs="$2"; shift 2 ;;
        --final-only) final_only=(--final-only); shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
done

if command -v rep-theory >/dev/null 2>&1; then
    rt=(rep-theory)
elif command -v python3 >/dev/null 2>&1; then
    rt=(python3 -m rep_theory)
else
    rt=(python -m rep_theory)
fi

echo "== create: grid ${grid} in ${dir}"
"${rt[@]}" create "${dir}" --grid "${grid}"

failed=0
echo "== train"
"${rt[@]}" batch "${dir}" --stage train --device "${device}" --jobs "${jobs}" "${final_only[@]}" || failed=$?

echo "== evaluate: every checkpoint, learning order, per-run figures"
"${rt[@]}" batch "${dir}" --stage evaluate --device "${device}" --jobs "${jobs}" "${final_only[@]}" || failed=$?

echo "== figures"
"${rt[@]}" figures "${dir}"

echo "== tables"
"${rt[@]}" tables "${dir}"

if [[ "${failed}" -ne 0 ]]; then
    echo "some runs failed; see <run>/failure.json, then run this script again to retry" >&2
    "${rt[@]}" batch "${dir}" --status "${final_only[@]}" | grep -v " evaluated$" >&2 || true
    exit "${failed}"
fi
echo "done: tables in ${dir%/}/tables/, figures in ${dir%/}/figures/"
