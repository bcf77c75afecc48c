"""Where frames come from, live and offline, chosen by one argument (``open_source``):

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

from pathlib import Path

from realtime.errors import SourceError
from realtime.io.recorded import (IMAGE_SUFFIXES, FileSource, ImageSource, SyntheticSource,
                                  list_images)
from realtime.io.source_base import MILLISECONDS, Source, SourceFrame, SourceOptions
from realtime.io.streams import STREAM_SCHEMES, CameraSource, StreamSource

__all__ = ["IMAGE_SUFFIXES", "MILLISECONDS", "STREAM_SCHEMES", "CameraSource", "FileSource",
           "ImageSource", "Source", "SourceError", "SourceFrame", "SourceOptions", "StreamSource",
           "SyntheticSource", "list_images", "open_source", "source_kind"]


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
