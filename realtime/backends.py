"""Inference backends: how one loaded network is turned into a fast callable.

Every backend first folds BatchNorm into the convolutions before it (``realtime.fold``).

- ``cpu``: float32 (or bfloat16 autocast), channels-last memory, inference mode.
- ``cuda``: eager half precision on the GPU, channels-last.
- ``compile``: torch.compile; on a GPU with CUDA graphs ("reduce-overhead"); also on the CPU.
- ``tensorrt``: torch-tensorrt's dynamo path with a half model and half inputs; engines are
  saved under a cache key (see ``engine_cache``) and reused. TensorRT cannot be installed on
  this project's machines, so this path is written to the documented API and not exercised.
- ``openvino``: the CPU through OpenVINO (its own graph compiler and oneDNN kernels), float32;
  the folded network is traced once per start (seconds), compiled per batch shape.
- ``auto``: tensorrt, else cuda on a GPU; without one, openvino when installed, else cpu.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from realtime import engine_cache
from realtime.fold import fold_batchnorm

log = logging.getLogger("realtime.engine")

BACKENDS = ("auto", "cpu", "openvino", "cuda", "compile", "tensorrt")
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class BackendError(RuntimeError):
    """A backend that cannot run here; the message says why and what to use instead."""


def tensorrt_module():
    """torch_tensorrt, or None. Without a GPU driver its import raises a bare Exception."""
    try:
        import torch_tensorrt
        return torch_tensorrt
    except Exception:
        return None


def openvino_module():
    """openvino, or None when it is not installed (or cannot load on this CPU)."""
    try:
        import openvino
        return openvino
    except Exception:
        return None


def resolve(backend: str) -> str:
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    gpu = torch.cuda.is_available()
    if backend == "auto":
        if gpu:
            chosen = "tensorrt" if tensorrt_module() is not None else "cuda"
        else:
            chosen = "openvino" if openvino_module() is not None else "cpu"
        log.info("backend auto -> %s (%s)", chosen,
                 torch.cuda.get_device_name() if gpu else "no CUDA GPU found")
        return chosen
    if backend in ("cuda", "tensorrt") and not gpu:
        raise BackendError(f"backend {backend!r} needs an NVIDIA GPU with CUDA, and none is "
                           f"available: use backend='cpu' (or 'auto')")
    if backend == "tensorrt" and tensorrt_module() is None:
        raise BackendError("backend 'tensorrt' needs torch-tensorrt (pip install -r "
                           "requirements-tensorrt.txt); use backend='cuda' instead")
    if backend == "openvino" and openvino_module() is None:
        raise BackendError("backend 'openvino' needs OpenVINO (pip install openvino); use "
                           "backend='cpu' instead")
    return backend


# What ``auto`` falls back to when the backend it chose cannot prepare a network (a timm
# backbone OpenVINO cannot convert, say): the plain path on the same device.
FALLBACK = {"openvino": "cpu", "tensorrt": "cuda"}


def device_of(backend: str) -> torch.device:
    if backend == "compile":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device("cpu" if backend in ("cpu", "openvino") else "cuda")


def default_impl(backend: str) -> str:
    """The subtraction unit each backend runs best (measured on the CPU; GPU choices wait
    for a GPU run of the Triton kernel): numba's fused kernel eagerly on the CPU, the plain
    composite where a compiler fuses it itself or the Triton path is not yet checked."""
    return "kernel" if backend == "cpu" else "factored"  # openvino: converts standard ops only


def default_precision(backend: str) -> str:
    return "fp32" if device_of(backend).type == "cpu" else "fp16"


def check_precision(backend: str, precision: str) -> torch.dtype:
    if precision not in PRECISIONS:
        raise BackendError(f"unknown precision {precision!r}; choose one of "
                           f"{', '.join(PRECISIONS)}")
    if device_of(backend).type == "cpu" and precision == "fp16":
        raise BackendError("fp16 is a GPU precision; on the CPU use fp32 or bf16")
    if backend == "openvino" and precision != "fp32":
        raise BackendError("the openvino backend runs fp32 (identical outputs); use fp32, or "
                           "backend='cpu' for bf16")
    if backend == "tensorrt" and precision == "bf16":
        raise BackendError("the tensorrt backend builds fp16 or fp32 engines; use fp16")
    return PRECISIONS[precision]


@dataclass
class Runner:
    """The callable a backend produced: normalized N x 3 x S x S input -> logits."""
    forward: Callable[[torch.Tensor], torch.Tensor]
    input_dtype: torch.dtype
    description: str


def _short(dtype: torch.dtype) -> str:
    return {v: k for k, v in PRECISIONS.items()}[dtype]


def _autocast(device: torch.device, dtype: torch.dtype):
    return torch.autocast(device.type, dtype=dtype)


def build(model: torch.nn.Module, backend: str, dtype: torch.dtype, example_shape: tuple,
          engine_path: Path | None = None) -> Runner:
    """Prepare ``model`` (already on the backend's device, eval mode) for ``backend``."""
    device = device_of(backend)
    if backend == "compile":
        log.info("torch.compile cache: %s",
                 engine_cache.use_for_torch_compile() or "torch's own default")
    model, folded = fold_batchnorm(model, torch.zeros(1, 3, 64, 64))
    log.info("folded %d BatchNorms into their convolutions", folded)
    model = model.to(device).to(memory_format=torch.channels_last)
    if backend == "cpu" or (backend == "compile" and device.type == "cpu"):
        if dtype == torch.bfloat16:  # autocast keeps BatchNorm and the unit's sums in fp32
            def forward(x, _m=model):
                with _autocast(device, dtype):
                    return _m(x)
            fn, input_dtype = forward, torch.float32
        else:
            fn, input_dtype = model, torch.float32
        if backend == "compile":
            fn = _timed_compile(torch.compile(fn, dynamic=False), "torch.compile (CPU)")
        return Runner(fn, input_dtype, f"{backend} ({device.type}) {_short(dtype)}")
    if backend == "openvino":
        return _openvino(model, example_shape, engine_path)
    if backend == "cuda":
        model = model.to(dtype)  # the subtraction units' BatchNorm stays float32
        return Runner(model, dtype, f"cuda {_short(dtype)}")
    if backend == "compile":
        model = model.to(dtype)
        fn = torch.compile(model, mode="reduce-overhead", dynamic=False)
        return Runner(_timed_compile(fn, "torch.compile with CUDA graphs"), dtype,
                      f"compile (cuda graphs) {_short(dtype)}")
    if backend == "tensorrt":
        return _tensorrt(model.to(dtype), dtype, example_shape, engine_path)
    raise BackendError(f"unknown backend {backend!r}")


def _timed_compile(fn, what: str):
    """Log the first call (where compilation happens) and how long it took."""
    state = {"first": True}

    def call(x):
        if not state["first"]:
            return fn(x)
        log.info("%s: compiling for input %s (first frame only)...", what, tuple(x.shape))
        start = time.perf_counter()
        out = fn(x)
        state["first"] = False
        log.info("%s: compiled in %.1f s", what, time.perf_counter() - start)
        return out
    return call


def _openvino(model: torch.nn.Module, shape: tuple, ir_path: Path | None) -> Runner:
    """The folded float32 network as an OpenVINO model (batch left open), traced once and
    kept at ``ir_path`` (tracing takes seconds; reading it back, a fraction of one), then
    compiled for the CPU per batch size seen, with f32 inference precision (OpenVINO's default
    on CPUs with bf16 units would be bf16: not the outputs the other backends give)."""
    ov = openvino_module()
    if getattr(model, "impl", "factored") == "kernel":
        raise BackendError("the openvino backend converts standard operators only: use "
                           "impl='factored' (its default)")
    core = ov.Core()
    converted = None
    if ir_path is not None and ir_path.is_file():
        converted = _read_ir(core, ir_path)
    if converted is None:
        start = time.perf_counter()
        log.info("openvino %s: tracing the network (seconds, once per cache key)...",
                 ov.__version__)
        with warnings.catch_warnings():  # the tracer flags the model's shape checks
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.trace is deprecated
            converted = ov.convert_model(model.to(memory_format=torch.contiguous_format),
                                         example_input=torch.zeros(shape),
                                         input=[ov.PartialShape([-1, *shape[1:]])])
        log.info("openvino: traced in %.1f s", time.perf_counter() - start)
        if ir_path is not None:
            _save_ir(ov, converted, ir_path)
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    compiled_cache = engine_cache.cache_root() / "openvino"
    if engine_cache.writable(compiled_cache, "openvino"):
        config["CACHE_DIR"] = str(compiled_cache)
    requests: dict[int, object] = {}
    lock = threading.Lock()  # an infer request serves one call at a time (the app shares one)

    def request_for(batch: int):
        if batch not in requests:
            began = time.perf_counter()
            static = converted.clone()  # a static shape compiles to faster code than -1
            static.reshape([batch, *shape[1:]])
            requests[batch] = core.compile_model(static, "CPU", config).create_infer_request()
            log.info("openvino: compiled for batch %d in %.1f s", batch,
                     time.perf_counter() - began)
        return requests[batch]

    def forward(x: torch.Tensor) -> torch.Tensor:
        with lock:
            result = request_for(x.shape[0]).infer({0: x.detach().float().contiguous().numpy()})
            return torch.from_numpy(result[0].copy())  # the request reuses its output buffer

    request_for(shape[0])  # now, so that a network OpenVINO cannot compile fails here
    return Runner(forward, torch.float32, "openvino (cpu) fp32")


def one_line(error: Exception) -> str:
    """A library's message on one line: OpenVINO's, for one, span lines (source location
    first, the gist last)."""
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip())[-200:]


