"""``openvino``: the CPU through OpenVINO (its own graph compiler and oneDNN kernels).

The folded network is traced once (seconds) and kept on disk as OpenVINO IR under a key of
the weights, library versions and precision (reading it back takes a fraction of a second),
then compiled for the CPU per batch size seen. Precisions:
- fp32 (the default): f32 inference precision asked for explicitly, since OpenVINO's default
  on CPUs with bf16 units would be bf16, not the outputs the other backends give;
- bf16: the same network run in bfloat16 where the CPU has bf16 units (AVX512-BF16, AMX);
- int8: the encoder quantized by NNCF on calibration frames (``realtime.engine.quantize``),
  what is cached is the quantized network; the rest runs in bf16 where the CPU has bf16
  units, else in f32.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import warnings
from pathlib import Path

import torch

from realtime.engine import cache
from realtime.engine.slow_step import slow_step
from realtime.engine.backends import (Backend, BackendError, BuildRequest, Runner, folded,
                                      note_openmp_spin, one_line, optional_module, register)

log = logging.getLogger("realtime.engine")


def openvino_module():
    """openvino, or None when it is not installed (or cannot load on this CPU)."""
    return optional_module("openvino")


def missing() -> str | None:
    if openvino_module() is None:
        return "needs OpenVINO (pip install openvino); use backend='cpu' instead"
    return None


def identity(shape: tuple) -> tuple[str, dict, tuple]:
    """Any CPU, any batch: the traced network depends on the libraries and the input side."""
    return "cpu", {"openvino": openvino_module().__version__, "torch": torch.__version__}, shape[1:]


def build(request: BuildRequest) -> Runner:
    check(request)
    note_openmp_spin("openvino")
    ov = openvino_module()
    shape, ir_path = request.shape, request.artifact
    core = ov.Core()
    converted = _read_ir(core, ir_path) if ir_path is not None and ir_path.is_file() else None
    if converted is None:
        converted = trace(ov, folded(request.model, torch.device("cpu")), shape)
        if request.precision == "int8":
            from realtime.engine.quantize import quantize
            converted = quantize(converted, request.calibration(), request.calibration_label,
                                 encoder_of(request.model))
        if ir_path is not None:
            _save_ir(ov, converted, ir_path)
    config = {"PERFORMANCE_HINT": "LATENCY",
              "INFERENCE_PRECISION_HINT": inference_precision(core, request.precision)}
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        # a process given a share of the cores (a Ray worker) keeps to it, as torch does
        config["INFERENCE_NUM_THREADS"] = int(os.environ["OMP_NUM_THREADS"])
    compiled_cache = cache.cache_root() / "openvino"
    if cache.writable(compiled_cache, "openvino"):
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
    return Runner(forward, torch.float32, f"openvino (cpu) {request.precision}")


def trace(ov, model: torch.nn.Module, shape: tuple):
    """The network as an OpenVINO model with the batch left open."""
    start = time.perf_counter()
    size = sum(p.numel() for p in model.parameters())
    with slow_step(f"openvino {ov.__version__}: tracing the network, once per model "
                   "and library version",
                   key=f"openvino trace {size} {tuple(shape[1:])}"), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the model's shape checks
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.trace is deprecated
        converted = ov.convert_model(model.to(memory_format=torch.contiguous_format),
                                     example_input=torch.zeros(shape),
                                     input=[ov.PartialShape([-1, *shape[1:]])])
    log.info("openvino: traced in %.1f s", time.perf_counter() - start)
    return converted


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


def save_ir(ov, converted, ir_path: Path) -> None:
    """Write .xml + .bin so that a reader never sees half of them: the .xml, renamed last,
    is the sign that both are complete; on failure nothing of the attempt is left. Weights
    stay float32 (save_model would halve them)."""
    partial = ir_path.with_name(ir_path.stem + ".partial.xml")
    try:
        ir_path.parent.mkdir(parents=True, exist_ok=True)
        ov.save_model(converted, str(partial), compress_to_fp16=False)
        partial.with_suffix(".bin").replace(ir_path.with_suffix(".bin"))
        partial.replace(ir_path)
    finally:
        for leftover in (partial, partial.with_suffix(".bin")):
            with contextlib.suppress(OSError):
                leftover.unlink(missing_ok=True)


def _save_ir(ov, converted, ir_path: Path) -> None:
    """The cache's write: one that fails costs the next start its tracing, nothing more."""
    try:
        save_ir(ov, converted, ir_path)
    except (OSError, RuntimeError) as error:
        log.warning("openvino: could not cache the traced network in %s (%s); the next start "
                    "traces again", ir_path.parent, one_line(error))


def inference_precision(core, precision: str) -> str:
    """OpenVINO's precision for the floating-point layers: f32 for fp32, bf16 for bf16, and
    for int8 (whose decoder stays in floating point) bf16 where the CPU has bf16 units."""
    if precision == "int8":
        return "bf16" if bf16_units(core) else "f32"
    return "bf16" if precision == "bf16" else "f32"


def encoder_of(model) -> str | None:
    spec = getattr(model, "encoder_spec", None)
    return spec.attribute if spec is not None else None


def check(request: BuildRequest) -> None:
    """Before any tracing: int8 needs NNCF, bf16 a CPU with bf16 units."""
    if request.precision == "int8":
        from realtime.engine.quantize import require_nncf
        require_nncf()
    if request.precision == "bf16" and not bf16_units():
        raise BackendError("bf16: this CPU has no bfloat16 units (AVX512-BF16 or AMX), so "
                           "OpenVINO would run it no faster than fp32; use fp32 or int8")


def bf16_units(core=None) -> bool:
    core = core or openvino_module().Core()
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


register(Backend("openvino", "OpenVINO on the CPU, fp32, bf16 or int8 (quantized with NNCF); "
                 "the traced network is cached on disk",
                 device="cpu", precisions=("fp32", "bf16", "int8"), build=build, missing=missing,
                 fallback="cpu", artifact_suffix=".xml", artifact_identity=identity,
                 artifact_precision=lambda p: "fp32" if p == "bf16" else p,
                 auto_rank=50, impls=("factored",),
                 precision_hint="use fp32 (identical outputs), bf16 or int8"))
