"""Video decoding through PyAV (FFmpeg) for files and network streams: RGB frames with their
timestamps, damaged packets skipped and counted instead of ending the input."""

from __future__ import annotations

import logging
from itertools import chain
from typing import Iterator

import cv2  # noqa: F401  (OpenCV before PyAV: the reverse order breaks cv2's window)
import av
import numpy as np

from realtime.errors import SourceError

log = logging.getLogger("realtime.decode")


def ffmpeg_reason(error: BaseException) -> str:
    """FFmpeg's own words without PyAV's '[Errno N]' prefix and repeated file name."""
    if isinstance(error, av.error.FFmpegError):
        return (error.strerror or str(error)).strip().rstrip(".")
    return str(error) or type(error).__name__


# Demuxers that read something other than video from a local file, or that open other files
# the file names (a playlist could make the app decode any video on the server).
REFUSED_FORMATS = {"tty": "text, not video", "hls": "a playlist of other files",
                   "concat": "a list of other files", "lavfi": "a filter graph, not video",
                   "ffmetadata": "metadata, not video"}


# The largest frames taken: 8K-class sides (a crafted header can claim 65000 x 65000, and a
# 16000 x 16000 frame alone needs gigabytes before anything useful happens).
MAX_SIDE = 8192
MAX_PIXELS = 8192 * 4320


def check_frame_size(name: str, width: int, height: int) -> None:
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise SourceError(f"{name}: frames of {width}x{height} exceed the largest this tool "
                          f"takes ({MAX_SIDE} pixels a side, {MAX_PIXELS / 1e6:.1f} megapixels)")


class VideoDecoder:
    """Decodes the first video stream of ``url`` (a file path or a network address).

    ``frames()`` yields ``(rgb, seconds, pts)``: the time in seconds and the timestamp in
    the stream's ``time_base`` ticks, both None when the container gives none. A packet
    FFmpeg cannot decode is counted in ``damaged`` and skipped; a demuxer error ends the
    iteration and is kept in ``error`` (for a file a truncated or broken tail, for a stream a
    lost connection).
    """

    def __init__(self, url: str, *, options: dict | None = None,
                 timeout: float | tuple[float, float] | None = None, low_delay: bool = False):
        self.url = url
        try:
            self.container = av.open(url, options=options or {}, timeout=timeout)
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as error:
            raise SourceError(f"{url}: cannot open as video: {ffmpeg_reason(error)}") from None
        refused = [REFUSED_FORMATS[name] for name in self.container.format.name.split(",")
                   if name in REFUSED_FORMATS]
        if refused and "://" not in url:
            self.container.close()
            raise SourceError(f"{url}: not a video file (FFmpeg reads it as {refused[0]})")
        if not self.container.streams.video:
            self.container.close()
            raise SourceError(f"{url}: has no video stream")
        self.stream = self.container.streams.video[0]
        self._first, self.rotation = None, 0
        try:
            check_frame_size(url, *self.size)
        except SourceError:
            self.container.close()
            raise
        # frame threading decodes faster but holds frames back by the thread count: not live
        self.stream.thread_type = "SLICE" if low_delay else "AUTO"
        self.damaged = 0
        self.error: str | None = None
        self._decoded = self._decode()
        # the first frame, decoded now: its display matrix says how the video is shown (phones
        # record portrait video as landscape frames plus a rotation), and its size is exact
        self._first = next(self._decoded, None)
        self.rotation = self._display_rotation(self._first)

    def _display_rotation(self, frame) -> int:
        """Degrees counterclockwise that turn the frames upright, as players show them: a
        multiple of 90 (other angles are not applied, and said so)."""
        angle = round(frame.rotation) if frame is not None else 0
        if angle % 90:
            log.warning("%s: display rotation of %d degrees is not a quarter turn; frames kept "
                        "as coded", self.url, angle)
            return 0
        return angle % 360

    @property
    def fps(self) -> float | None:
        rate = self.stream.average_rate or self.stream.guessed_rate
        return float(rate) if rate else None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames ``frames()`` yields (upright)."""
        source = self._first if self._first is not None else self.stream.codec_context
        width, height = source.width, source.height
        return (height, width) if self.rotation in (90, 270) else (width, height)

    @property
    def declared_frames(self) -> int | None:
        """The frame count the container's header states (MP4, AVI, ...), or None."""
        return self.stream.frames or None

    @property
    def frame_count(self) -> int | None:
        """Frames the container declares, else an estimate from its duration (for progress
        bars only), else None."""
        if self.stream.frames:
            return self.stream.frames
        if self.container.duration and self.fps:
            return round(self.container.duration / av.time_base * self.fps)
        return None

    @property
    def time_base(self):
        return self.stream.time_base

    def frames(self) -> Iterator[tuple[np.ndarray, float | None, int | None]]:
        first, self._first = self._first, None
        turns = self.rotation // 90
        for frame in self._decoded if first is None else chain([first], self._decoded):
            yield self._rgb(frame, turns), frame.time, frame.pts

    @staticmethod
    def _rgb(frame, turns: int) -> np.ndarray:
        image = frame.to_ndarray(format="rgb24")
        return np.ascontiguousarray(np.rot90(image, turns)) if turns else image

    def _decode(self):
        packets = self.container.demux(self.stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except (av.error.FFmpegError, OSError) as error:
                self.error = ffmpeg_reason(error)
                log.warning("%s: reading stopped: %s", self.url, self.error)
                yield from self._drain()  # the frames the decoder still holds
                return
            try:
                decoded = packet.decode()
            except av.error.FFmpegError:
                self.damaged += 1
                continue
            yield from decoded

    def seek(self, pts: int) -> None:
        """Go on decoding at the keyframe at or before ``pts`` (ticks of ``time_base``); the
        frames before ``pts`` are the caller's to skip."""
        try:
            self.container.seek(pts, stream=self.stream, backward=True, any_frame=False)
        except (av.error.FFmpegError, OSError) as error:
            raise SourceError(f"{self.url}: cannot seek to pts {pts}: "
                              f"{ffmpeg_reason(error)}") from None
        self._first = None
        self._decoded = self._decode()

    def _drain(self):
        try:
            yield from self.stream.codec_context.decode(None)
        except av.error.FFmpegError:
            pass

    def close(self) -> None:
        self.container.close()
