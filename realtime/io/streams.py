"""Sources that deliver at their own pace: network streams (low-latency FFmpeg options,
timeouts, reconnection with back-off) and V4L2 capture devices."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2

from realtime.errors import SourceError
from realtime.io.decode import VideoDecoder
from realtime.io.source_base import MILLISECONDS, Source, SourceOptions

log = logging.getLogger("realtime.source")

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")


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
