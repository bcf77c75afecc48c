"""Where the openvino backend's CPU time goes, and how much faster this CPU could go at all.

    python benchmarks/cpu_ceiling.py                 # M2SNet (Res2Net-50), 352x352, 2 threads
    python benchmarks/cpu_ceiling.py --json benchmarks/results/cpu_ceiling_352.json

It measures, in one run: the machine's float32 matrix-multiply rate (torch.mm 2048^2, the
practical peak), the FLOPs of the authors' network (dense subtraction convolutions) and of
ours (factored unit), the authors' network as they run it (eager NCHW float32), and OpenVINO's
own per-layer timings of our network (PERF_COUNT: time and GFLOP/s of every convolution, time
of every other operator type). From these: the floor if every convolution ran at the rate of
the best sizeable one here and nothing else got faster, and the speed-up over the authors that it
allows. Random BatchNorm-calibrated weights stand in for trained ones (speed does not depend
on the values).
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

import m2snet
from realtime.bench.environment import cpu_name, write_result
from m2snet.calibration import calibrate
from model_cost import count_flops
from realtime.engine.backends.openvino import openvino_module
from realtime.engine.fold import fold_batchnorm


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def matmul_gflops(repeats: int) -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    return 2 * 2048 ** 3 / median_ms(lambda: a @ b, repeats) / 1e6


def conv_flops(model: torch.nn.Module, x: torch.Tensor) -> dict[str, int]:
    """FLOPs (2 per multiply-add) of every convolution, by module name."""
    flops, hooks = {}, []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            def hook(mod, _inputs, out, name=name):
                flops[name] = 2 * out.numel() * mod.weight[0].numel()
            hooks.append(module.register_forward_hook(hook))
    with torch.inference_mode():
        model(x)
    for h in hooks:
        h.remove()
    return flops


def openvino_layers(model: torch.nn.Module, x: torch.Tensor, repeats: int) -> tuple[float, dict]:
    """Median wall time of an OpenVINO inference and median time of every node in it."""
    ov = openvino_module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converted = ov.convert_model(model, example_input=x)
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32",
              "PERF_COUNT": "YES"}
    request = ov.Core().compile_model(converted, "CPU", config).create_infer_request()
    array = x.numpy()
    request.infer({0: array})
    walls, nodes = [], collections.defaultdict(list)
    for _ in range(repeats):
        start = time.perf_counter()
        request.infer({0: array})
        walls.append(time.perf_counter() - start)
        for info in request.profiling_info:
            nodes[(info.node_name, info.node_type)].append(info.real_time.total_seconds() * 1e3)
    return statistics.median(walls) * 1e3, {k: statistics.median(v) for k, v in nodes.items()}


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = m2snet.VARIANTS[args.variant]
    x = torch.rand(1, 3, args.size, args.size) * 4 - 2
    authors = calibrate(m2snet.create_model(**config, impl="dense"), x)
    ours = m2snet.create_model(**config, impl="factored")
    ours.load_state_dict(authors.state_dict())
    ours, _ = fold_batchnorm(ours.eval(), torch.zeros(1, 3, 64, 64))

    peak = matmul_gflops(args.repeats)
    with torch.inference_mode():
        authors_ms = median_ms(lambda: authors(x), args.repeats)
    wall_ms, nodes = openvino_layers(ours, x, args.repeats)
    flops = conv_flops(ours, x)

    convs, other = [], collections.Counter()
    for (node, kind), ms in nodes.items():
        module = node.split("/")[0].removeprefix("__module.")
        if kind in ("Convolution", "GroupConvolution") and module in flops:
            convs.append({"layer": module, "ms": ms, "gflop": flops[module] / 1e9,
                          "gflop_per_s": flops[module] / 1e6 / ms if ms else 0.0})
        else:  # the subtraction unit's box sums are convolutions of no module
            other["Convolution (box sums)" if kind == "Convolution" else kind] += ms
    conv_ms = sum(c["ms"] for c in convs)
    conv_gflop = sum(c["gflop"] for c in convs)
    # the best rate among layers big enough to time reliably (1% of the convolution work)
    best_rate = max(c["gflop_per_s"] for c in convs if c["gflop"] >= conv_gflop / 100)
    floor_ms = conv_gflop / best_rate * 1e3 + sum(other.values())
    return {
        "benchmark": "cpu_ceiling", "variant": args.variant, "size": args.size,
        "threads": args.threads, "repeats": args.repeats,
        "command": " ".join(["python"] + sys.argv),
        "machine": {"cpu": cpu_name(), "torch": torch.__version__,
                    "openvino": openvino_module().__version__},
        "matmul_gflop_per_s": peak,
        "authors": {"gflop": count_flops(authors, x) / 1e9, "median_ms": authors_ms},
        "openvino": {"gflop": count_flops(ours, x) / 1e9, "median_ms": wall_ms,
                     "speedup_vs_authors": authors_ms / wall_ms,
                     "conv_layers_timed": len(convs), "conv_layers_in_model": len(flops),
                     "conv_ms": conv_ms, "conv_gflop": conv_gflop,
                     "conv_gflop_per_s": conv_gflop / conv_ms * 1e3,
                     "best_conv_gflop_per_s": best_rate,
                     "other_ms_by_type": dict(other.most_common())},
        "floor": {"ms": floor_ms, "speedup_vs_authors": authors_ms / floor_ms},
        "slowest_convs": sorted(convs, key=lambda c: c["gflop_per_s"])[:12],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="m2snet", choices=sorted(m2snet.VARIANTS))
    parser.add_argument("--size", type=int, default=352)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if openvino_module() is None:
        print("cpu_ceiling: needs OpenVINO (pip install -r requirements.txt)", file=sys.stderr)
        return 2
    r = run(args)
    ov = r["openvino"]
    print(f"{args.variant} {args.size}x{args.size}, {args.threads} threads, "
          f"{r['machine']['cpu']}: torch.mm {r['matmul_gflop_per_s']:.0f} GFLOP/s")
    print(f"authors (eager, dense): {r['authors']['gflop']:.1f} GFLOP, "
          f"{r['authors']['median_ms']:.0f} ms")
    print(f"openvino (factored):    {ov['gflop']:.1f} GFLOP, {ov['median_ms']:.0f} ms = "
          f"{ov['speedup_vs_authors']:.2f}x; convolutions {ov['conv_ms']:.0f} ms at "
          f"{ov['conv_gflop_per_s']:.0f} GFLOP/s (best layer {ov['best_conv_gflop_per_s']:.0f}), "
          f"other operators {sum(ov['other_ms_by_type'].values()):.0f} ms")
    print(f"floor (every convolution at the best rate): {r['floor']['ms']:.0f} ms = "
          f"{r['floor']['speedup_vs_authors']:.2f}x over the authors")
    write_result(args.json, r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
