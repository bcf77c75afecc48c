"""``annotate --ray``: the inputs' chunks segmented by workers across a Ray cluster, each
input's outputs written here by the same code as a single-process run.

This process (the driver) plans every input's chunks up front, so that workers run ahead,
then writes one input after another: it decodes the input once more itself, pairs each frame
with the mask a worker computed on it (checked by timestamp), and feeds tracker, alert filter
and sinks exactly as ``annotate_one`` does. Outputs are therefore the single-process outputs:
same frames and pts, bit-identical masks, same frame log and events. Workers decode only their
own chunk; the frames never cross the network, only compact masks do.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

from realtime.errors import RealtimeError, SourceError
from realtime.io.chunks import Chunk, plan_chunks
from realtime.io.inputs import InputSpec
from realtime.io.results import FrameResult
from realtime.io.sources import Source
from realtime.distributed.cluster import ClusterSettings, cause, connect, start_workers
from realtime.distributed.packing import pixel_digest
from realtime.distributed.scheduler import ChunkScheduler
from realtime.distributed.worker import ChunkJob, ChunkResult
from realtime.pipeline.offline import AnnotateOptions, write_outputs


class StitchError(RealtimeError):
    """The workers' frames and this process's frames of one input do not pair up."""


class RayAnnotator:
    def __init__(self, settings: ClusterSettings, segmenter_options: dict,
                 options: AnnotateOptions, specs: list[InputSpec]):
        from tqdm import tqdm
        self.settings, self.options = settings, options
        if segmenter_options.get("weights"):
            from m2snet.checkpoint import read_checkpoint
            read_checkpoint(segmenter_options["weights"])  # a bad file fails before any cluster
        self.started_here = connect(settings)
        self.workers: list = []
        self.scheduler: ChunkScheduler | None = None
        self.interrupted = threading.Event()
        self.plans: dict[str, list[ChunkJob] | SourceError] = {}
        try:
            self.workers = start_workers(settings, segmenter_options)
            for spec in specs:
                self.plans[spec.stem] = self._plan(spec)
            jobs = [job for plan in self.plans.values() if isinstance(plan, list) for job in plan]
            self.progress = tqdm(total=sum(job.chunk.frames for job in jobs), unit="frame",
                                 desc=f"{len(self.workers)} workers", dynamic_ncols=True,
                                 disable=not options.progress)
            self.scheduler = ChunkScheduler(self.workers, jobs, settings.writers,
                                            lambda job: self.progress.update(job.chunk.frames))
        except BaseException:
            self.close()
            raise

    def _plan(self, spec: InputSpec) -> list[ChunkJob] | SourceError:
        try:
            if spec.kind == "video":
                chunks = plan_chunks(spec.source, self.settings.chunk_frames)
            else:
                source = spec.open(self.options.image_fps)
                chunks = [Chunk(0, None, None, source.frame_count or 0)]
                source.close()
        except SourceError as error:
            return error
        options = self.options
        # workers open the input themselves, elsewhere and with another working directory
        spec = dataclasses.replace(spec, source=str(Path(spec.source).absolute()))
        return [ChunkJob(spec, chunk, options.image_fps, options.batch, options.min_area,
                         options.threshold, options.mask_values == "probabilities")
                for chunk in chunks]

    def say(self, line: str, error: bool = False) -> None:
        """A line above the progress bar (on stderr for an error)."""
        self.progress.write(line, file=sys.stderr if error else sys.stdout)

    def annotate(self, spec: InputSpec, out_dir: Path) -> dict:
        """One input's outputs in ``out_dir/<stem>/`` (atomically), as ``annotate_one``."""
        plan = self.plans[spec.stem]
        if isinstance(plan, SourceError):
            raise plan
        source = spec.open(self.options.image_fps)
        done: list[ChunkResult] = []
        try:
            return write_outputs(spec, source, self._stitched(spec, source, plan, done), out_dir,
                                 dataclasses.replace(self.options, progress=False),
                                 lambda: _details(done))
        except Exception as error:
            import ray
            if isinstance(error, ray.exceptions.RayError):
                raise RealtimeError(f"{spec.source}: {cause(error)}") from None
            raise
        finally:
            source.close()
            self.scheduler.forget(spec.stem)

    def _stitched(self, spec: InputSpec, source: Source, jobs: list[ChunkJob],
                  done: list[ChunkResult]) -> Iterator[FrameResult]:
        chunks = iter(jobs)
        packed = iter(())
        for frame in source:
            if self.interrupted.is_set():
                raise KeyboardInterrupt
            item = next(packed, None)
            while item is None:
                job = next(chunks, None)
                if job is None:
                    raise StitchError(f"{spec.source}: the workers decoded fewer frames than a "
                                      f"single pass (none for frame {frame.index}, pts "
                                      f"{frame.pts})")
                began = time.perf_counter()
                done.append(self.scheduler.result(job))
                done[-1].waited_s = time.perf_counter() - began
                packed = iter(done[-1].frames)
                item = next(packed, None)
            if item.pts != frame.pts or item.digest != pixel_digest(frame.image):
                what = (f"pts {frame.pts} here but {item.pts} in the worker's chunk"
                        if item.pts != frame.pts else "pixels that differ from the worker's")
                raise StitchError(f"{spec.source}: frame {frame.index} has {what}: this video "
                                  f"cannot be cut at its keyframes (damaged or open GOPs); run "
                                  f"it with --chunk-frames 0")
            result = item.unpack(frame)
            result.style = self.options.style
            yield result
        extra = sum(1 for _ in packed) + sum(len(self.scheduler.result(job).frames)
                                             for job in chunks)
        if extra:
            raise StitchError(f"{spec.source}: the workers decoded {extra} frames more than a "
                              f"single pass")

    def report(self) -> dict[str, dict]:
        return self.scheduler.report() if self.scheduler is not None else {}

    def interrupt(self) -> None:
        """Make every writer stop at its next frame (Ctrl-C): nothing of theirs is kept."""
        self.interrupted.set()
        if self.scheduler is not None:
            self.scheduler.stop()

    def close(self) -> None:
        """Stop the workers (also mid-chunk) and the cluster if this process started it."""
        import ray
        if self.scheduler is not None:
            self.scheduler.stop()
        if getattr(self, "progress", None) is not None:
            self.progress.close()
        for worker in self.workers:
            ray.kill(worker)
        if self.started_here:
            ray.shutdown()


def _details(done: list[ChunkResult]) -> dict:
    workers: dict[str, int] = {}
    for result in done:
        workers[result.worker] = workers.get(result.worker, 0) + len(result.frames)
    return {"model": done[0].model if done else {},
            "timings": {"decode_s": sum(r.decode_s for r in done),
                        "infer_s": sum(r.infer_s for r in done)},
            "distributed": {"chunks": len(done), "frames_per_worker": workers,
                            "waited_for_workers_s": round(sum(r.waited_s for r in done), 3)}}
