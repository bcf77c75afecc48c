#!/usr/bin/env bash
# The one prepared run for a session that is lent a GPU machine (see DEVELOPERS.md):
# kernels and backends on CUDA against their references, then the GPU benchmarks and a short
# CUDA training run. Budget: under 10 minutes of device time, every step under its own limit.
# The device tool returns at most 8 files from $OUT, and nothing of a step cut off at the
# command's limit unless it is already there: so $OUT holds env.txt, gpu_check.log (every
# step's output) and results.tar (every step's JSON and logs, packed again after each step).
# Plots go to /tmp; remake them here from the JSON.
#   here, once:  bash benchmarks/gpu_wheels.sh       (PyAV and the tracker packages into .whl/)
#   device run:  bash benchmarks/gpu_check.sh        (carry [".whl"], timeout_s 600)
#   here, after: tar -xf results.tar -C benchmarks/results/gpu_<card>/
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
    echo "== $name (limit ${limit} s)" | tee -a "$LOG"
    timeout "$limit" "$@" 2>&1 | grep -v -e Warning -e warnings.warn | tee "$RESULTS/$name.log" \
        | tee -a "$LOG" >/dev/null
    local rc=${PIPESTATUS[0]}
    echo "== $name: exit $rc after $((SECONDS - start)) s" | tee -a "$LOG"
    tail -25 "$RESULTS/$name.log"
    tar -cf "$OUT/results.tar" -C "$RESULTS" .
}

# Training data for the last step, made on the CPU while the GPU tests run (timings later).
python3 -m m2snet phantom --out /tmp/phantom/train --n 192 --seed 0 --size 352 --quiet \
    > "$RESULTS/phantom_train.log" 2>&1 &
python3 -m m2snet phantom --out /tmp/phantom/val --n 32 --seed 9000 --size 352 --quiet \
    > "$RESULTS/phantom_val.log" 2>&1 &

# Correctness on the GPU first: the cuda backend against the float32 CPU engine, the Triton
# kernels against the reference (fp32/fp16/bf16) and the subtraction units.
step tests 110 python3 -m pytest -q -p no:cacheprovider tests/test_gpu_backends.py \
    tests/test_kernels.py tests/test_subtraction.py -k "not compile" -rfs \
    --junitxml "$RESULTS/tests.xml"

# The subtraction unit alone at real sizes: the authors' dense form, the factored composite
# and our Triton kernel (torch.compile of the unit is left out: a compile per size and dtype).
step msu_ops 50 python3 benchmarks/msu_ops.py --device cuda --dtypes float32,float16,bfloat16 \
    --impls dense,composite,reference,triton --repeats 30 --json "$RESULTS/msu_ops_cuda.json"

# The model grid at the authors' 352 (their dense form vs factored vs our Triton kernel, fp16,
# bf16 and fp32, batch 1 and 8), every row checked against the authors' fp32; then 1080p end
# to end (annotate with tracks and alerts, and live) with the demo model.
step bench_352 150 python3 -m realtime bench --quiet --models demo,m2snet --backends cuda \
    --precisions fp16,bf16,fp32 --batches 1,8 --sizes 352 --repeats 30 --e2e-height 1080 \
    --e2e-seconds 4 --json "$RESULTS/bench_cuda_352.json" --plot "$PLOTS/bench_cuda_352.png"

# The demo model at its own 256.
step bench_demo256 45 python3 -m realtime bench --quiet --models demo --backends cuda \
    --precisions fp16,bf16,fp32 --batches 1,8 --sizes 256 --repeats 30 --e2e-height 0 \
    --json "$RESULTS/bench_cuda_demo256.json" --plot "$PLOTS/bench_cuda_demo256.png"

# A 1080p60 source through the live pipeline: drops and p99 capture-to-sink latency.
step live_latency 40 python3 benchmarks/live_latency.py --backend cuda --rates 60 \
    --height 1080 --seconds 5 --json "$RESULTS/live_latency_cuda_1080p60.json"

# Offline annotation at 1080p, batch 8, both models: where the time goes (decode, inference,
# overlay + H.264 + FFV1) once the GPU does the network's work.
step annotate_1080p 60 python3 benchmarks/annotate_throughput.py --backend cuda --height 1080 \
    --seconds 4 --batch 8 --models demo,m2snet-res2net50 \
    --json "$RESULTS/annotate_cuda_1080p_batch8.json"

# torch.compile with CUDA graphs: the authors' form and our kernel (compile time logged).
step bench_compile 90 python3 -m realtime bench --quiet --models demo --backends compile \
    --precisions fp16 --batches 1 --sizes 256 --impls reference,kernel --repeats 30 \
    --e2e-height 0 --json "$RESULTS/bench_compile_demo256.json" \
    --plot "$PLOTS/bench_compile.png"

# Training on CUDA (autocast + GradScaler): Res2Net-50 M2SNet at 352, a few epochs on phantom
# stills; metrics.jsonl gives minutes per epoch and the validation Dice.
wait
step train_res2net50 55 python3 -m m2snet train configs/train/phantom_res2net50.yaml \
    --quiet --out /tmp/train_res2net50 data.train=/tmp/phantom/train \
    data.val=/tmp/phantom/val batch_size=16 workers=6 epochs=3 max_minutes=0.5 \
    bn_recalibrate=2
cp /tmp/train_res2net50/metrics.jsonl "$RESULTS/train_res2net50_metrics.jsonl" 2>/dev/null
tar -cf "$OUT/results.tar" -C "$RESULTS" .
ls -l "$OUT" "$RESULTS" | tee -a "$LOG"
