#!/usr/bin/env bash
# The one prepared run for a session that is lent a GPU machine (see DEVELOPERS.md):
# kernels and backends on CUDA against their references, then the GPU benchmarks.
# Everything lands in $OUT (the device tool's folder) or benchmarks/results/gpu; commit it
# under benchmarks/results/ with the GPU's name. Budget: under 10 minutes of device time.
# The device tool returns at most 8 files from $OUT: env.txt, tests.log, gpu_check.log (every
# step's output) and four JSON results; plots go to /tmp (remake them here from the JSON).
#   here, once:  bash benchmarks/gpu_wheels.sh       (PyAV, which the GPU image lacks, into .whl/)
#   device run:  bash benchmarks/gpu_check.sh        (carry [".whl"], timeout_s 590)
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-benchmarks/results/gpu}
LOG="$OUT/gpu_check.log"
PLOTS=/tmp/gpu_check_plots
mkdir -p "$OUT" "$PLOTS"
# The scripts import the checkout's packages (the GPU image has no editable install of it).
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

# The GPU machine cannot reach a package index: the wheels travel with the working tree.
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi

{
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    python3 -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__, torch.cuda.get_device_name())"
    python3 -c "import cv2, timm, numba, av; print('timm', timm.__version__, 'numba', numba.__version__, 'av', av.__version__, 'opencv', cv2.__version__)"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt" | tee "$LOG"

# Correctness on the GPU first: Triton kernels against the reference (fp32/fp16/bf16), and
# every backend against the float32 model.
# (GPU-only tests first: if the time runs out, it runs out on the CPU-side ones.)
timeout 140 python3 -m pytest -q -p no:cacheprovider tests/test_gpu_backends.py \
    tests/test_kernels.py tests/test_subtraction.py tests/test_segmenter.py -k "not compile" -rfs 2>&1 \
    | tee "$OUT/tests.log" | tail -15 | tee -a "$LOG"

# The subtraction unit alone: composite vs Triton vs torch.compile, real sizes.
timeout 80 python3 benchmarks/msu_ops.py --device cuda --dtypes float32,float16 --repeats 30 \
    --json "$OUT/msu_ops_cuda.json" 2>&1 | grep -v Warning | tee -a "$LOG"

# The model grid (authors' dense form vs factored vs Triton kernel; fp16 and fp32; batch 1
# and 8) with outputs checked against the authors' fp32, and 1080p end to end.
timeout 180 python3 -m realtime bench --quiet --models demo,m2snet --backends cuda \
    --precisions fp16,fp32 --batches 1,8 --sizes 352 --repeats 30 --e2e-height 1080 \
    --e2e-seconds 4 --json "$OUT/bench_cuda.json" --plot "$PLOTS/bench_cuda.png" 2>&1 \
    | grep -v Warning | tee -a "$LOG"

# torch.compile with CUDA graphs (one case: its compile time is logged).
timeout 110 python3 -m realtime bench --quiet --models m2snet --backends compile \
    --precisions fp16 --batches 1 --sizes 352 --impls reference,factored --repeats 30 \
    --e2e-height 0 --json "$OUT/bench_compile.json" --plot "$PLOTS/bench_compile.png" 2>&1 \
    | grep -v Warning | tee -a "$LOG"

# A 1080p60 source through the live pipeline: drops and p99 capture-to-sink latency.
timeout 60 python3 benchmarks/live_latency.py --backend cuda --rates 60 --height 1080 \
    --seconds 5 --json "$OUT/live_latency_cuda_1080p60.json" 2>&1 | grep -v Warning \
    | tee -a "$LOG"
ls "$OUT"
