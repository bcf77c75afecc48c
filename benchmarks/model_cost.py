"""FLOPs and median CPU latency of the whole network for each subtraction-unit implementation.

    python benchmarks/model_cost.py                       # M2SNet, 352x352, batch 1, 2 threads
    python benchmarks/model_cost.py --variant m2snet-light --size 256 --impls factored
    python benchmarks/model_cost.py --json benchmarks/results/model_cost_cpu.json

Implementations are timed round-robin (one forward of each per round) so that the noise of
a shared machine hits all of them alike; the speed-up is the ratio of medians of one run.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

import m2snet
from realtime.bench.environment import cpu_name, write_result


def count_flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops()


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = dict(m2snet.VARIANTS[args.variant])
    if args.backbone:
        config["backbone"] = args.backbone
    if args.width:
        config["width"] = args.width
    dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[args.dtype]
    model = m2snet.create_model(**config).to(args.device, dtype)
    x = torch.randn(args.batch, 3, args.size, args.size).to(args.device, dtype)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)

    impls = args.impls.split(",")
    flops, times = {}, {impl: [] for impl in impls}
    for impl in impls:
        model.impl = impl
        flops[impl] = count_flops(model, x)
    with torch.inference_mode():
        for impl in impls:
            model.impl = impl
            for _ in range(args.warmup):
                model(x)
        for _ in range(args.repeats):
            for impl in impls:
                model.impl = impl
                sync()
                start = time.perf_counter()
                model(x)
                sync()
                times[impl].append(time.perf_counter() - start)

    medians = {impl: statistics.median(t) * 1e3 for impl, t in times.items()}
    base = impls[0]
    result = {
        "benchmark": "model_cost",
        "command": " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
        "variant": args.variant, "model": config, "size": args.size, "batch": args.batch,
        "threads": args.threads, "repeats": args.repeats, "channels_last": args.channels_last,
        "device": args.device, "dtype": args.dtype,
        "machine": {"cpu": cpu_name(), "cores": torch.get_num_threads(),
                    "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None,
                    "python": platform.python_version(), "torch": torch.__version__},
        "results": {impl: {"gflops": flops[impl] / 1e9, "median_ms": medians[impl],
                           "min_ms": min(times[impl]) * 1e3,
                           "fps": 1e3 * args.batch / medians[impl],
                           f"speedup_vs_{base}": medians[base] / medians[impl]}
                    for impl in impls},
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="m2snet", choices=sorted(m2snet.VARIANTS))
    parser.add_argument("--backbone", help="override the variant's timm backbone")
    parser.add_argument("--width", type=int, help="override the variant's decoder width")
    parser.add_argument("--impls", default="dense,factored",
                        help="comma-separated subtraction-unit implementations; the first is "
                             "the baseline of the speed-up column (default: dense,factored)")
    parser.add_argument("--size", type=int, default=352, help="input side (multiple of 32)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds (default 15)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    result = run(args)
    base = args.impls.split(",")[0]
    model = result["model"]
    where = result["machine"]["gpu"] or f"{args.threads} threads, {result['machine']['cpu']}"
    print(f"{args.variant} ({model['backbone']}, width {model['width']}) {args.size}x{args.size} "
          f"batch {args.batch}, {args.dtype}, {where}, torch {torch.__version__}")
    print(f"{'impl':<10} {'GFLOPs':>8} {'median ms':>10} {'fps':>7} {'speed-up':>9}")
    for impl, r in result["results"].items():
        print(f"{impl:<10} {r['gflops']:>8.1f} {r['median_ms']:>10.1f} {r['fps']:>7.1f} "
              f"{r[f'speedup_vs_{base}']:>8.2f}x")
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
