"""The one pipeline core: a source read in one thread, segmented in another, delivered in
order to the caller's thread. Live runs, offline annotation, ``realtime.stream()``, the web
app and the benchmark all iterate this, configured by a policy:

- ``latest`` (live): the reader paces file-like sources to their timestamps and hands each
  frame over through a one-frame slot, so frames the model has no time for are dropped and
  counted and latency never builds up. Every source frame is delivered with the newest mask
  computed on it or an earlier frame (``sync``: each segmented frame with its own mask).
- ``every`` (offline): nothing is dropped. The reader blocks when the model is behind,
  inference takes frames in batches (a short last batch is padded: compiled backends are
  built for one shape), and every frame is delivered, in order, with its own mask.

Iterating yields ``FrameResult``s. Leaving the loop early (break, an exception, Ctrl-C) stops
both threads; a failure in either is raised in the caller's thread once the loop ends.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator

from realtime.errors import RealtimeError
from realtime.io.overlay import OverlayStyle, analyze
from realtime.io.results import FrameResult
from realtime.io.sources import Source, SourceFrame
from realtime.pipeline.handoff import DropOldestQueue, Handoff, LatestSlot
from realtime.pipeline.stats import PipelineStats

log = logging.getLogger("realtime.pipeline")

POLICIES = ("latest", "every")


@dataclass
class PipelineOptions:
    policy: str = "latest"              # latest (live) or every (offline)
    sync: bool = False                  # latest: deliver segmented frames only, own mask each
    pace: bool = True                   # latest: play file-like sources at their timestamps
    duration: float | None = None       # seconds; None runs until the source ends
    batch: int = 1                      # every: frames per inference call
    min_area: int = 64                  # regions below this many pixels are not listed
    threshold: float | None = None      # None: the Segmenter's own
    style: OverlayStyle | None = None   # how delivered frames draw their overlay

    def __post_init__(self):
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {self.policy!r}")
        if self.batch < 1:
            raise ValueError(f"batch must be at least 1, got {self.batch}")


@dataclass
class _Captured:
    frame: SourceFrame
    captured: float


class _Worker(threading.Thread):
    """A pipeline thread whose failure is kept for the caller's thread and stops the run."""

    def __init__(self, name: str, target: Callable[[], None], stop: threading.Event):
        super().__init__(name=name, daemon=True)
        self._work, self._stop_run, self.error = target, stop, None

    def run(self) -> None:
        try:
            self._work()
        except BaseException as error:  # noqa: BLE001  (raised in the caller's thread)
            self.error = error
            self._stop_run.set()


