"""Where live frames come from, chosen by one argument (``open_source``):

- a video file (played at its timestamps, or as fast as it decodes with pace off),
- a network stream: rtsp, rtsps, rtmp, http(s), udp, tcp, srt (low-latency options, timeouts,
  reconnection with back-off),
- a capture device: ``/dev/videoN`` or an index (V4L2 size, rate, pixel format),
- an image folder or glob (played at ``fps``),
- ``synthetic`` or ``synthetic:SEED``: the phantom colonoscopy sequence, with ground truth.
"""

from __future__ import annotations

import glob
import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from realtime.decode import SourceError, VideoDecoder

log = logging.getLogger("realtime.source")

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}

__all__ = ["SourceError", "SourceFrame", "open_source"]


@dataclass
class SourceFrame:
    image: np.ndarray            # H x W x 3 uint8 RGB
    pts: float | None            # seconds on the source's own clock
    truth: np.ndarray | None = None  # ground-truth mask (synthetic source only)


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
    description = "source"
    fps: float | None = None
    live = False          # frames arrive at their own pace; file-like sources are paced by us

    def __init__(self):
        self.stopping = threading.Event()
        self.damaged = 0
        self.reconnects = 0
        self.lost: str | None = None

    def read(self) -> SourceFrame | None:
        """The next frame, or None at the end."""
        raise NotImplementedError

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
        self.description = f"synthetic colonoscopy (seed {seed}, {size}x{size}, {fps:g} fps)"

    def read(self) -> SourceFrame:
        t = self.index / self.fps
        self.index += 1
        image, truth = self.scene.frame(t)
        return SourceFrame(image, t, truth)


class FileSource(Source):
    """A video file; with ``loop`` it starts again at its end, timestamps continuing."""

    def __init__(self, path: str, loop: bool = False):
        super().__init__()
        self.path, self.loop = path, loop
        self.decoder = VideoDecoder(path)
        self.fps = self.decoder.fps
        width, height = self.decoder.size
        self.description = f"{path} ({width}x{height}, {self.fps or 0:.3g} fps)"
        self._frames = self.decoder.frames()
        self._offset, self._first_pts, self._last_pts, self.passes = 0.0, None, None, 1

    def read(self) -> SourceFrame | None:
        item = next(self._frames, None)
        if item is None and self.loop and self._last_pts is not None:
            self.damaged += self.decoder.damaged
            self.decoder.close()
            self.decoder = VideoDecoder(self.path)
            self._frames = self.decoder.frames()
            self._offset = self._last_pts + 1 / (self.fps or 30.0) - (self._first_pts or 0.0)
            self.passes += 1
            item = next(self._frames, None)
        if item is None:
            self.damaged += self.decoder.damaged
            return None
        pts = None if item[1] is None else item[1] + self._offset
        if self._first_pts is None:
            self._first_pts = pts
        self._last_pts = pts if pts is not None else self._last_pts
        return SourceFrame(item[0], pts)

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

    def read(self) -> SourceFrame | None:
        while not self.stopping.is_set():
            item = next(self._frames, None)
            if item is not None:
                self.received += 1
                return SourceFrame(item[0], item[1])
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
        width = int(self.capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(self.capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.description = f"camera {device} ({width}x{height}, {self.fps or 0:.3g} fps)"

    def read(self) -> SourceFrame | None:
        ok, bgr = self.capture.read()
        if not ok:
            self.lost = "the capture device stopped delivering frames"
            return None
        return SourceFrame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
                           self.capture.get(cv2.CAP_PROP_POS_MSEC) / 1000 or None)

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
    def __init__(self, spec: str, fps: float):
        super().__init__()
        self.paths = list_images(spec)
        if not self.paths:
            raise SourceError(f"{spec}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
        self.fps, self.index = fps, 0
        self.description = f"{spec} ({len(self.paths)} images, {fps:g} fps)"

    def read(self) -> SourceFrame | None:
        while self.index < len(self.paths):
            path, self.index = self.paths[self.index], self.index + 1
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                self.damaged += 1
                log.warning("%s: not a readable image, skipped", path)
                continue
            return SourceFrame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (self.index - 1) / self.fps)
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
