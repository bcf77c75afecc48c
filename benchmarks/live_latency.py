"""The live pipeline on 720p sources at 30 and 60 fps: does the picture keep the source's frame
rate while the mask updates at the model's rate, and what is the capture-to-sink latency?

    python benchmarks/live_latency.py --json benchmarks/results/live_latency_cpu_720p.json

The sources are real H.264 files (the synthetic colon, 720x720 field of view centred on a
1280x720 black frame as endoscopy monitors show it), played at their timestamps. Sinks: null
(what the pipeline itself sustains) and a fragmented-MP4 recording of every shown frame.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from realtime.bench.environment import cpu_name, write_result
from realtime.bench import procedure_video
from realtime.pipeline.live import LiveOptions, LivePipeline
from realtime.engine.segmenter import Segmenter
from realtime.io.sinks import NullSink, RecordSink
from realtime.io.sources import open_source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each source")
    parser.add_argument("--rates", default="30,60")
    parser.add_argument("--height", type=int, default=720, help="720 or 1080 (16:9 frames)")
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--weights", help="default: the bundled demo model")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    segmenter = Segmenter(args.weights, backend=args.backend)
    segmenter.warmup(iterations=2)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fps in (int(r) for r in args.rates.split(",")):
            video = Path(tmp) / f"src{fps}.mp4"
            procedure_video(video, fps, args.seconds, args.height * 16 // 9, args.height)
            for sink_name in ("null", "record"):
                sink = NullSink() if sink_name == "null" else RecordSink(Path(tmp) / "rec.mp4", fps)
                pipeline = LivePipeline(open_source(str(video)), segmenter, [sink], LiveOptions())
                s = pipeline.run()
                row = {"source_fps": fps, "size": f"{args.height * 16 // 9}x{args.height}",
                       "sink": sink_name, **{
                    k: s[k] for k in ("frames_captured", "frames_processed", "frames_displayed",
                                      "frames_dropped", "frames_not_displayed", "fps",
                                      "latency_ms", "mask_age_ms", "stage_ms_median")}}
                rows.append(row)
                print(f"{fps} fps source, {sink_name:6s} sink: shown {s['fps']['displayed']:.1f} "
                      f"fps (source {s['fps']['capture']:.1f}), model {s['fps']['processed']:.1f} "
                      f"fps, latency p50 {s['latency_ms']['p50']:.1f} p99 "
                      f"{s['latency_ms']['p99']:.1f} ms, mask age p50 {s['mask_age_ms']['p50']:.0f}"
                      f" ms, not shown {s['frames_not_displayed']}", flush=True)
    write_result(args.json, {
        "benchmark": "live_latency", "date": time.strftime("%Y-%m-%d"),
        "machine": cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__,
        "backend": segmenter.info.runner, "weights": segmenter.weights.name,
        "command": "python " + " ".join(sys.argv), "rows": rows})


if __name__ == "__main__":
    main()
