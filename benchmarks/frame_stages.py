"""Where one frame's time goes between the decoded picture and its regions, stage by stage,
and whether a busy Python thread beside it slows the inference (as the pipeline's reader and
writer threads do).

    python benchmarks/frame_stages.py --backend cuda --height 1080 --json stages.json

Stages, each timed with the device synchronized (median of --repeats): the upload of the
frame, resizing and normalization, the network, the probabilities back at frame size and the
threshold, their download to the host (what the pipeline's inference stage does with them),
and the region analysis. Then the whole call (Segmenter + download) alone and with a second
thread running Python code that holds the interpreter's lock in slices: on a GPU, eager
PyTorch launches every kernel from Python, so the lock can starve the launches.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import cv2  # noqa: F401  (before av, which the pipeline imports: one OpenCV/FFmpeg order)
import numpy as np
import torch

from m2snet.phantom import polyp_stills
from m2snet.preprocess import resize_normalize
from realtime.bench.environment import describe_environment, write_result
from realtime.engine import Segmenter
from realtime.engine.frames import to_batch, to_frame_size
from realtime.io.overlay import analyze


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _median_ms(fn, device: torch.device, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        _synchronize(device)
        t = time.perf_counter()
        fn()
        _synchronize(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def _busy_python(stop: threading.Event) -> None:
    """Pure-Python work, as the pipeline's other threads do between their C calls."""
    while not stop.is_set():
        sum(i * i for i in range(2000))


@torch.inference_mode()
def stages(segmenter: Segmenter, frame: np.ndarray, repeats: int,
           switch_intervals: list[float]) -> dict:
    device, runner = segmenter.device, segmenter.runner
    height, width = frame.shape[:2]
    batch, _ = to_batch(frame, device, segmenter.stager)
    x = resize_normalize(batch, segmenter.size, segmenter.normalization, runner.input_dtype)
    logits = runner.forward(x).clone()  # CUDA graphs overwrite their output on the next run
    probabilities = to_frame_size(logits, height, width)
    masks = probabilities > segmenter.threshold
    host_p, host_m = probabilities[0].cpu().numpy(), masks[0].cpu().numpy()
    timed = {
        "upload": lambda: to_batch(frame, device, segmenter.stager),
        "resize_normalize": lambda: resize_normalize(batch, segmenter.size,
                                                     segmenter.normalization, runner.input_dtype),
        "network": lambda: runner.forward(x),
        "to_frame_size_threshold": lambda: to_frame_size(logits, height, width)
                                           > segmenter.threshold,
        "download": lambda: (probabilities[0].cpu().numpy(), masks[0].cpu().numpy()),
        "analyze": lambda: analyze(host_m, host_p, 64),
    }
    result = {name: _median_ms(fn, device, repeats) for name, fn in timed.items()}

    def whole():
        segmenter(frame[None]).numpy()

    result["whole_call"] = _median_ms(whole, device, repeats)
    default_interval = sys.getswitchinterval()
    for interval in switch_intervals:
        # A thread that gave the lock up waits up to this long to get it back from a busy one.
        sys.setswitchinterval(interval)
        stop = threading.Event()
        busy = threading.Thread(target=_busy_python, args=(stop,), daemon=True)
        busy.start()
        try:
            result[f"whole_call_with_busy_thread_switch_{interval * 1e3:g}ms"] = _median_ms(
                whole, device, repeats)
        finally:
            stop.set()
            busy.join()
            sys.setswitchinterval(default_interval)
    result["foreground"] = float(host_m.mean())
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--precision", default=None)
    parser.add_argument("--weights", default=None, help="default: the bundled demo model")
    parser.add_argument("--height", type=int, default=1080, help="16:9 frames of this height")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--switch-intervals", default=str(sys.getswitchinterval()),
                        help="Python's thread switch intervals (seconds, comma-separated) to "
                             "time the call beside the busy thread at (default: the current)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    segmenter = Segmenter(args.weights, backend=args.backend, precision=args.precision)
    width = args.height * 16 // 9
    still = polyp_stills(1, args.height, first_seed=1000)[0][0]
    frame = np.zeros((args.height, width, 3), np.uint8)
    x0 = (width - args.height) // 2
    frame[:, x0:x0 + args.height] = still  # the field of view on a black monitor frame
    segmenter.warmup(iterations=3)
    segmenter(frame)  # this frame size's first call (resize kernels, buffers)
    intervals = [float(v) for v in args.switch_intervals.split(",")]
    result = stages(segmenter, frame, args.repeats, intervals)
    print(f"{segmenter.info.runner}, {width}x{args.height}, median ms over {args.repeats}:")
    for name, value in result.items():
        print(f"  {name:<44} {value:8.2f}" if name != "foreground" else
              f"  {name:<44} {value:8.3f} of the frame")
    write_result(args.json, {
        "benchmark": "frame_stages", "date": time.strftime("%Y-%m-%d"),
        "command": "python " + " ".join(sys.argv), "env": describe_environment(),
        "backend": segmenter.info.runner, "size": f"{width}x{args.height}",
        "input_size": segmenter.size, "repeats": args.repeats, "median_ms": result})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
