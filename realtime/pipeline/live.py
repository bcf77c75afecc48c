"""Live: the core's ``latest`` policy feeding display sinks, with latency and mask age
measured. OpenCV windows must live in the main thread, so sinks are fed from the thread that
calls ``run()``.

Two display modes:
- default: every source frame is shown, with the newest mask computed on a frame at or before
  it; the picture keeps the source's frame rate and the mask's age is measured;
- ``sync``: each segmented frame is shown with its own mask (frame rate = model rate).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from realtime.errors import SourceError
from realtime.io.overlay import OverlayStyle
from realtime.io.sinks import MaskSink, Sink, close_all
from realtime.io.sources import Source
from realtime.pipeline.alerts import AlertFilter, AlertSettings
from realtime.pipeline.tracks import PolypTracker
from realtime.pipeline.core import Pipeline, PipelineOptions

log = logging.getLogger("realtime.live")


@dataclass
class LiveOptions:
    sync: bool = False
    pace: bool = True                 # play files at their timestamps (off: as fast as decoded)
    duration: float | None = None     # seconds; None runs until the source ends or quit
    style: OverlayStyle = field(default_factory=OverlayStyle)
    hud: bool = True
    min_area: int = 0
    threshold: float | None = None    # None: the Segmenter's own
    alerts: AlertSettings | None = field(default_factory=AlertSettings)  # None: no alert


class LivePipeline:
    def __init__(self, source: Source, segmenter, sinks: list[Sink],
                 options: LiveOptions | None = None, mask_sink: MaskSink | None = None):
        self.source, self.segmenter, self.sinks = source, segmenter, sinks
        self.options = options or LiveOptions()
        self.mask_sink = mask_sink
        o = self.options
        self.core = Pipeline(source, segmenter, PipelineOptions(
            policy="latest", sync=o.sync, pace=o.pace, duration=o.duration, min_area=o.min_area,
            threshold=o.threshold, style=o.style), on_result=mask_sink.write if mask_sink else None)
        self.stats, self.stop = self.core.stats, self.core.stop
        info = getattr(segmenter, "info", None)
        self.backend = info.label if info is not None else "model"

    def run(self) -> dict:
        """Run until the source ends, ``duration`` passes, a sink asks to quit, or Ctrl-C
        (which propagates after everything is closed). Returns the summary."""
        log.info("live: %s -> %s%s", self.source.description, self.backend,
                 ", synchronous display" if self.options.sync else "")
        try:
            self._show_all()
        finally:
            errors = close_all([*self.sinks, self.mask_sink, self.source])
        if errors:
            raise RuntimeError(f"live: closing an output failed: {errors[0]}") from errors[0]
        if not self.stats.captured:
            raise SourceError(f"{self.source.description}: no frame was received"
                              + (f" ({self.source.lost})" if self.source.lost else ""))
        return self.summary()

    def _show_all(self) -> None:
        stats = self.stats
        alerts = AlertFilter(self.options.alerts) if self.options.alerts else None
        tracker = PolypTracker(self.source.fps or 30.0)
        state, last_mask = None, None
        for result in self.core:
            t = time.perf_counter()
            if result.mask_index is not None and result.mask_index != last_mask:
                last_mask = result.mask_index  # a new mask: new evidence (shown ones are not)
                tracker.update(result.regions, result.mask_index, result.mask_captured)
                if alerts is not None:
                    state = alerts.observe(result)
            result.alert = state
            result.hud = stats.hud(self.backend) if self.options.hud else ""
            if result.hud and state is not None and state.label:
                result.hud += f" | {state.label}"
            result.overlay  # drawn here so that "draw" and "sink" are timed apart
            if result.mask_captured is not None:
                stats.mask_age.add(result.captured - result.mask_captured)
            t1 = time.perf_counter()
            for sink in self.sinks:
                sink.write(result)
            now = time.perf_counter()
            stats.stage("draw", t1 - t)
            stats.stage("sink", now - t1)
            stats.latency.add(now - result.captured)
            if any(sink.quit_requested for sink in self.sinks):
                break

    def summary(self) -> dict:
        return self.stats.summary(
            dropped=self.stats.captured - self.stats.processed,
            not_displayed=self.core.not_delivered,
            extra={"source": self.source.description, "backend": self.backend,
                   "mode": "sync" if self.options.sync else "newest-mask",
                   "damaged_packets": self.source.damaged,
                   "reconnects": self.source.reconnects,
                   "source_lost": self.source.lost})
