"""Chunks handed to workers ahead of the stitcher, in input order.

Each worker holds at most two chunks (the next one is queued while it works on one), and no
more than ``2 x workers + 2`` chunks are out at once (dispatched and not yet stitched), so
finished masks wait in Ray's object store for a bounded while. The stitcher asks for chunks in
order; while it waits, finished chunks free their worker for the next.

A worker that dies is restarted by Ray and its chunks run again there (the actor's restart and
task-retry settings): a chunk's result is either whole or absent, never partial or twice.
"""

from __future__ import annotations

import collections
from typing import Callable

from realtime.distributed.worker import ChunkJob, ChunkResult


class ChunkScheduler:
    def __init__(self, workers: list, jobs: list[ChunkJob],
                 on_done: Callable[[ChunkJob], None] = lambda job: None):
        self.workers, self.on_done = workers, on_done
        self.pending = collections.deque(jobs)
        self.running: dict = {}                 # ref -> (job, worker number)
        self.ready: dict = {}                   # job key -> ref
        self.load = [0] * len(workers)
        self.limit = 2 * len(workers) + 2
        self.results: list[ChunkResult] = []    # every chunk stitched, for the per-worker report

    def result(self, job: ChunkJob) -> ChunkResult:
        """The chunk's result, waiting for it; a worker's failure is raised here."""
        import ray
        while job.key not in self.ready:
            self._dispatch()
            if not self.running:
                raise RuntimeError(f"chunk {job.key} was never dispatched")
            done, _ = ray.wait(list(self.running), num_returns=1, timeout=0.5)
            for ref in done:
                finished, worker = self.running.pop(ref)
                self.load[worker] -= 1
                self.ready[finished.key] = ref
                self.on_done(finished)
        result = ray.get(self.ready.pop(job.key))
        self.results.append(result)
        self._dispatch()
        return result

    def forget(self, stem: str) -> None:
        """Drop an input's remaining chunks (it failed, or it is complete)."""
        import ray
        self.pending = collections.deque(j for j in self.pending if j.spec.stem != stem)
        for key in [k for k in self.ready if k[0] == stem]:
            del self.ready[key]
        for ref, (job, worker) in list(self.running.items()):
            if job.spec.stem == stem:
                ray.cancel(ref)  # a chunk not yet started is skipped; a running one finishes
                del self.running[ref]
                self.load[worker] -= 1
        self._dispatch()

    def _dispatch(self) -> None:
        while self.pending and len(self.running) + len(self.ready) < self.limit:
            worker = min(range(len(self.workers)), key=self.load.__getitem__)
            if self.load[worker] >= 2:
                return
            job = self.pending.popleft()
            self.running[self.workers[worker].segment.remote(job)] = (job, worker)
            self.load[worker] += 1

    def report(self) -> dict[str, dict]:
        """Per worker: chunks, frames, busy seconds and frames per busy second."""
        table: dict[str, dict] = {}
        for result in self.results:
            row = table.setdefault(result.worker, {"chunks": 0, "frames": 0, "busy_s": 0.0})
            row["chunks"] += 1
            row["frames"] += len(result.frames)
            row["busy_s"] += result.wall_s
        for row in table.values():
            row["fps"] = round(row["frames"] / row["busy_s"], 2) if row["busy_s"] else None
            row["busy_s"] = round(row["busy_s"], 3)
        return table
