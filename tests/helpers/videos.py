"""Real video files for tests, written with PyAV: moving synthetic colonoscopy frames (or a
frame-number pattern) at chosen timestamps."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2  # noqa: F401  (before av)
import av
import numpy as np


def pattern_frame(index: int, width: int, height: int) -> np.ndarray:
    """A frame whose content identifies its index (a bright square that moves)."""
    image = np.full((height, width, 3), (90, 40, 40), np.uint8)
    side = max(4, min(width, height) // 4)
    x = (index * 7) % max(1, width - side)
    y = (index * 3) % max(1, height - side)
    image[y:y + side, x:x + side] = (230, 200, 190)
    return image


def write_video(path: Path, times: list[float], width: int = 160, height: int = 120,
                codec: str = "libx264", fmt: str | None = None, phantom: bool = False,
                time_base: Fraction = Fraction(1, 90000), rate: int = 30, rotation: int = 0,
                options: dict | None = None, codec_options: dict | None = None) -> list[float]:
    """Encode one frame per entry of ``times`` (seconds); returns the times as stored.
    ``rotation``: a display rotation (degrees counterclockwise) in the container, as phones
    write; ``options``: the muxer's (e.g. movflags=faststart: the index before the frames);
    ``codec_options``: the encoder's, over the defaults (x264: no B-frames, ultrafast)."""
    scene = None
    if phantom:
        from m2snet.phantom import PhantomScene
        scene = PhantomScene(3, max(width, height), max_polyps=3, polyp_probability=1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    stored = []
    with av.open(str(path), "w", format=fmt, options=options or {}) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = width, height
        if rotation:
            stream.set_display_rotation(rotation)
        # 4:2:0 needs even sizes; odd-sized test videos use 4:4:4 (as some cameras' files do)
        stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        if codec == "libx264":
            stream.codec_context.options = {"bf": "0", "preset": "ultrafast",
                                            **(codec_options or {})}
        for i, t in enumerate(times):
            if scene is not None:
                image = scene.frame(t)[0][:height, :width]
            else:
                image = pattern_frame(i, width, height)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = round(t / time_base)
            frame.time_base = time_base
            stored.append(float(frame.pts * time_base))
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return stored


def decoded_frames(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return list(container.decode(video=0))
