"""Writing video: H.264 overlays and lossless FFV1 masks, each frame at its own timestamp.

- ``VideoWriter(..., fragmented=True)`` writes fragmented MP4: a killed process still leaves
  a file that plays up to its last fragment (one per keyframe, about a second here).
- H.264 in yuv420p needs even sizes: an odd width or height is padded by one pixel that
  repeats the last column or row (the only change to the picture).
- ``MaskWriter`` stores gray masks losslessly (FFV1 in Matroska) at their exact size.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import cv2  # OpenCV before PyAV
import av
import numpy as np

from realtime.io.source_base import MILLISECONDS

log = logging.getLogger("realtime.video")


class VideoWriter:
    def __init__(self, path: Path, width: int, height: int, *, rate: float = 30.0,
                 time_base: Fraction = MILLISECONDS, codec: str = "libx264",
                 pix_fmt: str = "yuv420p", fragmented: bool = False, crf: int = 20,
                 container_format: str | None = None, container_options: dict | None = None):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.time_base = path, time_base
        self.even = pix_fmt.startswith("yuv420")
        self.width, self.height = width, height
        options = {"movflags": "frag_keyframe+empty_moov+default_base_moof",
                   "flush_packets": "1"} if fragmented else {}
        options.update(container_options or {})
        self.container = av.open(str(path), "w", format=container_format, options=options)
        self.stream = self.container.add_stream(codec, rate=Fraction(rate).limit_denominator(1001))
        self.stream.width = width + (width % 2 if self.even else 0)
        self.stream.height = height + (height % 2 if self.even else 0)
        self.stream.pix_fmt = pix_fmt
        self.stream.time_base = time_base
        self.stream.codec_context.time_base = time_base
        if codec == "libx264":
            # no B-frames: frames leave the encoder in order, with a short delay (live use);
            # a keyframe each second: fragmented files are playable up to the last second
            self.stream.codec_context.options = {"crf": str(crf), "preset": "veryfast",
                                                 "bf": "0", "g": str(max(1, round(rate)))}
            # frame threads, not PyAV's default slice threads: 20 slice-threaded encodes of the
            # same frames under CPU load gave two different files, 20 frame-threaded ones one,
            # so one input always gives the same overlay.mp4 bytes
            self.stream.codec_context.thread_type = "FRAME"
        self.frames = 0
        self._last = None
        self._resized = False
        self._failed = self._closed = False

    def write(self, image: np.ndarray, seconds: float | None = None, ticks: int | None = None
              ) -> int:
        """Add a frame at ``ticks`` (in ``time_base``) or ``seconds``; timestamps must grow
        (an equal or smaller one is moved one tick past the last). Returns the ticks used."""
        if image.shape[:2] != (self.height, self.width):
            raise ValueError(f"frame is {image.shape[1]}x{image.shape[0]}, the video "
                             f"{self.width}x{self.height}")
        if ticks is None:
            ticks = round((seconds or 0.0) / self.time_base)
        if self._last is not None and ticks <= self._last:
            ticks = self._last + 1
        self._last = ticks
        image = self._pad(image)
        if image.ndim == 3 and self.stream.pix_fmt == "yuv420p":
            # OpenCV's conversion beats the encoder's own (libswscale, one thread): the frame
            # is ready in 2.7 instead of 7.8 ms at 720p, 8.3 instead of 15.3 at 1080p. Same
            # BT.601 limited-range levels; luma within 1, chroma within 2 except where colour
            # changes inside a 2x2 block (the two filter chroma differently there).
            frame = av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420),
                                               format="yuv420p")
        else:
            fmt = "gray" if image.ndim == 2 else "rgb24"
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=fmt)
        frame.pts, frame.time_base = ticks, self.time_base
        try:
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
        except Exception:  # not Ctrl-C: an interrupted write still flushes (frames held back)
            self._failed = True
            raise
        self.frames += 1
        return ticks

    def fit(self, image: np.ndarray, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
        """The image at this video's size: a live source that changes resolution (a camera,
        a reconnected stream) keeps being recorded at the size the file started with (said
        once). Offline writers do not call this: there a size change is an error."""
        if image.shape[:2] == (self.height, self.width):
            return image
        if not self._resized:
            self._resized = True
            log.warning("%s: frames changed size to %dx%d; recorded resized to %dx%d",
                        self.path, image.shape[1], image.shape[0], self.width, self.height)
        return cv2.resize(image, (self.width, self.height), interpolation=interpolation)

    def _pad(self, image: np.ndarray) -> np.ndarray:
        pad_h, pad_w = self.stream.height - self.height, self.stream.width - self.width
        if pad_h or pad_w:
            widths = ((0, pad_h), (0, pad_w)) + ((0, 0),) * (image.ndim - 2)
            image = np.pad(image, widths, mode="edge")
        return image

    def close(self) -> None:
        """Flush the encoder and finish the file. After a failed write (a full disk) the file
        is only released: an open handle would keep its space taken after the caller deletes
        it, and flushing an encoder whose output failed can crash FFmpeg."""
        if self._closed:
            return
        self._closed = True
        try:
            if not self._failed:
                for packet in self.stream.encode():
                    self.container.mux(packet)
        finally:
            try:
                self.container.close()  # releases the file even when the trailer fails
            except Exception:
                if not self._failed:
                    raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class MaskWriter(VideoWriter):
    """Lossless 8-bit gray masks (FFV1, Matroska) at their exact size. Clusters close at least
    once a second and go to disk as written, so a killed process leaves every mask up to the
    last second readable (as the fragmented MP4 recordings do)."""

    def __init__(self, path: Path, width: int, height: int, *, rate: float = 30.0,
                 time_base: Fraction = MILLISECONDS):
        super().__init__(path, width, height, rate=rate, time_base=time_base, codec="ffv1",
                         pix_fmt="gray", container_format="matroska",
                         container_options={"cluster_time_limit": "1000",
                                            "flush_packets": "1"})

    def write(self, mask: np.ndarray, seconds: float | None = None, ticks: int | None = None
              ) -> int:
        if mask.ndim != 2 or mask.dtype != np.uint8:
            raise ValueError(f"masks are H x W uint8, got {mask.dtype} {mask.shape}")
        return super().write(mask, seconds, ticks)


def mask_to_gray(mask: np.ndarray, probabilities: np.ndarray | None = None) -> np.ndarray:
    """What a mask video stores: probabilities (when given) as 0..255, a binary mask as
    0/255, class indices as they are."""
    if probabilities is not None:
        return (np.clip(probabilities, 0, 1) * 255 + 0.5).astype(np.uint8)
    if mask.dtype == bool:
        return mask.astype(np.uint8) * 255
    return mask.astype(np.uint8)


def read_masks(path: Path) -> tuple[list[np.ndarray], list[float]]:
    """All masks of a MaskWriter file and their times in seconds (for checks and tools)."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return [f.to_ndarray(format="gray") for f in frames], [float(f.time) for f in frames]
