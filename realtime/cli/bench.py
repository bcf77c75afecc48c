"""``python -m realtime bench``: flags around ``realtime.bench``."""

from __future__ import annotations

import argparse


def _has_gpu() -> bool:
    import torch
    return torch.cuda.is_available()


def add_arguments(p: argparse.ArgumentParser) -> None:
    from realtime.bench import default_backends, default_precisions
    gpu = _has_gpu()
    p.add_argument("--quick", action="store_true",
                   help="a small grid (demo model, the default backends, 256, three "
                        "subtraction units) and a short 360p end-to-end run: about a minute "
                        "on a CPU")
    p.add_argument("--models", "--model", "--weights", dest="models", default="demo,m2snet",
                   help="comma list: demo (bundled), m2snet / msnet (Res2Net-50, random "
                        "weights), or checkpoint files (default demo,m2snet)")
    backends = ",".join(default_backends(gpu))
    p.add_argument("--backends", "--backend", dest="backends", default=backends,
                   help=f"comma list (default {backends}; openvino runs the factored unit "
                        f"only; end to end runs auto's choice when listed)")
    precisions = ",".join(default_precisions(gpu))
    p.add_argument("--precisions", "--precision", dest="precisions", default=precisions,
                   help=f"comma list of fp32, fp16, bf16, int8 (default {precisions}); each "
                        "backend runs those it can (int8: openvino)")
    p.add_argument("--batches", "--batch", dest="batches", default="1,4",
                   help="comma list (default 1,4)")
    p.add_argument("--sizes", "--size", dest="sizes", default="256,352",
                   help="network input sides (default 256,352)")
    p.add_argument("--impls", "--impl", dest="impls", default="reference,factored,kernel",
                   help="subtraction units: reference (the authors' dense form), factored, "
                        "kernel (fused) (default: all three)")
    p.add_argument("--repeats", type=int, default=15, help="timed runs per case (default 15)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    p.add_argument("--e2e-height", type=int, default=1080 if gpu else 720,
                   help="end-to-end video height (0: skip; default 720 on CPU, 1080 on GPU)")
    p.add_argument("--e2e-seconds", type=float, default=5.0, help="end-to-end video length")
    p.add_argument("--json", default="runs/bench/bench.json", help="where the results go")
    p.add_argument("--plot", help="PNG plot (default: next to --json)")
    p.add_argument("--compare", metavar="OLD.json", help="print fps ratios against this run")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from realtime import bench
    if args.quick:
        for name, value in bench.QUICK.items():
            setattr(args, name, value)
    return bench.main(args)
