"""Real-time runtime: sources, buffering, the Segmenter, overlays and sinks.

Nothing here trains; the model comes from the ``m2snet`` package.

- ``segmenter.Segmenter``: frames in, masks out, on any backend (``backends``).
- ``live.LivePipeline``: capture -> segment -> overlay -> sinks with bounded latency
  (``sources``, ``buffers``, ``overlay``, ``sinks``, ``live_stats``).
- ``annotate.annotate_one``: every frame of a recording, in order, with exact masks.
- ``bench``: the frames-per-second benchmark; ``app``: the web app.
"""