class Pipeline:
    def __init__(self, source: Source, segmenter, options: PipelineOptions | None = None,
                 on_result: Callable[[FrameResult], None] | None = None, name: str | None = None):
        """``on_result`` is called in the inference thread with every mask as it is computed
        (live mask recordings keep masks that are never shown). ``name`` prefixes failures
        (default: the source's description)."""
        self.source, self.segmenter = source, segmenter
        self.name = name or source.description
        self.options = options or PipelineOptions()
        self.on_result = on_result
        self.stats = PipelineStats()
        self.stop = threading.Event()
        self.binary = getattr(segmenter, "num_classes", 1) == 1
        every = self.options.policy == "every"
        depth = 2 * self.options.batch + 2
        self._to_model: Handoff[_Captured] = Handoff(depth, block=True) if every else LatestSlot()
        self._delivered: Handoff = Handoff(depth, block=True) if every else DropOldestQueue(3)
        self._newest: collections.deque[FrameResult] = collections.deque(maxlen=16)

    @property
    def shows_every_source_frame(self) -> bool:
        """Latest policy without sync: frames come from the reader, masks from the newest."""
        return self.options.policy == "latest" and not self.options.sync

    @property
    def not_delivered(self) -> int:
        if self.shows_every_source_frame:
            return max(0, self.stats.captured - self.stats.displayed)
        return self._delivered.dropped

    # -- threads ---------------------------------------------------------------------------
    def _read(self) -> None:
        options, source, stats = self.options, self.source, self.stats
        paced = options.policy == "latest" and options.pace and not source.live
        start = None
        try:
            while not self.stop.is_set():
                t = time.perf_counter()
                frame = source.read()
                if frame is None:
                    break
                stats.stage("capture", time.perf_counter() - t)
                if paced:
                    if start is None:
                        start = (time.perf_counter(), frame.time)
                    wait = start[0] + (frame.time - start[1]) - time.perf_counter()
                    if wait > 0 and self.stop.wait(wait):
                        break
                now = time.perf_counter()
                item = _Captured(frame, now)
                stats.count("captured", now)
                if not self._to_model.put(item):
                    break
                if self.shows_every_source_frame:
                    self._delivered.put(item)
        finally:
            self._to_model.close()
            if self.shows_every_source_frame:
                self._delivered.close()

    def _infer(self) -> None:
        try:
            while not self.stop.is_set():
                batch = self._take_batch()
                if batch is None:
                    break
                if batch:
                    self._segment(batch)
        finally:
            if not self.shows_every_source_frame:
                self._delivered.close()

    def _take_batch(self) -> list[_Captured] | None:
        """Up to ``batch`` frames (live: the newest one); [] on a timeout, None at the end."""
        size = self.options.batch if self.options.policy == "every" else 1
        batch: list[_Captured] = []
        while len(batch) < size and not self.stop.is_set():
            item = self._to_model.take(timeout=0.2)
            if item is not None:
                batch.append(item)
            elif self._to_model.exhausted:
                return batch or None
            elif self.options.policy == "latest":
                return batch
        return batch

    def _segment(self, batch: list[_Captured]) -> None:
        t = time.perf_counter()
        if self.options.policy == "every":
            # a short last batch is padded: compiled backends are built for one shape
            images = [item.frame.image for item in batch]
            images += [images[-1]] * (self.options.batch - len(images))
        else:
            images = batch[0].frame.image[None]  # one frame as a batch of one (a view)
        kwargs = {} if self.options.threshold is None else {"threshold": self.options.threshold}
        probabilities, masks = self.segmenter(images, **kwargs).numpy()
        t1 = time.perf_counter()
        self.stats.stage("infer", t1 - t)
        for i, item in enumerate(batch):
            t2 = time.perf_counter()
            layer = analyze(masks[i], probabilities[i] if self.binary else None,
                            self.options.min_area)
            self.stats.stage("analyze", time.perf_counter() - t2)
            result = FrameResult(item.frame, probabilities[i], masks[i], layer, item.frame.index,
                                 item.captured, item.captured - self.stats.start,
                                 mask_captured=item.captured)
            if self.on_result is not None:
                self.on_result(result)
            self._newest.append(result)
            self.stats.count("processed", time.perf_counter())
            if not self.shows_every_source_frame and not self._delivered.put(result):
                return

    # -- the caller's thread -------------------------------------------------------------------
    def __iter__(self) -> Iterator[FrameResult]:
        workers = [_Worker("reader", self._read, self.stop),
                   _Worker("inference", self._infer, self.stop)]
        for worker in workers:
            worker.start()
        try:
            while not self.stop.is_set():
                if self.options.duration is not None and \
                        time.perf_counter() - self.stats.start >= self.options.duration:
                    break
                item = self._delivered.take(timeout=0.2)
                if item is None:
                    if self._delivered.exhausted:
                        break
                    continue
                result = self._with_newest_mask(item) if isinstance(item, _Captured) else item
                result.style = self.options.style or result.style
                yield result
                self.stats.count("displayed", time.perf_counter())
        finally:
            self.stop.set()
            self._to_model.cancel()
            self._delivered.cancel()
            self.source.stop()
            for worker in workers:
                worker.join(timeout=30)
        self._raise_failure(workers)

    def _with_newest_mask(self, item: _Captured) -> FrameResult:
        """The frame with the newest mask computed on it or an earlier frame (if any)."""
        for done in reversed(self._newest):
            if done.index <= item.frame.index:
                if done.mask is not None and done.mask.shape[:2] != item.frame.image.shape[:2]:
                    break  # the source changed size: no mask until one of the new size
                return FrameResult(item.frame, done.probabilities, done.mask, done.layer,
                                   done.index, item.captured, item.captured - self.stats.start,
                                   mask_captured=done.captured)
        return FrameResult(item.frame, None, None, None, None, item.captured,
                           item.captured - self.stats.start)

    def _raise_failure(self, workers: list[_Worker]) -> None:
        for worker in workers:
            error = worker.error
            if error is None:
                continue
            if isinstance(error, (RealtimeError, KeyboardInterrupt)):
                raise error
            raise RuntimeError(f"{self.name}: {worker.name} failed: "
                               f"{type(error).__name__}: {error}") from error
