"""Offline annotation throughput at 720p (or 1080p) and where the time goes.

    python benchmarks/annotate_throughput.py --json benchmarks/results/annotate_cpu_720p.json

Runs ``annotate_one`` (decode, batched inference and overlay/mask encoding in three threads)
on a generated H.264 video of the synthetic colon, for the bundled demo model and for
M2SNet on Res2Net-50 (random weights: speed does not depend on their values). Stage times are
the busy seconds of each thread; they overlap, so the slowest sets the wall time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

import m2snet
from realtime.bench.environment import cpu_name, write_result
from realtime.pipeline.offline import AnnotateOptions, InputSpec, annotate_one
from realtime.bench import procedure_video
from realtime.engine.segmenter import Segmenter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--seconds", type=float, default=5.0, help="video length at 30 fps")
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--models", default="demo,m2snet-res2net50")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    width = args.height * 16 // 9
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "procedure.mp4"
        procedure_video(video, 30, args.seconds, width, args.height)
        for name in args.models.split(","):
            weights = None
            if name == "m2snet-res2net50":
                torch.manual_seed(0)
                weights = m2snet.save_checkpoint(m2snet.create_model("m2snet"),
                                                 Path(tmp) / "m2snet.pt", input_size=352)
            segmenter = Segmenter(weights, backend=args.backend)
            segmenter.warmup(iterations=1, batch=args.batch)
            summary = annotate_one(InputSpec(str(video), name, "video"), segmenter,
                                   Path(tmp) / "out", AnnotateOptions(batch=args.batch, progress=False))
            t = summary["timings"]
            row = {"model": name, "backend": segmenter.info.runner,
                   "input_size": segmenter.size, "frames": summary["frames"],
                   "size": f"{width}x{args.height}", "batch": args.batch, **t}
            rows.append(row)
            print(f"{name}: {t['fps']:.2f} frames/s; busy seconds: decode {t['decode_s']:.1f}, "
                  f"infer {t['infer_s']:.1f}, write (overlay + H.264 + FFV1) {t['write_s']:.1f}, "
                  f"wall {t['wall_s']:.1f}", flush=True)
    write_result(args.json, {
        "benchmark": "annotate_throughput", "date": time.strftime("%Y-%m-%d"),
        "machine": cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__,
        "command": "python " + " ".join(sys.argv), "rows": rows})


if __name__ == "__main__":
    main()
