"""Where live frames come from, chosen by one argument (``open_source``):

- a video file (played at its timestamps, or as fast as it decodes with pace off),
- a network stream: rtsp, rtsps, rtmp, http(s), udp, tcp, srt (low-latency options, timeouts,
  reconnection with back-off),
- a capture device: ``/dev/videoN`` or an index (V4L2 size, rate, pixel format),
- an image folder or glob (played at ``fps``),
- ``synthetic`` or ``synthetic:SEED``: the phantom colonoscopy sequence, with ground truth.

Every source numbers its frames and gives each an exact timestamp: ``pts`` in ticks of the
source's ``time_base`` (a Fraction of a second), seconds derived (``SourceFrame.time``). A
frame that arrives without one (an elementary stream, some cameras) gets the previous one plus
one frame interval and is flagged ``interpolated``. Live and offline runs read the same sources.
"""

from __future__ import annotations

import glob
import logging
import re
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from realtime.errors import SourceError
from realtime.io.decode import VideoDecoder

log = logging.getLogger("realtime.source")

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}

__all__ = ["Source", "SourceError", "SourceFrame", "SourceOptions", "open_source"]

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

    def __init__(self):
        self.stopping = threading.Event()
        self.damaged = 0        # undecodable packets or unreadable images skipped
        self.reconnects = 0
        self.lost: str | None = None
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


class SyntheticSource(Source):
    def __init__(self, seed: int, size: int, fps: float):
        super().__init__()
        from m2snet.phantom import PhantomScene
        # every synthetic colon has polyps; the camera path makes them come and go
        self.scene = PhantomScene(seed, size, max_polyps=4, polyp_probability=1.0)
        self.fps, self.index = fps, 0
        self.time_base = 1 / Fraction(fps).limit_denominator(1001)  # one tick a frame
        self.width = self.height = size
        self.description = f"synthetic colonoscopy (seed {seed}, {size}x{size}, {fps:g} fps)"

    def _next(self):
        image, truth = self.scene.frame(self.index / self.fps)
        self.index += 1
        return image, self.index - 1, truth


class FileSource(Source):
    """A video file; with ``loop`` it starts again at its end, timestamps continuing."""

    def __init__(self, path: str, loop: bool = False):
        super().__init__()
        self.path, self.loop = path, loop
        if not Path(path).exists():
            raise SourceError(f"{path}: no such file")
        self.decoder = VideoDecoder(path)
        self.fps = self.decoder.fps
        self.time_base = self.decoder.time_base or Fraction(1, 90000)
        self.width, self.height = self.decoder.size
        self.frame_count = self.decoder.frame_count
        self.description = f"{path} ({self.width}x{self.height}, {self.fps or 0:.3g} fps)"
        self._frames = self.decoder.frames()
        self._offset, self._first_pts, self._pass_last, self.passes = 0, None, None, 1

    def _next(self):
        item = next(self._frames, None)
        if item is None and self.loop and self._pass_last is not None:
            self.damaged += self.decoder.damaged
            self.decoder.close()
            self.decoder = VideoDecoder(self.path)
            self._frames = self.decoder.frames()
            step = max(1, round(1 / ((self.fps or 30.0) * self.time_base)))
            self._offset = self._pass_last + step - (self._first_pts or 0)
            self.passes += 1
            item = next(self._frames, None)
        if item is None:
            self.damaged += self.decoder.damaged
            return None
        image, _, pts = item
        pts = None if pts is None else pts + self._offset
        if self._first_pts is None:
            self._first_pts = pts
        self._pass_last = pts if pts is not None else self._pass_last
        return image, pts, None

    def close(self) -> None:
        self.decoder.close()


class StreamSource(Source):
    """A network stream; a cut connection is re-opened with growing pauses between attempts."""

    live = True

    def __init__(self, url: str, options: SourceOptions):
        super().__init__()
        self.url, self.opts = url, options
        self.description = url
        self.received = 0
        self._decoder: VideoDecoder | None = None
        self._frames = None
        self._connect()

    def _ffmpeg_options(self) -> dict:
        options = {"flags": "low_delay", "analyzeduration": "1000000",
                   "probesize": "1000000"}
        scheme = self.url.split(":", 1)[0].lower()
        if scheme in ("rtsp", "rtsps"):
            options["rtsp_transport"] = "tcp"
        if scheme == "udp":
            options["overrun_nonfatal"] = "1"
        options.update(self.opts.stream_options)
        return options

    def _connect(self) -> None:
        reason, pause = "", 0.5
        for attempt in range(1, self.opts.reconnect_attempts + 1):
            if self.stopping.is_set():
                raise SourceError(f"{self.url}: stopped while connecting")
            try:
                self._decoder = VideoDecoder(
                    self.url, options=self._ffmpeg_options(),
                    timeout=(self.opts.open_timeout, self.opts.read_timeout), low_delay=True)
                self._frames = self._decoder.frames()
                self.fps = self.fps or self._decoder.fps
                self.time_base = self._decoder.time_base or MILLISECONDS
                self.width, self.height = self._decoder.size
                return
            except SourceError as error:
                reason = str(error).removeprefix(f"{self.url}: ")
                if attempt < self.opts.reconnect_attempts:
                    log.warning("%s: %s; retrying in %.1f s (attempt %d of %d)", self.url,
                                reason, pause, attempt + 1, self.opts.reconnect_attempts)
                    self.stopping.wait(pause)
                    pause = min(pause * 2, 8.0)
        raise SourceError(f"{self.url}: unreachable after {self.opts.reconnect_attempts} "
                          f"attempts: {reason}")

    def _next(self):
        while not self.stopping.is_set():
            item = next(self._frames, None)
            if item is not None:
                self.received += 1
                return item[0], item[2], None
            reason = self._decoder.error or "the stream ended"
            self.damaged += self._decoder.damaged
            self._decoder.close()
            log.warning("%s: connection lost (%s); reconnecting", self.url, reason)
            try:
                self._connect()
                self.reconnects += 1
            except SourceError as error:
                if not self.received:
                    raise
                self.lost = str(error)
                log.warning("%s", error)
                return None
        return None

    def close(self) -> None:
        if self._decoder is not None:
            self._decoder.close()


