"""Per-frame latency of the Segmenter's backends against the authors' formulation, one run.

    python benchmarks/engine_latency.py                      # cpu backend vs authors, 352x352
    python benchmarks/engine_latency.py --backends cpu,compile --json benchmarks/results/engine_cpu.json

"authors" is the network as the reference implementation runs it: the dense all-ones
subtraction convolutions, NCHW float32, eager, on an already normalized tensor. The
Segmenter rows include everything a live frame costs: upload, resize, normalization, the
network, resize back and the sigmoid. Every row is checked against the authors' output on the
same frame (max probability difference, mask Dice). Random BatchNorm-calibrated weights
stand in for trained ones: speed does not depend on the values.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import m2snet
from realtime.bench.environment import cpu_name, write_result
from m2snet.calibration import calibrate
from realtime.engine.segmenter import Segmenter


def _dice(a: torch.Tensor, b: torch.Tensor) -> float:
    total = (a.sum() + b.sum()).item()
    return 1.0 if total == 0 else 2 * (a & b).sum().item() / total


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = m2snet.create_model(**m2snet.VARIANTS[args.variant])
    calibrate(model, torch.rand(1, 3, args.size, args.size) * 4 - 2)
    tmp = Path(tempfile.mkdtemp())
    weights = m2snet.save_checkpoint(model, tmp / "bench.pt", input_size=args.size)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, size=(args.size, args.size, 3), dtype=np.uint8)

    # The authors run float32 eager on whatever device the compared backends use.
    device = "cuda" if any(not b.startswith("cpu") for b in args.backends.split(",")) \
        and torch.cuda.is_available() else "cpu"
    authors = m2snet.create_model(**m2snet.VARIANTS[args.variant], weights=weights,
                                  impl="dense").to(device)
    from m2snet.preprocess import normalize
    x = normalize(torch.from_numpy(frame).permute(2, 0, 1)[None], m2snet.IMAGENET).to(device)
    with torch.inference_mode():
        reference = torch.sigmoid(authors(x))[0, 0].cpu()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    rows = {"authors": {"call": lambda: authors(x), "start_s": 0.0}}
    for spec in args.backends.split(","):
        backend, _, impl = spec.partition(":")  # "cpu:factored" picks the subtraction unit
        start = time.perf_counter()
        seg = Segmenter(weights, backend=backend, precision=args.precision, impl=impl or None)
        seg.warmup(iterations=1)
        rows[spec] = {"call": lambda s=seg: s(frame), "start_s": time.perf_counter() - start}
        out = seg(frame)
        probabilities, masks = out.probabilities.cpu(), out.masks.cpu()
        rows[spec]["max_prob_diff"] = (probabilities - reference).abs().max().item()
        rows[spec]["dice_vs_authors"] = _dice(masks, reference > 0.5)

    times = {name: [] for name in rows}
    with torch.inference_mode():
        for row in rows.values():
            row["call"]()
        for _ in range(args.repeats):
            for name, row in rows.items():
                sync()
                t0 = time.perf_counter()
                row["call"]()
                sync()
                times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["authors"])
    results = {}
    for name, row in rows.items():
        med = statistics.median(times[name])
        results[name] = {k: v for k, v in row.items() if k != "call"}
        results[name].update(median_ms=med * 1e3, fps=1.0 / med, speedup_vs_authors=base / med)
    return {"benchmark": "engine_latency", "variant": args.variant, "size": args.size,
            "precision": args.precision, "threads": args.threads, "repeats": args.repeats,
            "command": " ".join(["python"] + sys.argv),
            "machine": {"cpu": cpu_name(), "torch": torch.__version__,
                        "gpu": torch.cuda.get_device_name() if device == "cuda" else None},
            "results": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="m2snet", choices=sorted(m2snet.VARIANTS))
    parser.add_argument("--backends", default="cpu",
                        help="comma-separated Segmenter backends, each optionally with its "
                             "subtraction unit: cpu:kernel,cpu:factored,compile")
    parser.add_argument("--precision", default=None, help="fp32 (CPU default), fp16, bf16")
    parser.add_argument("--size", type=int, default=352)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    result = run(args)
    print(f"{args.variant} {args.size}x{args.size}, {args.threads} threads, "
          f"{result['machine']['cpu']}, torch {torch.__version__}")
    print(f"{'path':<14} {'median ms':>10} {'fps':>6} {'speed-up':>9} {'start s':>8} "
          f"{'max |dp|':>9} {'Dice':>6}")
    for name, r in result["results"].items():
        print(f"{name:<14} {r['median_ms']:>10.1f} {r['fps']:>6.2f} {r['speedup_vs_authors']:>8.2f}x "
              f"{r['start_s']:>8.1f} {r.get('max_prob_diff', 0.0):>9.2e} "
              f"{r.get('dice_vs_authors', 1.0):>6.3f}")
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
