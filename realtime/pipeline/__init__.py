"""The pipeline: one core (``core.Pipeline``: reader and inference threads, bounded
hand-overs, stop, error propagation, statistics) with two policies, ``latest`` for live video
and ``every`` for recordings, and the thin configurations built on it: ``live``, ``offline``
and ``stream``."""
