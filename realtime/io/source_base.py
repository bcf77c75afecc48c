"""The source protocol every kind of input implements: numbered frames with exact
timestamps (``pts`` in ticks of ``time_base``, seconds derived), missing timestamps filled in
and flagged, damaged input counted, and a stop that a waiting read honours."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

MILLISECONDS = Fraction(1, 1000)


@dataclass
class SourceFrame:
    image: np.ndarray                # H x W x 3 uint8 RGB
    pts: int                         # ticks of ``time_base`` on the source's own clock
    time_base: Fraction = MILLISECONDS
    interpolated: bool = False       # the source gave no timestamp: previous + one interval
    truth: np.ndarray | None = None  # ground-truth mask (synthetic source only)
    index: int = 0                   # position among the frames this source delivered

    @property
    def time(self) -> float:
        """Seconds on the source's clock."""
        return float(self.pts * self.time_base)


@dataclass
class SourceOptions:
    fps: float | None = None               # image folders, synthetic; file sources keep theirs
    synthetic_size: int = 352
    camera_size: tuple[int, int] | None = None
    camera_fps: float | None = None
    camera_format: str | None = None       # FOURCC, e.g. MJPG or YUYV
    open_timeout: float = 10.0
    read_timeout: float = 5.0
    reconnect_attempts: int = 5            # consecutive failed connects before giving up
    loop: bool = False                     # video files: start again at the end
    stream_options: dict = field(default_factory=dict)  # extra FFmpeg options


class Source:
    """Subclasses implement ``_next()``: (RGB image, pts ticks or None, ground truth or None),
    or None at the end; ``read()`` numbers the frames and fills in missing timestamps."""
    description = "source"
    fps: float | None = None
    time_base: Fraction = MILLISECONDS
    live = False          # frames arrive at their own pace; file-like sources are paced by us
    width: int | None = None
    height: int | None = None
    frame_count: int | None = None  # declared or estimated (progress bars); None: unknown
    declared_frames: int | None = None  # what a file's header states (checked at the end)
    rotation: int = 0                   # degrees counterclockwise applied to turn frames upright

    def __init__(self):
        self.stopping = threading.Event()
        self.damaged = 0        # undecodable packets or unreadable images skipped
        self.reconnects = 0
        self.lost: str | None = None
        self.incomplete: str | None = None  # a file that ended before what it declares
        self.delivered = 0
        self.interpolated = 0
        self._last_pts: int | None = None

    def _next(self) -> tuple[np.ndarray, int | None, np.ndarray | None] | None:
        raise NotImplementedError

    def read(self) -> SourceFrame | None:
        """The next frame, or None at the end."""
        item = self._next()
        if item is None:
            return None
        image, pts, truth = item
        interpolated = pts is None
        if interpolated:
            step = max(1, round(1 / ((self.fps or 30.0) * self.time_base)))
            pts = 0 if self._last_pts is None else self._last_pts + step
            self.interpolated += 1
        self._last_pts = pts
        frame = SourceFrame(image, pts, self.time_base, interpolated, truth, self.delivered)
        self.delivered += 1
        return frame

    def __iter__(self):
        while (frame := self.read()) is not None:
            yield frame

    def stop(self) -> None:
        """Make a waiting ``read`` return soon (called from another thread)."""
        self.stopping.set()

    def close(self) -> None:
        pass
