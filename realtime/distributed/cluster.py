"""Joining a Ray cluster (or starting one on this machine) and placing the workers on it."""

from __future__ import annotations

import logging
import re
import socket
from dataclasses import dataclass

from realtime.errors import RealtimeError
from realtime.distributed.worker import SegmentWorker

log = logging.getLogger("realtime.ray")


class ClusterError(RealtimeError):
    """The cluster cannot be reached, or cannot hold the workers asked for."""


@dataclass
class ClusterSettings:
    address: str = "local"          # local: a cluster on this machine; auto: the running one;
                                    # else its address (host:6379 or ray://host:10001)
    workers: int | None = None      # None: one per GPU, else one per cpus_per_worker CPUs
    cpus_per_worker: float = 1.0
    gpus_per_worker: float | None = None  # None: 1 where the cluster has GPUs, else 0
    chunk_frames: int = 900         # a long video is cut into chunks of at least this many
    writers: int = 1                # inputs the driver writes at once (threads)
    restarts: int = 3               # a lost worker is restarted this often, its chunk redone

    def __post_init__(self):
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"--workers must be at least 1, got {self.workers}")
        if self.cpus_per_worker <= 0:
            raise ValueError(f"--cpus-per-worker must be above 0, got {self.cpus_per_worker}")
        if self.gpus_per_worker is not None and self.gpus_per_worker < 0:
            raise ValueError(f"--gpus-per-worker must be 0 or more, got {self.gpus_per_worker}")
        if self.writers < 1:
            raise ValueError(f"--writers must be at least 1, got {self.writers}")
        if self.chunk_frames < 0:
            raise ValueError(f"--chunk-frames must be 0 (no splitting) or more, "
                             f"got {self.chunk_frames}")


def connect(settings: ClusterSettings) -> bool:
    """Join the cluster; True when this process started it (and stops it at the end)."""
    import ray
    if ray.is_initialized():
        return False
    quiet = {"logging_level": logging.WARNING, "log_to_driver": False}
    if settings.address == "local":
        ray.init(address="local", include_dashboard=False, **quiet)  # a new one, never another
        return True
    if settings.address != "auto":
        _check_reachable(settings.address)  # ray.init waits for an absent head for ever
    try:
        ray.init(address=settings.address, **quiet)
    except (ConnectionError, ValueError, RuntimeError) as error:
        raise ClusterError(f"cannot join the Ray cluster at {settings.address}: "
                           f"{_join_failure(error)}") from None
    return False


def _join_failure(error: BaseException) -> str:
    chain = []
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    if any(type(e).__name__ == "AuthenticationError" or "InvalidAuthToken" in str(e)
           for e in chain):
        return ("it asks for an authentication token: set RAY_AUTH_MODE=token and give the "
                "cluster's token in RAY_AUTH_TOKEN (or ~/.ray/auth_token)")
    return str(chain[-1]).strip().splitlines()[0]


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"--ray {address}: not an address (host:port, ray://host:port, "
                           f"'local' or 'auto')")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as error:
        raise ClusterError(f"cannot reach the Ray cluster at {address}: "
                           f"{error.strerror or error}") from None


def start_workers(settings: ClusterSettings, segmenter_options: dict) -> list:
    """The workers, each with its model loaded (a checkpoint that cannot load fails here)."""
    import ray
    resources = ray.cluster_resources()
    cpus, gpus = settings.cpus_per_worker, settings.gpus_per_worker
    if gpus is None:
        gpus = 1.0 if resources.get("GPU", 0) >= 1 else 0.0
    count = settings.workers or max(1, int(resources.get("GPU", 0) // gpus) if gpus else
                                    int(resources.get("CPU", 1) // cpus))
    if count * cpus > resources.get("CPU", 0) or count * gpus > resources.get("GPU", 0):
        log.warning("the cluster has %g CPUs and %g GPUs: %d workers of %g CPUs and %g GPUs "
                    "wait until it grows", resources.get("CPU", 0), resources.get("GPU", 0),
                    count, cpus, gpus)
    worker = ray.remote(SegmentWorker).options(
        num_cpus=cpus, num_gpus=gpus, max_restarts=settings.restarts,
        max_task_retries=settings.restarts)
    threads = max(1, int(cpus))
    actors = [worker.remote(segmenter_options, threads) for _ in range(count)]
    try:
        ray.get([actor.pid.remote() for actor in actors])
    except ray.exceptions.RayError as error:
        for actor in actors:
            ray.kill(actor)
        raise ClusterError(f"a worker could not load the model: {cause(error)}") from None
    return actors


def cause(error: BaseException) -> str:
    """The message of what went wrong in a worker, without Ray's wrapping."""
    import ray
    if isinstance(error, ray.exceptions.RayTaskError):
        inner = error.cause if error.cause is not None else error
        return str(inner) if isinstance(inner, RealtimeError) else f"{type(inner).__name__}: {inner}"
    if isinstance(error, ray.exceptions.ActorDiedError):
        reason = getattr(error, "error_msg", None) or str(error)
        # a constructor that raised: its exception's own line, without the module path
        raised = re.findall(r"^(?:[\w.]+\.)?(\w+(?:Error|Exception): .+)$", reason, re.MULTILINE)
        if raised:
            return raised[-1]
        return f"a worker died and could not be restarted ({reason.splitlines()[0]})"
    return str(error).splitlines()[0]
