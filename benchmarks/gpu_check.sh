#!/usr/bin/env bash
# The one prepared run for a session that is lent a GPU machine (see DEVELOPERS.md):
# kernels and the model on CUDA against their references, then the GPU benchmarks.
# Everything lands in $OUT (the device tool's folder) or benchmarks/results/gpu; commit it
# under benchmarks/results/ with the GPU's name. Budget: about 9 minutes of device time.
#   device run: bash benchmarks/gpu_check.sh        (timeout_s 590)
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"

{
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    python3 -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__, torch.cuda.get_device_name())"
    python3 -c "import timm, numba; print('timm', timm.__version__, 'numba', numba.__version__)"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

# Correctness on the GPU first: Triton kernels against the reference, fp32/fp16/bf16.
timeout 120 python3 -m pytest -q -p no:cacheprovider -x tests/test_kernels.py tests/test_subtraction.py \
    2>&1 | tee "$OUT/tests.log" | tail -5

# The subtraction unit alone: composite vs Triton vs torch.compile, real sizes.
timeout 150 python3 benchmarks/msu_ops.py --device cuda --dtypes float32,float16 --repeats 50 \
    --json "$OUT/msu_ops_cuda.json" 2>&1 | grep -v Warning | tee "$OUT/msu_ops.log"

# The Segmenter's GPU backends per frame against the authors' fp32 eager network (fp16; the
# compile backend captures CUDA graphs; its first start is logged).
timeout 150 python3 benchmarks/engine_latency.py --backends cuda,compile --precision fp16 \
    --repeats 50 --json "$OUT/engine_latency_cuda_fp16.json" 2>&1 | grep -v Warning \
    | tee "$OUT/engine_latency.log"

# The whole network: dense (authors) vs factored vs fused kernel, fp16 and fp32, batch 1.
for dtype in float16 float32; do
    timeout 60 python3 benchmarks/model_cost.py --device cuda --dtype "$dtype" \
        --impls dense,factored,kernel --repeats 50 --warmup 5 \
        --json "$OUT/model_cost_cuda_${dtype}.json" 2>&1 | tee -a "$OUT/model_cost.log"
done
