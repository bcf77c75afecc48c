"""Real-time runtime: sources, buffering, the Segmenter, overlays and sinks.

Nothing here trains; the model comes from the ``m2snet`` package. The pipeline is being
built issue by issue: see the README's status table for what runs today.
"""
