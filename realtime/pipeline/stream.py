"""``realtime.stream()``: the pipeline as a Python generator, one result per frame.

    import realtime
    for result in realtime.stream("procedure.mp4"):
        result.index, result.pts, result.time     # frame number, exact timestamp, seconds
        result.probabilities, result.mask         # at the frame's size (numpy)
        result.regions                            # boxes, areas, scores, track ids of the polyps

The counterpart of Ultralytics' ``predict(source, stream=True)``, on the same core as the
``live`` and ``annotate`` commands. By default every frame is segmented, in order (``every``);
``policy="latest"`` keeps up with a live source instead, dropping frames the model has no time
for (each result then carries the newest mask, ``result.mask_index`` says which frame's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from realtime.io.results import FrameResult
from realtime.io.sources import Source, SourceOptions, open_source
from realtime.pipeline.core import Pipeline, PipelineOptions
from realtime.pipeline.tracks import PolypTracker


def stream(source: str | Path | Source, weights: str | Path | None = None, backend: str = "auto",
           *, segmenter=None, policy: str = "every", batch: int = 1,
           threshold: float | None = None, min_area: int = 64, pace: bool = False,
           tracks: bool = True, source_options: SourceOptions | None = None,
           **segmenter_options
           ) -> Iterator[FrameResult]:
    """Segment ``source`` (anything ``open_source`` takes, or an open ``Source``) and yield a
    ``FrameResult`` per delivered frame. ``weights``/``backend`` and further keyword arguments
    (precision, size, impl, cache_dir) build a ``Segmenter`` unless one is passed. The source
    is opened before the model loads (a bad name fails at once) and closed at the end, also
    when the loop is left early. ``tracks``: link the regions into polyp tracks (each
    region's ``track`` and ``dwell``, as ``annotate`` writes them)."""
    if not isinstance(source, Source):
        source = open_source(str(source), source_options)
    try:
        if segmenter is None:
            from realtime.engine import Segmenter
            segmenter = Segmenter(weights, backend=backend, **segmenter_options)
        options = PipelineOptions(policy=policy, batch=batch, threshold=threshold,
                                  min_area=min_area, pace=pace)
        tracker = PolypTracker(source.fps or 30.0) if tracks else None
        last_mask = None
        for result in Pipeline(source, segmenter, options):
            if tracker is not None and result.mask_index not in (None, last_mask):
                last_mask = result.mask_index  # a new mask (``latest`` shows one several times)
                tracker.update(result.regions, result.mask_index,
                               result.time if policy == "every" else result.mask_captured)
            yield result
    finally:
        source.close()
