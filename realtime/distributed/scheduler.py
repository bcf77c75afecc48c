"""Chunks handed to workers ahead of the writers, in input order.

Each worker holds at most two chunks (the next one is queued while it works on one), and no
more than ``2 x workers + 2 x writers`` chunks are out at once (dispatched and not yet
written), so finished masks wait in Ray's object store for a bounded while. One thread polls
Ray for finished chunks and hands out the next ones; writers (one or several threads, each
writing one input) wait for their input's chunks in order. Chunks are dispatched in input
order and writers take inputs in that order, so a writer's next chunk is always dispatched
before any chunk that nobody waits for yet: the bound cannot starve a writer.

A worker that dies is restarted by Ray and its chunks run again there (the actor's restart and
task-retry settings): a chunk's result is either whole or absent, never partial or twice.
"""

from __future__ import annotations

import collections
import threading
from typing import Callable

from realtime.distributed.worker import ChunkJob, ChunkResult


class ChunkScheduler:
    def __init__(self, workers: list, jobs: list[ChunkJob], writers: int = 1,
                 on_done: Callable[[ChunkJob], None] = lambda job: None):
        self.workers, self.on_done = workers, on_done
        self.pending = collections.deque(jobs)
        self.running: dict = {}                 # ref -> (job, worker number)
        self.ready: dict = {}                   # job key -> ref
        self.load = [0] * len(workers)
        self.limit = 2 * len(workers) + 2 * writers
        self.results: list[ChunkResult] = []    # every chunk written, for the per-worker report
        self._changed = threading.Condition()
        self._stopped = False
        self.error: BaseException | None = None
        self._poller = threading.Thread(target=self._poll, name="ray-poller", daemon=True)
        self._poller.start()

    def result(self, job: ChunkJob) -> ChunkResult:
        """The chunk's result, waiting for it; a worker's failure is raised here."""
        import ray
        with self._changed:
            while job.key not in self.ready:
                if self._stopped:
                    raise self.error or RuntimeError("the work was stopped")
                self._changed.wait(0.5)
            ref = self.ready.pop(job.key)
            self._dispatch()  # its room goes to the next chunk at once
        result = ray.get(ref)
        with self._changed:
            self.results.append(result)
        return result

    def forget(self, stem: str) -> None:
        """Drop an input's remaining chunks (it failed, or it is complete)."""
        import ray
        with self._changed:
            self.pending = collections.deque(j for j in self.pending if j.spec.stem != stem)
            for key in [k for k in self.ready if k[0] == stem]:
                del self.ready[key]
            for ref, (job, worker) in list(self.running.items()):
                if job.spec.stem == stem:
                    ray.cancel(ref)  # a chunk not yet started is skipped; a running one ends
                    del self.running[ref]
                    self.load[worker] -= 1
            self._changed.notify_all()

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
        self._poller.join(timeout=10)

    def _poll(self) -> None:
        try:
            self._poll_until_stopped()
        except BaseException as error:  # noqa: BLE001  (the writers raise it)
            with self._changed:
                self.error, self._stopped = error, True
                self._changed.notify_all()

    def _poll_until_stopped(self) -> None:
        import ray
        while True:
            with self._changed:
                if self._stopped:
                    return
                self._dispatch()
                refs = list(self.running)
                if not refs:
                    self._changed.wait(0.2)
                    continue
            done, _ = ray.wait(refs, num_returns=len(refs), timeout=0.2)
            with self._changed:
                for ref in done:
                    if ref not in self.running:
                        continue  # its input was forgotten meanwhile
                    job, worker = self.running.pop(ref)
                    self.load[worker] -= 1
                    self.ready[job.key] = ref
                    self.on_done(job)
                if done:
                    self._changed.notify_all()

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