def _read_ir(core, ir_path: Path):
    """The cached network, or None (with a warning) when the file is damaged: the cache
    only saves time, so a bad entry is traced again and overwritten."""
    start = time.perf_counter()
    try:
        converted = core.read_model(str(ir_path))
    except Exception as error:
        log.warning("openvino: the cached network %s is unreadable (%s): tracing it again",
                    ir_path.name, one_line(error))
        return None
    log.info("openvino: loaded the cached network %s in %.1f s", ir_path.name,
             time.perf_counter() - start)
    return converted


def _save_ir(ov, converted, ir_path: Path) -> None:
    """Write .xml + .bin so that a reader never sees half of them: the .xml, renamed last,
    is the sign that both are complete. Weights stay float32 (save_model would halve them).
    A cache that cannot be written costs the next start its tracing, nothing more."""
    partial = ir_path.with_name(ir_path.stem + ".partial.xml")
    try:
        ir_path.parent.mkdir(parents=True, exist_ok=True)
        ov.save_model(converted, str(partial), compress_to_fp16=False)
        partial.with_suffix(".bin").replace(ir_path.with_suffix(".bin"))
        partial.replace(ir_path)
    except (OSError, RuntimeError) as error:
        log.warning("openvino: could not cache the traced network in %s (%s); the next start "
                    "traces again", ir_path.parent, one_line(error))
        for leftover in (partial, partial.with_suffix(".bin")):
            with contextlib.suppress(OSError):
                leftover.unlink(missing_ok=True)


