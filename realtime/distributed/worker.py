"""The Ray actor that segments chunks: one Segmenter per worker process, loaded once, fed
chunk after chunk. It decodes its chunk itself (only the chunk's description travels) and
sends back packed masks and its own busy times."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field

from realtime.io.chunks import Chunk, ChunkSource
from realtime.io.inputs import InputSpec
from realtime.distributed.packing import PackedFrame


@dataclass(frozen=True)
class ChunkJob:
    spec: InputSpec
    chunk: Chunk
    image_fps: float
    batch: int
    min_area: int
    threshold: float | None
    keep_probabilities: bool

    @property
    def key(self) -> tuple[str, int]:
        return self.spec.stem, self.chunk.number


@dataclass
class ChunkResult:
    key: tuple[str, int]
    frames: list[PackedFrame]
    worker: str                      # host:pid
    decode_s: float
    infer_s: float
    wall_s: float
    model: dict = field(default_factory=dict)
    waited_s: float = 0.0            # how long the stitcher waited for it (set there)


class SegmentWorker:
    """Wrapped by ``ray.remote`` in ``realtime.distributed.cluster``."""

    def __init__(self, segmenter_options: dict, threads: int | None):
        if threads:
            import torch
            torch.set_num_threads(threads)
            os.environ["OMP_NUM_THREADS"] = str(threads)  # the openvino backend follows it
        from realtime.engine import Segmenter
        self.segmenter = Segmenter(**segmenter_options)
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def pid(self) -> int:
        return os.getpid()

    def segment(self, job: ChunkJob) -> ChunkResult:
        from realtime.pipeline.core import Pipeline, PipelineOptions
        from realtime.pipeline.offline import AnnotateOptions, model_summary
        began = time.perf_counter()
        source = (ChunkSource(job.spec.source, job.chunk) if job.chunk.start is not None
                  or job.chunk.end is not None else job.spec.open(job.image_fps))
        try:
            pipeline = Pipeline(source, self.segmenter, PipelineOptions(
                policy="every", batch=job.batch, min_area=job.min_area,
                threshold=job.threshold), name=source.description)
            frames = [PackedFrame.of(result, job.keep_probabilities) for result in pipeline]
        finally:
            source.close()
        stats = pipeline.stats
        model = model_summary(self.segmenter, AnnotateOptions(threshold=job.threshold))
        return ChunkResult(job.key, frames, self.name, stats.busy("capture"),
                           stats.busy("infer") + stats.busy("analyze"),
                           time.perf_counter() - began, model)