class CameraSource(Source):
    live = True

    def __init__(self, device: str, options: SourceOptions):
        super().__init__()
        target = int(device) if device.isdigit() else device
        if isinstance(target, str) and not Path(target).exists():
            raise SourceError(f"{device}: no such capture device")
        self.capture = cv2.VideoCapture(target, cv2.CAP_V4L2)
        if not self.capture.isOpened():
            raise SourceError(f"{device}: cannot open the capture device (busy, or not a "
                              f"V4L2 camera)")
        if options.camera_format:
            self.capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*options.camera_format))
        if options.camera_size:
            self.capture.set(cv2.CAP_PROP_FRAME_WIDTH, options.camera_size[0])
            self.capture.set(cv2.CAP_PROP_FRAME_HEIGHT, options.camera_size[1])
        if options.camera_fps:
            self.capture.set(cv2.CAP_PROP_FPS, options.camera_fps)
        self.fps = self.capture.get(cv2.CAP_PROP_FPS) or None
        self.width = int(self.capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self.capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.description = (f"camera {device} ({self.width}x{self.height}, "
                            f"{self.fps or 0:.3g} fps)")

    def _next(self):
        ok, bgr = self.capture.read()
        if not ok:
            self.lost = "the capture device stopped delivering frames"
            return None
        milliseconds = self.capture.get(cv2.CAP_PROP_POS_MSEC)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), round(milliseconds) or None, None

    def close(self) -> None:
        self.capture.release()


def natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def list_images(spec: str) -> list[Path]:
    """The images of a folder or a glob pattern, in natural order (frame2 before frame10)."""
    if Path(spec).is_dir():
        paths = [p for p in Path(spec).iterdir()]
    else:
        paths = [Path(p) for p in glob.glob(spec)]
    return sorted((p for p in paths if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                  key=natural_key)


class ImageSource(Source):
    """An image sequence at ``fps``: image i at i / fps seconds (millisecond ticks). Images
    that cannot be read, or whose size differs from the first one's, are skipped and counted
    (a sequence is one video: one size)."""

    def __init__(self, spec: str, fps: float):
        super().__init__()
        self.paths = list_images(spec)
        if not self.paths:
            raise SourceError(f"{spec}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
        first = cv2.imread(str(self.paths[0]), cv2.IMREAD_UNCHANGED)
        if first is None:
            raise SourceError(f"{self.paths[0]}: not a readable image")
        self.height, self.width = first.shape[:2]
        self.fps, self.index, self.frame_count = fps, 0, len(self.paths)
        self.description = f"{spec} ({len(self.paths)} images, {fps:g} fps)"

    def _next(self):
        while self.index < len(self.paths):
            path, self.index = self.paths[self.index], self.index + 1
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None or bgr.shape[:2] != (self.height, self.width):
                self.damaged += 1
                log.warning("%s: %s, skipped", path, "not a readable image" if bgr is None else
                            f"size differs from the first image ({self.width}x{self.height})")
                continue
            ticks = round((self.index - 1) / self.fps / self.time_base)
            return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), ticks, None
        return None


def source_kind(spec: str) -> str:
    """What ``spec`` names (synthetic, camera, file, stream or images), checked as far as can
    be without opening it, so that a typo fails before the model loads; SourceError (one line)
    otherwise."""
    if spec == "synthetic" or spec.startswith("synthetic:"):
        if not (spec.partition(":")[2] or "1").isdigit():
            raise SourceError(f"{spec}: the synthetic source takes an integer seed "
                              f"(synthetic:SEED)")
        return "synthetic"
    if spec.isdigit() or spec.startswith("/dev/video"):
        return "camera"
    if "://" in spec:
        scheme = spec.split("://", 1)[0].lower()
        if scheme == "file":
            return "file"
        if scheme not in STREAM_SCHEMES:
            raise SourceError(f"{spec}: unsupported stream type {scheme!r} (supported: "
                              f"{', '.join(STREAM_SCHEMES)})")
        return "stream"
    if Path(spec).is_dir() or any(c in spec for c in "*?["):
        return "images"
    if Path(spec).is_file():
        return "file"
    raise SourceError(f"{spec}: no such file, folder or device (a source is a video file, an "
                      f"image folder or glob, a stream URL, /dev/videoN or a camera index, "
                      f"or 'synthetic')")


def open_source(spec: str, options: SourceOptions | None = None) -> Source:
    """Open the source that ``spec`` names; SourceError (one line) when it cannot be."""
    options = options or SourceOptions()
    kind = source_kind(spec)
    if kind == "synthetic":
        seed = int(spec.partition(":")[2] or "1")
        return SyntheticSource(seed, options.synthetic_size, options.fps or 30.0)
    if kind == "camera":
        return CameraSource(spec, options)
    if kind == "stream":
        return StreamSource(spec, options)
    if kind == "images":
        return ImageSource(spec, options.fps or 30.0)
    return FileSource(spec.removeprefix("file://"), options.loop)
