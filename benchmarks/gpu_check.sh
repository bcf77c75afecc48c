#!/usr/bin/env bash
# The one prepared run for a GPU machine (results: the README's "On a GPU"): kernels and
# backends on CUDA against their references, then the GPU benchmarks, every step under its own
# limit. All steps together can take up to 14 minutes, more than one command may run (10):
# choose with STEPS (below). Open after the second lease: STEPS="tests compile_threads"
# (whether auto may pick compile on a GPU), then "stages_cuda e2e_cuda bench_compile" again
# if compile_threads passes with auto's choice changed.
# The device tool returns at most 8 files from $OUT, and nothing of a step cut off at the
# command's limit unless it is already there: so $OUT holds env.txt, gpu_check.log (every
# step's output) and results.tar (every step's JSON and logs, packed again after each step).
# Plots go to /tmp; remake them here from the JSON.
#   here, once:  bash benchmarks/gpu_wheels.sh       (PyAV and the tracker packages into .whl/)
#   device run:  bash benchmarks/gpu_check.sh        (carry [".whl"], timeout_s 600)
#   here, after: tar -xf results.tar -C benchmarks/results/gpu_<card>/
# STEPS="tests stages_cuda" bash benchmarks/gpu_check.sh runs only the named steps (a later
# lease spends its minutes on what an earlier one left open); without STEPS, every step.
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-benchmarks/results/gpu}
LOG="$OUT/gpu_check.log"
RESULTS=/tmp/gpu_check_results
PLOTS=/tmp/gpu_check_plots
mkdir -p "$OUT" "$RESULTS" "$PLOTS"
# The scripts import the checkout's packages (the GPU image has no editable install of it).
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

# The GPU machine cannot reach a package index: the wheels travel with the working tree.
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PYTHONPATH
fi

{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    python3 -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), 'triton', triton.__version__, torch.cuda.get_device_name())"
    python3 -c "import cv2, av, trackers, pycocotools; from importlib.metadata import version as v; print(*(f'{n} {v(n)}' for n in ('numpy', 'timm', 'numba', 'av', 'trackers', 'supervision', 'pycocotools', 'pytest')), 'opencv', cv2.__version__)"
    nproc; python3 --version
} > "$OUT/env.txt" 2>&1
cp "$OUT/env.txt" "$RESULTS/env.txt"
tee "$LOG" < "$OUT/env.txt"

# step NAME SECONDS COMMAND...: run under its own limit, log its exit status and time, pack.
step() {
    local name=$1 limit=$2 start=$SECONDS
    shift 2
    if [[ -n "${STEPS:-}" && " $STEPS " != *" $name "* ]]; then
        echo "== $name: not in STEPS, skipped" | tee -a "$LOG"
        return
    fi
    echo "== $name (limit ${limit} s)" | tee -a "$LOG"
    timeout "$limit" "$@" 2>&1 | grep -v -e Warning -e warnings.warn | tee "$RESULTS/$name.log" \
        | tee -a "$LOG" >/dev/null
    local rc=${PIPESTATUS[0]}
    echo "== $name: exit $rc after $((SECONDS - start)) s" | tee -a "$LOG"
    tail -25 "$RESULTS/$name.log"
    tar -cf "$OUT/results.tar" -C "$RESULTS" .
}

# Correctness on the GPU first: the cuda and compile backends against the float32 CPU engine,
# the Triton kernels against the reference (fp32/fp16/bf16) and the subtraction units (the
# numba tests are the CPU's: CI runs them).
step tests 150 python3 -m pytest -q -p no:cacheprovider tests/test_gpu_backends.py \
    tests/test_kernels.py tests/test_subtraction.py -k "not numba" -rfs --durations=10 \
    --junitxml "$RESULTS/tests.xml"

# The subtraction unit alone at real sizes: the authors' dense form, the factored composite
# and our Triton kernel (torch.compile of the unit is left out: a compile per size and dtype).
step msu_ops 30 python3 benchmarks/msu_ops.py --device cuda --dtypes float32,float16,bfloat16 \
    --impls dense,composite,reference,triton --repeats 30 --json "$RESULTS/msu_ops_cuda.json"

# The model grid at the authors' 352 (their dense form vs factored vs our Triton kernel, fp16,
# bf16 and fp32, batch 1 and 8), every row checked against the authors' fp32; then 1080p end
# to end (annotate with tracks and alerts, and live) with the demo model on eager cuda.
step bench_352 160 python3 -m realtime bench --quiet --models demo,m2snet --backends cuda \
    --precisions fp16,bf16,fp32 --batches 1,8 --sizes 352 --repeats 30 --e2e-height 1080 \
    --e2e-seconds 4 --json "$RESULTS/bench_cuda_352.json" --plot "$PLOTS/bench_cuda_352.png"

# The demo model at its own 256.
step bench_demo256 40 python3 -m realtime bench --quiet --models demo --backends cuda \
    --precisions fp16 --batches 1,8 --sizes 256 --repeats 30 --e2e-height 0 \
    --json "$RESULTS/bench_cuda_demo256.json" --plot "$PLOTS/bench_cuda_demo256.png"

# Where a 1080p frame's time goes (upload, resize, network, back to frame size, download,
# regions), and the whole call beside a busy Python thread: eager cuda, then CUDA graphs.
# Beside a busy thread eager cuda takes seconds a frame at Python's default 5 ms switch
# interval (the second lease): few repeats, and the shorter intervals too.
step stages_cuda 90 python3 benchmarks/frame_stages.py --backend cuda --height 1080 \
    --repeats 5 --switch-intervals 0.005,0.001,0.0002 \
    --json "$RESULTS/frame_stages_cuda_1080p.json"
step stages_compile 60 python3 benchmarks/frame_stages.py --backend compile --height 1080 \
    --repeats 10 --switch-intervals 0.005,0.001,0.0002 \
    --json "$RESULTS/frame_stages_compile_1080p.json"

# 1080p end to end on eager cuda, the demo model at its own 256, beside the compile run below
# (the same lease, so the two compare).
step e2e_cuda 60 python3 -m realtime bench --quiet --models demo --backends cuda \
    --precisions fp16 --batches 1 --sizes 256 --impls reference,kernel --repeats 10 \
    --e2e-height 1080 --e2e-seconds 4 --json "$RESULTS/bench_cuda_demo256_e2e.json" \
    --plot "$PLOTS/bench_cuda_demo256_e2e.png"

# torch.compile with CUDA graphs: the demo model's grid row and 1080p end to end with it
# (its compile cache is warm from the step before).
step bench_compile 90 python3 -m realtime bench --quiet --models demo --backends compile \
    --precisions fp16 --batches 1 --sizes 256 --impls reference,kernel --repeats 30 \
    --e2e-height 1080 --e2e-seconds 4 --json "$RESULTS/bench_compile_demo256.json" \
    --plot "$PLOTS/bench_compile.png"
# One compiled Segmenter from several threads: annotate at batch 1 and 8, then live at batch 1
# (the second lease saw live's graph capture fail after a batch-8 annotate).
step compile_threads 150 python3 benchmarks/compile_threads.py --backend compile \
    --batches 1,8 --height 1080 --json "$RESULTS/compile_threads_1080p.json"
# Measured once (2026-12-04, benchmarks/results/gpu_h200/) and left out for time: 1080p60 live
# latency (benchmarks/live_latency.py), annotate at batch 8 (benchmarks/annotate_throughput.py)
# and a short CUDA training run.
ls -l "$OUT" "$RESULTS" | tee -a "$LOG"
