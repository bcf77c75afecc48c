"""Video in and out: decoding (``decode``), sources with exact timestamps (``sources``,
``inputs``), writers (``writers``), overlays (``overlay``), and sinks: live (``sinks``) and
offline (``outputs``, ``coco``). ``results.FrameResult`` is what flows from the pipeline to
the sinks."""
