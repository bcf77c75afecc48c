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
