"""The inference engine: a checkpoint becomes a ``Segmenter`` (frames in, masks out) on one of
the registered backends (``realtime.engine.backends``), with BatchNorm folding (``fold``),
frame conversion (``frames``) and compiled artifacts kept on disk (``cache``)."""

from realtime.engine.segmenter import DEMO_WEIGHTS, Segmentation, Segmenter, SegmenterInfo

__all__ = ["DEMO_WEIGHTS", "Segmentation", "Segmenter", "SegmenterInfo"]
