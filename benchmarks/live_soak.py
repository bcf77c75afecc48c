"""A one-hour-equivalent live run at an accelerated rate: does memory stay flat?

    python benchmarks/live_soak.py --frames 108000 --json benchmarks/results/live_soak_cpu.json

108,000 frames = one hour at 30 fps, read unpaced from a looped H.264 file through every stage
(capture, inference with frames dropped to stay live, overlay and HUD on every frame, a sink).
Resident memory is sampled every few seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from realtime.bench.environment import cpu_name, write_result
from realtime.bench import procedure_video
from realtime.pipeline.live import LiveOptions, LivePipeline
from realtime.engine.segmenter import Segmenter
from realtime.io.sinks import NullSink
from realtime.io.sources import SourceOptions, open_source


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class Sampler(NullSink):
    def __init__(self, every: float):
        self.samples, self.every, self.frames = [], every, 0

    def write(self, view) -> None:
        self.frames += 1
        now = time.perf_counter()
        if not self.samples or now - self.samples[-1][0] >= self.every:
            self.samples.append((now, self.frames, rss_mb()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=108_000)
    parser.add_argument("--size", default="352x352", help="source frame size WxH")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    segmenter = Segmenter(backend="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "loop.mp4"
        procedure_video(video, 30, 10.0, width, height)
        source = open_source(str(video), SourceOptions(loop=True))
        sampler = Sampler(every=5.0)

        pipeline = LivePipeline(source, segmenter, [sampler], LiveOptions(pace=False))
        original = source.read

        def counted_read():
            return None if pipeline.stats.captured >= args.frames else original()
        source.read = counted_read
        summary = pipeline.run()
    samples = sampler.samples
    settled = samples[len(samples) // 10:]
    growth = settled[-1][2] - settled[0][2]
    print(f"{summary['frames_captured']} frames in {summary['seconds']:.0f} s; resident memory "
          f"{settled[0][2]:.0f} MB after warm-up -> {settled[-1][2]:.0f} MB at the end "
          f"({growth:+.1f} MB), max {max(s[2] for s in samples):.0f} MB")
    write_result(args.json, {
        "benchmark": "live_soak", "date": time.strftime("%Y-%m-%d"), "machine": cpu_name(),
        "torch": torch.__version__, "command": "python " + " ".join(sys.argv),
        "frames_captured": summary["frames_captured"],
        "frames_processed": summary["frames_processed"],
        "frames_displayed": summary["frames_displayed"], "seconds": summary["seconds"],
        "rss_mb_after_warmup": round(settled[0][2], 1), "rss_mb_end": round(settled[-1][2], 1),
        "rss_growth_mb": round(growth, 1),
        "rss_samples": [{"t": round(t - samples[0][0], 1), "frames_shown": n, "rss_mb": round(m, 1)}
                        for t, n, m in samples]})


if __name__ == "__main__":
    main()
