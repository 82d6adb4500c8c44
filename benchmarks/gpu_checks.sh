#!/usr/bin/env bash
# The checks and benchmarks that need a GPU, as one script for a device session.  Two parts, each
# under 10 minutes on an H100/H200; figures land in ${OUT:-gpu_results}/ (small text and JSON files).
#   PYTHONPATH=. bash benchmarks/gpu_checks.sh 1     # GPU tests, training speed (S6 with and without Triton, S5 32 seeds), checkpoints
#   PYTHONPATH=. bash benchmarks/gpu_checks.sh 2     # the paper grid's extrapolated time, Wu et al.'s 100 S5 models verified
#   PYTHONPATH=. bash benchmarks/gpu_checks.sh 3     # GPU tests, the loss kernels' warps, step profiles (chunk size, split-K), training speed, grid, eval of 728 S6 checkpoints
#   PYTHONPATH=. bash benchmarks/gpu_checks.sh 4     # what part 3 left unmeasured: GPU tests, loss warps, S6 profiles, eval of 728 S6 checkpoints, Wu et al.'s 100 S5 models
#   PYTHONPATH=. bash benchmarks/gpu_checks.sh 5     # the Triton row gathers and one-warp loss: GPU tests, kernels alone, S6 steps with and without them, grid
#   GPU_CHECKS_SECONDS=560 PYTHONPATH=. bash benchmarks/gpu_checks.sh all   # both, trimmed, most important first, within 560 s
# Every run's output is appended to $out/log.txt (one file, since a device call brings back few files),
# its exit status and last lines to $out/summary.txt.  $PYTHON (default python3) runs the scripts.
# Needs torch with CUDA (and Triton, which CUDA builds of torch ship) plus the package's pure-Python
# dependencies (numpy, scipy, sympy, einops, plotly, tqdm); on a bare device machine, carry their wheels
# and `pip install --no-deps` them first.
set -uo pipefail
part="${1:-1}"
out="${OUT:-gpu_results}"
mkdir -p "$out"
py="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
deadline=$(( $(date +%s) + ${GPU_CHECKS_SECONDS:-100000} ))  # no run goes past this (a device call's limit)
run() {  # run NAME TIMEOUT CMD...: keep going when one fails; its output and exit status land in $out
    local name="$1" limit="$2" start; shift 2
    start=$(date +%s)
    (( limit > deadline - start )) && limit=$(( deadline - start ))
    if (( limit < 10 )); then echo "== $name: skipped, out of time" | tee -a "$out/summary.txt"; return; fi
    echo "== $name: $*" | tee -a "$out/summary.txt"
    echo "===== $name: $*" >> "$out/log.txt"
    timeout "$limit" "$@" > "$out/current.txt" 2>&1
    local rc=$?
    cat "$out/current.txt" >> "$out/log.txt"
    echo "   exit $rc after $(( $(date +%s) - start )) s; $(tail -n 3 "$out/current.txt" | tr '\n' ' ')" | tee -a "$out/summary.txt"
    rm -f "$out/current.txt"
}
nvidia-smi --query-gpu=name,memory.total --format=csv > "$out/device.txt" 2>&1
case "$part" in
1)
    run gpu_tests 200 "$py" -m pytest -q tests/test_gpu.py
    run train_s6_triton 75 "$py" benchmarks/bench_train.py --device cuda --group S6 --seeds 4 --steps 10 --rounds 2
    run train_s6_reference 75 env REP_THEORY_TRITON=0 "$py" benchmarks/bench_train.py --device cuda --group S6 --seeds 4 --steps 10 --rounds 2
    run train_s5_32 75 "$py" benchmarks/bench_train.py --device cuda --seeds 32
    run checkpoints 60 "$py" benchmarks/bench_checkpoints.py --device cuda --epochs 2000 --rounds 1
    ;;
2)
    run grid 250 "$py" benchmarks/bench_grid.py --device cuda --max-seconds 10
    run verify_wu_s5 300 "$py" benchmarks/bench_verify_wu.py --device cuda --groups S5 --seeds 100 --repeats 1 \
        --methods brute rhoset fourier fourier_hybrid --out "$out/verify_wu_s5.json"
    ;;
