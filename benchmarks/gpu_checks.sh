#!/usr/bin/env bash
# The checks and benchmarks that need a GPU, as one script for a device session.  Two parts, each
# under 10 minutes on an H100/H200; figures land in ${OUT:-gpu_results}/ (small text and JSON files).
#   PYTHONPATH=. bash benchmarks/gpu_checks.sh 1     # GPU tests, training speed (S6 with and without Triton, S5 32 seeds), checkpoints
#   PYTHONPATH=. bash benchmarks/gpu_checks.sh 2     # the paper grid's extrapolated time, Wu et al.'s 100 S5 models verified
# Needs torch with CUDA (and Triton, which CUDA builds of torch ship) plus the package's pure-Python
# dependencies (numpy, scipy, sympy, einops, plotly, tqdm); on a bare device machine, carry their wheels
# and `pip install --no-deps` them first.
set -uo pipefail
part="${1:-1}"
out="${OUT:-gpu_results}"
mkdir -p "$out"
run() {  # run NAME TIMEOUT CMD...: keep going when one fails; its output and exit status land in $out
    local name="$1" limit="$2"; shift 2
    echo "== $name: $*" | tee -a "$out/summary.txt"
    timeout "$limit" "$@" > "$out/$name.txt" 2>&1
    echo "   exit $?; $(tail -n 3 "$out/$name.txt" | tr '\n' ' ')" | tee -a "$out/summary.txt"
}
nvidia-smi --query-gpu=name,memory.total --format=csv > "$out/device.txt" 2>&1
case "$part" in
1)
    run gpu_tests 200 python -m pytest -q tests/test_gpu.py
    run train_s6_triton 75 python benchmarks/bench_train.py --device cuda --group S6 --seeds 4 --steps 10 --rounds 2
    run train_s6_reference 75 env REP_THEORY_TRITON=0 python benchmarks/bench_train.py --device cuda --group S6 --seeds 4 --steps 10 --rounds 2
    run train_s5_32 75 python benchmarks/bench_train.py --device cuda --seeds 32
    run checkpoints 60 python benchmarks/bench_checkpoints.py --device cuda --epochs 2000 --rounds 1
    ;;
2)
    run grid 250 python benchmarks/bench_grid.py --device cuda --max-seconds 10
    run verify_wu_s5 300 python benchmarks/bench_verify_wu.py --device cuda --groups S5 --seeds 100 --repeats 1 \
        --methods brute rhoset fourier fourier_hybrid --out "$out/verify_wu_s5.json"
    ;;
*) echo "usage: $0 1|2" >&2; exit 2 ;;
esac
echo "done; figures in $out/"
