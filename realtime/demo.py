"""The live demo: a synthetic colonoscopy stream, segmented and overlaid at frame rate.

A source thread renders the phantom at the stream's frame rate into a one-frame slot (the
newest frame wins; frames the model could not keep up with are counted as dropped, so the
latency never grows). The main loop segments the newest frame, draws the mask and a status
line, and shows it in a window, or, on a machine without a display, records it to a video
file that survives being interrupted (fragmented MP4).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2  # before av: the reverse order hangs cv2.imshow
import numpy as np

from m2snet.phantom import PhantomScene
from realtime.overlay import draw_mask, draw_status

log = logging.getLogger("realtime.demo")


@dataclass
class Stamped:
    index: int
    time: float
    image: np.ndarray


class LatestSlot:
    """Holds the newest item only; putting over an unread item counts a drop."""

    def __init__(self):
        self._item: Stamped | None = None
        self._cond = threading.Condition()
        self.dropped = 0
        self.closed = False

    def put(self, item: Stamped) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify()

    def take(self, timeout: float = 1.0) -> Stamped | None:
        with self._cond:
            if self._item is None and not self.closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class PhantomStream(threading.Thread):
    """Renders one phantom scene at ``fps`` into a LatestSlot until stopped."""

    def __init__(self, slot: LatestSlot, fps: float, size: int, seed: int):
        super().__init__(name="phantom-source", daemon=True)
        self.slot, self.fps = slot, fps
        # every demo colon has polyps; the camera path makes them come and go
        self.scene = PhantomScene(seed, size, max_polyps=4, polyp_probability=1.0)
        self.stop_event = threading.Event()
        self.produced = 0

    def run(self) -> None:
        start = time.perf_counter()
        while not self.stop_event.is_set():
            due = start + self.produced / self.fps
            delay = due - time.perf_counter()
            if delay > 0:
                self.stop_event.wait(delay)
            image, _ = self.scene.frame(self.produced / self.fps)
            self.slot.put(Stamped(self.produced, time.perf_counter(), image))
            self.produced += 1
        self.slot.close()


def display_available() -> bool:
    """The GUI build of OpenCV aborts the process without a display: check first."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class VideoRecorder:
    """H.264 in fragmented MP4: playable up to the last fragment even after a crash."""

    def __init__(self, path: Path, fps: float, width: int, height: int):
        import av
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.container = av.open(str(path), "w", format="mp4",
                                 options={"movflags": "frag_keyframe+empty_moov"})
        self.stream = self.container.add_stream("libx264", rate=int(round(fps)))
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = "yuv420p"
        self.stream.codec_context.time_base = Fraction(1, 1000)
        self.frames = 0
        self._last_pts = -1

    def write(self, rgb: np.ndarray, seconds: float) -> None:
        """Add a frame shown at ``seconds`` after the start (live: frames are not evenly
        spaced, so each keeps its own time)."""
        import av
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.time_base = Fraction(1, 1000)
        frame.pts = self._last_pts = max(int(seconds * 1000), self._last_pts + 1)
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


def run_demo(segmenter, seconds: float | None, fps: float = 30.0, size: int = 352,
             seed: int = 1, record: Path | None = None, show: bool | None = None) -> dict:
    """Run the demo; returns counts and timings. ``show`` None: a window if there is a
    display. Without a window, ``record`` (or runs/demo/demo.mp4) gets the overlay video."""
    show = display_available() if show is None else show
    if not show and record is None:
        record = Path("runs/demo/demo.mp4")
    if not show and seconds is None:
        seconds = 10.0
    segmenter.warmup(iterations=1)  # JIT compiles (numba, torch.compile) before the clock starts
    slot = LatestSlot()
    source = PhantomStream(slot, fps, size, seed)
    recorder = VideoRecorder(record, fps, size, size) if record else None
    shown, latencies, started = 0, [], time.perf_counter()
    window = "M2SNet live demo (q to quit)"
    source.start()
    try:
        while seconds is None or time.perf_counter() - started < seconds:
            item = slot.take()
            if item is None:
                if slot.closed:
                    break
                continue
            result = segmenter(item.image)
            mask = result.masks.cpu().numpy()
            latency = time.perf_counter() - item.time
            latencies.append(latency)
            shown += 1
            elapsed = time.perf_counter() - started
            status = (f"{segmenter.runner.description} | {shown / elapsed:4.1f} fps | "
                      f"latency {latency * 1e3:4.0f} ms | dropped {slot.dropped}")
            overlay = draw_status(draw_mask(item.image, mask), status)
            if recorder:
                recorder.write(overlay, elapsed)
            if show:
                cv2.imshow(window, cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
                if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                    break
    finally:
        source.stop_event.set()
        source.join(timeout=5)
        if recorder:
            recorder.close()
        if show:
            cv2.destroyAllWindows()
    elapsed = time.perf_counter() - started
    return {"produced": source.produced, "shown": shown, "dropped": slot.dropped,
            "seconds": elapsed, "fps": shown / elapsed if elapsed else 0.0,
            "median_latency_ms": float(np.median(latencies) * 1e3) if latencies else None,
            "recording": str(record) if record else None}
