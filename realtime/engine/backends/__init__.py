"""Inference backends as a registry: each entry says what it is and how to build it.

An entry (``Backend``) states its name, device, precisions (and default), subtraction unit,
whether it can run here (and if not, why and what to use instead), what ``auto`` falls back
to when it cannot prepare a network, the suffix of its on-disk artifact and ``build()``.
Each backend family is one module of this package and registers its entries when imported;
every module here is imported below, so adding a backend is adding one file.

Every build first folds BatchNorm into the convolutions before it (``realtime.engine.fold``).
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch

from realtime.errors import BackendError, one_line

log = logging.getLogger("realtime.engine")

# precision -> the dtype of the network's input (an int8 network takes float32 frames and
# quantizes them itself)
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16,
              "int8": torch.float32}


@dataclass
class Runner:
    """The callable a backend produced: normalized N x 3 x S x S input -> logits."""
    forward: Callable[[torch.Tensor], torch.Tensor]
    input_dtype: torch.dtype
    description: str


@dataclass(frozen=True)
class BuildRequest:
    """What a backend's ``build`` gets: the loaded float32 network (eval mode, on the CPU),
    the precision asked for, the example input shape, where its artifact may be cached
    (None: do not cache), and for int8 the calibration inputs (made only when needed) and
    what they are (for notices)."""
    model: torch.nn.Module
    precision: str
    shape: tuple[int, int, int, int]
    artifact: Path | None = None
    calibration: Callable[[], Iterable[torch.Tensor]] | None = None
    calibration_label: str = "phantom"

    @property
    def dtype(self) -> torch.dtype:
        return PRECISIONS[self.precision]


@dataclass(frozen=True)
class Backend:
    name: str
    summary: str                        # one line for --help and the README
    device: str                         # "cpu", "cuda", or "any" (the GPU when there is one)
    precisions: tuple[str, ...]         # those it accepts on its device
    build: Callable[[BuildRequest], Runner]
    default_impl: str = "factored"      # the subtraction unit it runs best
    impls: tuple[str, ...] = ("dense", "factored", "kernel")  # the units it can run
    default_precision: str | None = None  # None: fp32 on the CPU, fp16 on a GPU
    missing: Callable[[], str | None] = lambda: None  # why it cannot run here, or None
    fallback: str | None = None         # what auto uses when this cannot prepare a network
    artifact_suffix: str | None = None  # a cached on-disk artifact (engine, traced network)
    artifact_identity: Callable[[tuple], tuple[str, dict, tuple]] | None = None
    # the precision its artifact is keyed under (OpenVINO stores one IR for fp32 and bf16)
    artifact_precision: Callable[[str], str] = lambda precision: precision
    auto_rank: int | None = None        # auto picks the highest-ranked backend that can run
    precision_hint: str = ""            # what to say when a precision is refused
    auto_note: str = ""                 # logged when auto picks it (a faster choice auto skips)

    def torch_device(self) -> torch.device:
        if self.device == "any":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def precision_default(self) -> str:
        if self.default_precision:
            return self.default_precision
        return "fp32" if self.torch_device().type == "cpu" else "fp16"

    def check_impl(self, impl: str) -> None:
        if impl not in self.impls:
            raise BackendError(f"the {self.name} backend runs the {' or '.join(self.impls)} "
                               f"subtraction unit: use impl={self.default_impl!r} (its default)")

    def check_precision(self, precision: str) -> torch.dtype:
        if precision not in PRECISIONS:
            raise BackendError(f"unknown precision {precision!r}; choose one of "
                               f"{', '.join(PRECISIONS)}")
        if self.torch_device().type == "cpu" and precision == "fp16":
            raise BackendError("fp16 is a GPU precision; on the CPU use fp32, bf16 or int8 "
                               "(backend='openvino')")
        if precision not in self.precisions:
            raise BackendError(f"the {self.name} backend runs {' or '.join(self.precisions)}"
                               f"{'; ' + self.precision_hint if self.precision_hint else ''}")
        return PRECISIONS[precision]


_REGISTRY: dict[str, Backend] = {}


def register(*backends: Backend) -> None:
    for backend in backends:
        if backend.name in _REGISTRY or backend.name == "auto":
            raise ValueError(f"backend {backend.name!r} is registered twice")
        _REGISTRY[backend.name] = backend


def _ordered() -> list[Backend]:
    """CPU backends, then GPU ones, then those that run on either."""
    rank = {"cpu": 0, "cuda": 1, "any": 2}
    return sorted(_REGISTRY.values(), key=lambda b: (rank[b.device], b.name))


def names() -> tuple[str, ...]:
    """Every name a user can give: auto first, then the registered backends."""
    return ("auto", *(b.name for b in _ordered()))


def get(name: str) -> Backend:
    if name not in _REGISTRY:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(names())}")
    return _REGISTRY[name]


def available() -> list[str]:
    """The backends that can run on this machine, in registration order."""
    return [b.name for b in _ordered() if b.missing() is None]


def resolve(name: str) -> Backend:
    """The entry ``name`` stands for (auto: the best that runs here, logged), or BackendError
    saying why it cannot run here and what to use instead."""
    if name == "auto":
        ranked = sorted((b for b in _REGISTRY.values() if b.auto_rank is not None),
                        key=lambda b: -b.auto_rank)
        chosen = next(b for b in ranked if b.missing() is None)
        gpu = torch.cuda.is_available()
        log.info("backend auto -> %s (%s)", chosen.name,
                 torch.cuda.get_device_name() if gpu else "no CUDA GPU found")
        if chosen.auto_note:
            log.info("tip: %s", chosen.auto_note)
        return chosen
    backend = get(name)
    reason = backend.missing()
    if reason is not None:
        raise BackendError(f"backend {name!r} {reason}")
    return backend


def optional_module(name: str):
    """The module, or None when it is absent or cannot load here (without a GPU driver,
    torch_tensorrt's import raises a bare Exception, not ImportError)."""
    try:
        return importlib.import_module(name)
    except Exception:
        return None


def gpu_missing() -> str | None:
    """The reason shared by every backend that needs an NVIDIA GPU, or None when there is one."""
    if torch.cuda.is_available():
        return None
    return "needs an NVIDIA GPU with CUDA, and none is available: use backend='cpu' (or 'auto')"


@functools.cache
def note_openmp_spin(backend: str) -> None:
    """Once per process, for backends with their own thread pool: where torch was imported
    before ``realtime`` (which shortens OpenMP's idle spin, see ``realtime/__init__.py``),
    OpenMP's threads hold the cores after every torch step and this backend runs slower."""
    from realtime import OPENMP_SPIN
    if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
        log.info("%s: torch was imported before realtime, so OpenMP's idle threads spin on the "
                 "cores this backend needs (about a third slower on two cores); set "
                 "GOMP_SPINCOUNT=%s before importing torch, or import realtime first",
                 backend, OPENMP_SPIN)


def folded(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The network with BatchNorm folded into its convolutions, on ``device``, channels-last:
    where every backend starts."""
    from realtime.engine.fold import fold_batchnorm
    model, count = fold_batchnorm(model, torch.zeros(1, 3, 64, 64))
    log.info("folded %d BatchNorms into their convolutions", count)
    return model.to(device).to(memory_format=torch.channels_last)


def short(dtype: torch.dtype) -> str:
    return {v: k for k, v in PRECISIONS.items() if k != "int8"}[dtype]


def _load_families() -> None:
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{module.name}")


__all__ = ["PRECISIONS", "Backend", "BackendError", "BuildRequest", "Runner", "available",
           "folded", "get", "gpu_missing", "note_openmp_spin", "optional_module", "names",
           "one_line", "register", "resolve"]

_load_families()  # last: the families import what is defined above
