"""The live pipeline: capture -> segment -> overlay -> sinks, with bounded latency.

Three threads. The capture thread reads the source (paced to the frames' timestamps for
files, folders and the synthetic source; network streams and cameras pace themselves) and
hands each frame to the inference thread through a one-slot buffer: when the model is slower
than the source, the frames it had no time for are dropped and counted, so nothing queues up.
The main thread draws and feeds the sinks (OpenCV windows must live in the main thread).

Two display modes:
- default: every source frame is shown, with the newest mask computed on a frame at or before
  it; the picture keeps the source's frame rate and the mask's age is measured;
- ``sync``: each segmented frame is shown with its own mask (frame rate = model rate).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from realtime.buffers import DropOldestQueue, LatestSlot
from realtime.live_stats import LiveStats
from realtime.overlay import MaskLayer, OverlayStyle, analyze, draw
from realtime.sinks import MaskSink, Sink, View
from realtime.sources import Source, SourceError

log = logging.getLogger("realtime.live")


@dataclass
class Frame:
    index: int
    image: np.ndarray
    pts: float | None
    captured: float          # perf_counter when the frame was handed over


@dataclass
class Processed:
    index: int
    captured: float
    layer: MaskLayer


@dataclass
class LiveOptions:
    sync: bool = False
    pace: bool = True                 # play files at their timestamps (off: as fast as decoded)
    duration: float | None = None     # seconds; None runs until the source ends or quit
    style: OverlayStyle = field(default_factory=OverlayStyle)
    hud: bool = True
    min_area: int = 0


class LivePipeline:
    def __init__(self, source: Source, segmenter, sinks: list[Sink],
                 options: LiveOptions | None = None, mask_sink: MaskSink | None = None):
        self.source, self.segmenter, self.sinks = source, segmenter, sinks
        self.options = options or LiveOptions()
        self.mask_sink = mask_sink
        self.stats = LiveStats()
        self.stop = threading.Event()
        self.to_model: LatestSlot[Frame] = LatestSlot()
        self.to_display: DropOldestQueue = DropOldestQueue(3)
        self.results: collections.deque[Processed] = collections.deque(maxlen=16)
        self.errors: list[BaseException] = []
        runner = getattr(segmenter, "runner", None)
        self.backend = getattr(runner, "description", "model").replace(" (cpu)", "")

    # -- threads -------------------------------------------------------------------------
    def _capture(self) -> None:
        start = None
        index = 0
        fps = self.source.fps or 30.0
        try:
            while not self.stop.is_set():
                t = time.perf_counter()
                item = self.source.read()
                if item is None:
                    break
                self.stats.stage("capture", time.perf_counter() - t)
                if self.options.pace and not self.source.live:
                    due = item.pts if item.pts is not None else index / fps
                    if start is None:
                        start = (time.perf_counter(), due)
                    wait = start[0] + (due - start[1]) - time.perf_counter()
                    if wait > 0 and self.stop.wait(wait):
                        break
                now = time.perf_counter()
                frame = Frame(index, item.image, item.pts, now)
                index += 1
                self.stats.count("captured", now)
                self.to_model.put(frame)
                if not self.options.sync:
                    self.to_display.put(frame)
        except BaseException as error:  # noqa: BLE001  (handed to the main thread)
            self.errors.append(error)
            self.stop.set()
        finally:
            self.to_model.close()
            if not self.options.sync:
                self.to_display.close()

    def _infer(self) -> None:
        binary = getattr(self.segmenter, "num_classes", 1) == 1
        try:
            while not self.stop.is_set():
                frame = self.to_model.take(timeout=0.2)
                if frame is None:
                    if self.to_model.closed:
                        break
                    continue
                t = time.perf_counter()
                probabilities, masks = self.segmenter(frame.image).numpy()
                t1 = time.perf_counter()
                layer = analyze(masks, probabilities if binary else None, self.options.min_area)
                t2 = time.perf_counter()
                self.stats.stage("infer", t1 - t)
                self.stats.stage("analyze", t2 - t1)
                if self.mask_sink is not None:
                    self.mask_sink.write(masks, probabilities if binary else None,
                                         frame.captured - self.stats.start)
                done = Processed(frame.index, frame.captured, layer)
                self.results.append(done)
                self.stats.count("processed", time.perf_counter())
                if self.options.sync:
                    self.to_display.put((frame, done))
        except BaseException as error:  # noqa: BLE001
            self.errors.append(error)
            self.stop.set()
        finally:
            if self.options.sync:
                self.to_display.close()

    def _mask_for(self, frame: Frame) -> Processed | None:
        """The newest result computed on this frame or an earlier one."""
        for done in reversed(self.results):
            if done.index <= frame.index:
                return done
        return None

    # -- main thread ---------------------------------------------------------------------
    def run(self) -> dict:
        """Run until the source ends, ``duration`` passes, a sink asks to quit, or Ctrl-C
        (which propagates after everything is closed). Returns the summary."""
        threads = [threading.Thread(target=self._capture, name="capture", daemon=True),
                   threading.Thread(target=self._infer, name="inference", daemon=True)]
        for thread in threads:
            thread.start()
        log.info("live: %s -> %s%s", self.source.description, self.backend,
                 ", synchronous display" if self.options.sync else "")
        try:
            self._show_loop()
        finally:
            self.stop.set()
            self.source.stop()
            for thread in threads:
                thread.join(timeout=10)
            self._close_all()
        if self.errors:
            error = self.errors[0]
            if isinstance(error, (SourceError, KeyboardInterrupt)):
                raise error
            raise RuntimeError(f"live pipeline stopped: {type(error).__name__}: {error}") \
                from error
        if not self.stats.captured:
            raise SourceError(f"{self.source.description}: no frame was received"
                              + (f" ({self.source.lost})" if self.source.lost else ""))
        return self.summary()

    def _show_loop(self) -> None:
        options, stats = self.options, self.stats
        while not self.stop.is_set():
            if options.duration is not None and time.perf_counter() - stats.start >= options.duration:
                break
            item = self.to_display.take(timeout=0.2)
            if item is None:
                if self.to_display.closed:
                    break
                continue
            frame, done = item if options.sync else (item, self._mask_for(item))
            if done is not None and done.layer.shape != frame.image.shape[:2]:
                done = None  # the source changed size: no mask until one of the new size
            t = time.perf_counter()
            overlay = draw(frame.image, done.layer if done else None, options.style)
            if done is not None:
                stats.mask_age.add(frame.captured - done.captured)
            hud = stats.hud(self.backend) if options.hud else ""
            view = View(overlay, frame.image, hud, frame.captured - stats.start)
            t1 = time.perf_counter()
            for sink in self.sinks:
                sink.write(view)
            now = time.perf_counter()
            stats.stage("draw", t1 - t)
            stats.stage("sink", now - t1)
            stats.latency.add(now - frame.captured)
            stats.count("displayed", now)
            if any(sink.quit_requested for sink in self.sinks):
                break

    def _close_all(self) -> None:
        for closable in [*self.sinks, self.mask_sink, self.source]:
            if closable is None:
                continue
            try:
                closable.close()
            except Exception as error:  # noqa: BLE001  (close the others regardless)
                log.warning("closing %s failed: %s", type(closable).__name__, error)
                self.errors.append(error)

    def summary(self) -> dict:
        not_shown = max(0, self.stats.captured - self.stats.displayed) if not self.options.sync \
            else self.to_display.dropped
        return self.stats.summary(
            dropped=self.stats.captured - self.stats.processed,
            not_displayed=not_shown,
            extra={"source": self.source.description, "backend": self.backend,
                   "mode": "sync" if self.options.sync else "newest-mask",
                   "damaged_packets": self.source.damaged,
                   "reconnects": self.source.reconnects,
                   "source_lost": self.source.lost})
