"""Frame -> network input on the CPU: the one-pass numba resample against torch's operators.

    python benchmarks/preprocess.py
    python benchmarks/preprocess.py --json benchmarks/results/preprocess_cpu.json

For camera-like frame sizes, the median time of turning one uint8 RGB frame into the
normalized 352x352 float32 channels_last input, both ways, interleaved in one run: torch's
operators (what GPU backends run, and what the CPU backends ran before) and
realtime/resample.py (what the CPU backends run now). Also the largest difference between
the two and of each from torch's float64 resize (the exact value), in 0..255 levels.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from realtime.bench.environment import cpu_name, write_result
from m2snet.checkpoint import IMAGENET
from m2snet.preprocess import resize_normalize, torch_resize_normalize

FRAMES = {"480p": (480, 640), "720p": (720, 1280), "1080p": (1080, 1920), "4K": (2160, 3840)}


def parse_sizes(text: str) -> list[tuple[str, tuple[int, int]]]:
    sizes = []
    for name in text.split(","):
        if name in FRAMES:
            sizes.append((name, FRAMES[name]))
        else:
            try:
                height, width = (int(v) for v in name.lower().split("x"))
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"{name!r}: use {', '.join(FRAMES)} or HEIGHTxWIDTH") from None
            sizes.append((name, (height, width)))
    return sizes


def levels(x: torch.Tensor) -> torch.Tensor:
    """Normalized ImageNet input back to 0..255 levels, to state differences in levels."""
    mean = torch.tensor(IMAGENET.mean, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET.std, dtype=torch.float64).view(1, 3, 1, 1)
    return (x.double() * std + mean) * 255.0


def exact(frames: torch.Tensor, size: int) -> torch.Tensor:
    x = frames.permute(0, 3, 1, 2).double()
    if x.shape[-2:] == (size, size):
        return x
    shrinking = x.shape[-2] > size or x.shape[-1] > size
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=shrinking)


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    paths = {
        "torch": lambda f: torch_resize_normalize(f, args.size, IMAGENET).contiguous(
            memory_format=torch.channels_last),
        "resample": lambda f: resize_normalize(f, args.size, IMAGENET, torch.float32),
    }
    rows = []
    for name, (height, width) in args.sizes:
        frame = torch.from_numpy(rng.integers(0, 256, (1, height, width, 3), dtype=np.uint8))
        times = {path: [] for path in paths}
        for fn in paths.values():
            fn(frame)  # compiles numba's kernel on the first size
        for _ in range(args.repeats):
            for path, fn in paths.items():
                start = time.perf_counter()
                fn(frame)
                times[path].append(time.perf_counter() - start)
        truth = exact(frame, args.size)
        out = {path: levels(fn(frame)) for path, fn in paths.items()}
        median = {path: statistics.median(t) * 1e3 for path, t in times.items()}
        rows.append({
            "frame": name, "height": height, "width": width, "median_ms": median,
            "speedup": median["torch"] / median["resample"],
            "max_level_difference": (out["torch"] - out["resample"]).abs().max().item(),
            "max_level_error_vs_float64": {p: (o - truth).abs().max().item()
                                           for p, o in out.items()},
        })
    return {
        "benchmark": "preprocess", "size": args.size, "threads": args.threads,
        "repeats": args.repeats, "command": " ".join(["python"] + sys.argv),
        "machine": {"cpu": cpu_name(), "torch": torch.__version__,
                    "numba": __import__("numba").__version__},
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=parse_sizes, default=parse_sizes("480p,720p,1080p,4K"),
                        help="frame sizes: 480p, 720p, 1080p, 4K or HEIGHTxWIDTH, "
                             "comma-separated (default: all four names)")
    parser.add_argument("--size", type=int, default=352, help="network input side")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    result = run(args)
    print(f"frame -> {args.size}x{args.size} network input, {args.threads} threads, "
          f"{result['machine']['cpu']} (median ms; max error in 0..255 levels vs float64)")
    for row in result["rows"]:
        ms, err = row["median_ms"], row["max_level_error_vs_float64"]
        print(f"{row['frame']:>10}: torch {ms['torch']:6.2f}  resample {ms['resample']:6.2f}  "
              f"= {row['speedup']:4.1f}x   error torch {err['torch']:.1e}, "
              f"resample {err['resample']:.1e}")
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