3)  # most important first: GPU_CHECKS_SECONDS=560 trims from the end
    run gpu_tests 120 "$py" -m pytest -q --timeout 100 tests/test_gpu.py
    run loss_kernels 60 "$py" benchmarks/bench_loss.py --device cuda
    run profile_s6_mlp 60 "$py" benchmarks/profile_step.py --device cuda --group S6 --seeds 4 --steps 10
    run profile_s6_mlp_1warp 60 env REP_THEORY_TRITON_WARPS=1 "$py" benchmarks/profile_step.py --device cuda --group S6 \
        --seeds 4 --steps 10
    run eval_s6 150 "$py" benchmarks/bench_eval.py --device cuda --group S6 --epochs 727 --fill --rounds 1
    run train_s5_32 40 "$py" benchmarks/bench_train.py --device cuda --seeds 32 --rounds 3
    run profile_s6_t 60 "$py" benchmarks/profile_step.py --device cuda --group S6 --model T --seeds 4 --steps 4 \
        --profile-steps 1
    run profile_s5_mlp_32 40 "$py" benchmarks/profile_step.py --device cuda --group S5 --seeds 32 --steps 20
    run train_s6 40 "$py" benchmarks/bench_train.py --device cuda --group S6 --seeds 4 --steps 10 --rounds 2
    run grid 60 "$py" benchmarks/bench_grid.py --device cuda --max-seconds 28
    ;;
4)  # about 6 minutes on an H200; most important first
    run gpu_tests 120 "$py" -m pytest -q --timeout 100 tests/test_gpu.py
    run loss_kernels 60 "$py" benchmarks/bench_loss.py --device cuda
    run profile_s6_mlp 40 "$py" benchmarks/profile_step.py --device cuda --group S6 --seeds 4 --steps 10
    run profile_s6_mlp_1warp 40 env REP_THEORY_TRITON_WARPS=1 "$py" benchmarks/profile_step.py --device cuda --group S6 \
        --seeds 4 --steps 10
    run eval_s6 120 "$py" benchmarks/bench_eval.py --device cuda --group S6 --epochs 727 --fill --rounds 1
    run verify_wu_s5 150 "$py" benchmarks/bench_verify_wu.py --device cuda --groups S5 --seeds 100 --repeats 1 \
        --verify-threads 1 --methods brute rhoset coset fourier fourier_hybrid --out "$out/verify_wu_s5.json"
    ;;
5)  # about 4 minutes on an H200; most important first
    run gpu_tests 120 "$py" -m pytest -q --timeout 100 tests/test_gpu.py
    run gather_kernels 60 "$py" benchmarks/bench_gather.py --device cuda
    run profile_s6_mlp 40 "$py" benchmarks/profile_step.py --device cuda --group S6 --seeds 4 --steps 20 \
        --budgets 1073741824 --split-rows 2048 --compare-gathers
    run loss_kernels 40 "$py" benchmarks/bench_loss.py --device cuda --warps 1 4
    run train_s6 40 "$py" benchmarks/bench_train.py --device cuda --group S6 --seeds 4 --steps 10 --rounds 2
    run train_s5_32 40 "$py" benchmarks/bench_train.py --device cuda --seeds 32 --rounds 3
    run profile_s6_t 40 "$py" benchmarks/profile_step.py --device cuda --group S6 --model T --seeds 4 --steps 4 \
        --profile-steps 1 --budgets 1073741824 --split-rows 2048 --compare-gathers
    run grid 70 "$py" benchmarks/bench_grid.py --device cuda --max-seconds 28
    ;;
all)
    run gpu_tests 150 "$py" -m pytest -q -x --timeout 120 tests/test_gpu.py
    run train_s6_triton 60 "$py" benchmarks/bench_train.py --device cuda --group S6 --seeds 4 --steps 10 --rounds 2
    run train_s5_32 70 "$py" benchmarks/bench_train.py --device cuda --seeds 32 --rounds 3
    run verify_wu_s5 170 "$py" benchmarks/bench_verify_wu.py --device cuda --groups S5 --seeds 100 --repeats 1 \
        --methods brute rhoset coset fourier fourier_hybrid --out "$out/verify_wu_s5.json"
    run grid 110 "$py" benchmarks/bench_grid.py --device cuda --max-seconds 28
    run train_s6_reference 45 env REP_THEORY_TRITON=0 "$py" benchmarks/bench_train.py --device cuda --group S6 --seeds 4 --steps 10 --rounds 2
    run checkpoints 45 "$py" benchmarks/bench_checkpoints.py --device cuda --epochs 2000 --rounds 1
    ;;
*) echo "usage: $0 1|2|3|4|5|all" >&2; exit 2 ;;
esac
echo "done; figures in $out/"
