"""Time one multi-scale subtraction unit at M2SNet's real sizes, every implementation.

    python benchmarks/msu_ops.py                                   # CPU: composite vs numba
    python benchmarks/msu_ops.py --device cuda --dtypes float32,float16 \
        --json benchmarks/results/msu_ops_cuda.json                # + Triton, torch.compile

Implementations: ``dense`` (the authors' all-ones convolution), ``composite`` (the model's
default factored form: a dozen plain tensor ops), ``reference`` (kernels.msu_reference),
``compiled`` (torch.compile of the composite), ``numba`` (CPU) and ``triton`` (CUDA) fused
kernels. Times are medians of interleaved rounds; ``predicted`` is the fused kernel's
speed-up over the composite from the bytes each moves (see ``bytes_moved``).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

import kernels
from realtime.bench.environment import cpu_name, write_result
from m2snet.blocks import FixedOnesConvBN, SubtractionUnit, folded_affine

# (name, a's side, b's side) at a 352 x 352 input; C = 64 for all of them.
SIZES = [("x5-x4 /32->/16", 11, 22), ("x4-x3 /16->/8", 22, 44),
         ("x3-x2 /8->/4", 44, 88), ("x2-x1 /4->/4", 88, 88)]
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def bytes_moved(c: int, h: int, w: int, side: int, elem: int) -> dict[str, float]:
    """DRAM traffic in bytes, counting each full C x H x W read or write once.

    composite: resize (read A, write A'), two channel sums (read A', B), four affine maps
    (write 4 float32 maps), four ReLUs (read+write 4), two differences (read 4, write 2),
    two abs (read 2, write 2), |A'-B| (read 2, write 1, then abs read 1 write 1), two sums
    (read 4, write 2): 19 reads and 17 writes of a C x H x W tensor, the affine ones float32.
    fused: pass 1 reads A and B, writes 2 float32 planes; pass 2 reads A, B and the planes,
    writes the output.
    """
    full = c * side * side
    small = c * h * w
    composite = (small * elem + full * elem            # resize
                 + 2 * full * elem                     # channel sums
                 + 4 * full * 4                        # affine maps (float32)
                 + 8 * full * 4                        # ReLUs
                 + 6 * full * 4 + 4 * full * 4         # differences, abs
                 + 5 * full * elem                     # |A'-B|, abs
                 + 6 * full * elem)                    # sums
    planes = 2 * side * side * 4
    fused = 2 * (small + full) * elem + 2 * planes + full * elem
    return {"composite": composite, "fused": fused}


def _units(c: int, device: str) -> tuple[FixedOnesConvBN, FixedOnesConvBN]:
    gen = torch.Generator().manual_seed(0)
    p3, p5 = FixedOnesConvBN(c, 3), FixedOnesConvBN(c, 5)
    for p in (p3, p5):
        p.norm.running_mean.copy_(torch.randn(c, generator=gen) * 50)
        p.norm.running_var.copy_(torch.rand(c, generator=gen) * 1e4 + 100)
    return p3.to(device).eval(), p5.to(device).eval()


def _timer(device: str):
    if device == "cuda":
        def timed(fn):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end) / 1e3
    else:
        def timed(fn):
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0
    return timed


def implementations(device: str, dtype: torch.dtype, p3, p5) -> dict:
    composite = SubtractionUnit(p3, p5, "factored").eval()
    dense = SubtractionUnit(p3, p5, "dense").eval()
    params = [*folded_affine(p3.norm), *folded_affine(p5.norm)]
    impls = {
        "dense": lambda a, b: dense(a, b),
        "composite": lambda a, b: composite(a, b),
        "reference": lambda a, b: kernels.msu_reference(a, b, *params),
    }
    compiled = torch.compile(composite, dynamic=False)
    impls["compiled"] = lambda a, b: compiled(a, b)
    if device == "cpu":
        impls["numba"] = lambda a, b: kernels.msu_numba(a, b, *params)
    else:
        impls["triton"] = lambda a, b: kernels.msu_triton(a, b, *params)
    return impls


def run(args: argparse.Namespace) -> dict:
    device = args.device
    torch.set_num_threads(args.threads)
    timed = _timer(device)
    rows = []
    p3, p5 = _units(64, device)
    for dtype_name in args.dtypes.split(","):
        dtype = DTYPES[dtype_name]
        for name, small, side in SIZES:
            gen = torch.Generator().manual_seed(1)
            a = torch.randn(args.batch, 64, small, small, generator=gen).to(device, dtype)
            b = torch.randn(args.batch, 64, side, side, generator=gen).to(device, dtype)
            impls = implementations(device, dtype, p3, p5)
            if args.impls:
                impls = {k: v for k, v in impls.items() if k in args.impls.split(",")}
            times = {k: [] for k in impls}
            with torch.inference_mode():
                for fn in impls.values():
                    for _ in range(args.warmup):
                        fn(a, b)
                for _ in range(args.repeats):
                    for key, fn in impls.items():
                        times[key].append(timed(lambda: fn(a, b)))
            med = {k: statistics.median(v) * 1e6 for k, v in times.items()}
            moved = bytes_moved(64 * args.batch, small, small, side, a.element_size())
            fused_key = "triton" if device == "cuda" else "numba"
            row = {"unit": name, "dtype": dtype_name, "a": list(a.shape), "b": list(b.shape),
                   "median_us": med,
                   "bytes_composite": moved["composite"], "bytes_fused": moved["fused"],
                   "predicted_fused_speedup": moved["composite"] / moved["fused"]}
            if fused_key in med and "composite" in med:
                row["measured_fused_speedup"] = med["composite"] / med[fused_key]
            rows.append(row)
            print(f"{name:<16} {dtype_name:<8} " + " ".join(f"{k} {v:9.1f}us" for k, v in med.items())
                  + f"  predicted x{row['predicted_fused_speedup']:.1f}"
                  + (f" measured x{row['measured_fused_speedup']:.1f}"
                     if "measured_fused_speedup" in row else ""), flush=True)
    machine = {"python": platform.python_version(), "torch": torch.__version__,
               "threads": args.threads}
    if device == "cuda":
        machine["gpu"] = torch.cuda.get_device_name()
        machine["cuda"] = torch.version.cuda
        try:
            import triton
            machine["triton"] = triton.__version__
        except ImportError:
            pass
    else:
        machine["cpu"] = cpu_name()
    return {"benchmark": "msu_ops", "device": device, "batch": args.batch,
            "repeats": args.repeats, "command": " ".join(["python"] + sys.argv),
            "machine": machine, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        choices=["cpu", "cuda"])
    parser.add_argument("--dtypes", default="float32", help="comma-separated: float32,float16,bfloat16")
    parser.add_argument("--impls", help="comma-separated subset (default: all for the device)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    result = run(args)
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
