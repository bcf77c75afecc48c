"""Real-time polyp segmentation in video with M2SNet.

    import realtime
    seg = realtime.Segmenter("m2snet_polyp.pt")           # frames in, masks out
    for result in realtime.stream("procedure.mp4"):        # one result per frame
        print(result.index, result.time, result.regions)

Layers: ``engine`` (Segmenter, backends registry), ``io`` (sources, writers, sinks),
``pipeline`` (one core, live and offline policies), ``cli`` (the command line), ``bench``
(frames-per-second benchmark), ``app`` (web app). Nothing here trains: the model comes from
the ``m2snet`` package.
"""

from __future__ import annotations

import os
import sys

# OpenMP's idle threads (torch's and numba's libgomp) spin for milliseconds after each parallel
# region by default. On a few cores they then hold the cores that OpenVINO's and ONNX Runtime's
# own threads need for the next frame (the demo model in openvino bf16 on two cores: 10.2 ms a
# call, 8.0 ms with this). libgomp reads the setting once, when torch loads; torch's own speed
# is unchanged by it, and a value the user set is kept (README: Export and deployment).
OPENMP_SPIN = "30000"
if "torch" not in sys.modules:
    os.environ.setdefault("GOMP_SPINCOUNT", OPENMP_SPIN)

_EXPORTS = {
    "Segmenter": "realtime.engine",
    "SegmenterInfo": "realtime.engine",
    "open_source": "realtime.io.sources",
    "FrameResult": "realtime.io.results",
    "stream": "realtime.pipeline.stream",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    # imported on first use: the command line's --help should not wait for torch and FFmpeg
    if name in _EXPORTS:
        import importlib
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'realtime' has no attribute {name!r}")