def _tensorrt(model: torch.nn.Module, dtype: torch.dtype, shape: tuple,
              engine_path: Path | None) -> Runner:
    torch_tensorrt = tensorrt_module()
    if engine_path is not None and engine_path.is_file():
        start = time.perf_counter()
        try:
            loaded = torch.export.load(str(engine_path)).module()
        except Exception as error:  # a damaged entry is rebuilt, as if it were missing
            log.warning("tensorrt: the cached engine %s is unreadable (%s): building it again",
                        engine_path.name, one_line(error))
        else:
            log.info("tensorrt: loaded cached engine %s in %.1f s", engine_path.name,
                     time.perf_counter() - start)
            return Runner(loaded, dtype, f"tensorrt {_short(dtype)} (cached engine)")
    log.info("tensorrt: building an engine for %s %s (minutes, once per cache key)...",
             shape, dtype)
    start = time.perf_counter()
    example = torch.zeros(shape, dtype=dtype, device="cuda")
    inputs = [torch_tensorrt.Input(shape=shape, dtype=dtype)]
    compiled = torch_tensorrt.compile(model, ir="dynamo", inputs=inputs,
                                      immutable_weights=False, min_block_size=1)
    log.info("tensorrt: engine built in %.1f s", time.perf_counter() - start)
    if engine_path is not None:
        partial = engine_path.with_name(engine_path.stem + ".partial.ep")
        try:
            engine_path.parent.mkdir(parents=True, exist_ok=True)
            torch_tensorrt.save(compiled, str(partial), inputs=[example])
            partial.replace(engine_path)
        except OSError as error:
            log.warning("tensorrt: could not cache the engine in %s (%s); the next start "
                        "builds it again", engine_path.parent, one_line(error))
    return Runner(compiled, dtype, f"tensorrt {_short(dtype)}")
