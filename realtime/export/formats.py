"""The formats ``python -m realtime export`` writes, each with how to write it and how to load
it back in its own runtime (for the check that follows every export).

Every format starts from the folded network (BatchNorm in the convolutions, factored
subtraction unit), takes a normalized N x 3 x S x S float32 ``image`` and gives ``logits``."""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from realtime.engine.backends import optional_module
from realtime.errors import BackendError


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str
    precisions: tuple[str, ...]
    runtime: str                                   # what loads it: for the provenance
    write: Callable[["Job", Path], None]
    load: Callable[[Path, str], Callable[[np.ndarray], np.ndarray]]
    missing: Callable[[], str | None] = lambda: None
    files: Callable[[Path], list[Path]] = lambda path: [path]  # every file it consists of


@dataclass
class Job:
    """What a writer gets: the folded float32 network, the example shape, the precision, whether
    the batch stays open, and for int8 the calibration inputs (made on demand)."""
    model: torch.nn.Module
    shape: tuple[int, int, int, int]
    precision: str
    dynamic_batch: bool
    calibration: Callable | None = None
    calibration_label: str = "phantom"


def _quiet():
    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")  # tracer notes on the model's shape checks, deprecations
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    return stack


def _dynamic(job: Job):
    return ({0: torch.export.Dim("batch", min=1, max=256)},) if job.dynamic_batch else None


# --- ONNX ------------------------------------------------------------------------------------

def _write_onnx(job: Job, path: Path) -> None:
    from realtime.engine.onnx_graph import export_onnx
    export_onnx(job.model, job.shape, path, dynamic_batch=job.dynamic_batch)


def _load_onnx(path: Path, precision: str):
    from realtime.engine.backends.onnx_runtime import session
    loaded = session(path)
    return lambda x: loaded.run(None, {loaded.get_inputs()[0].name: x})[0]


def _onnx_missing() -> str | None:
    if optional_module("onnxscript") is None or optional_module("onnxruntime") is None:
        return "needs the ONNX exporter and ONNX Runtime (pip install onnxscript onnxruntime)"
    return None


# --- OpenVINO IR -----------------------------------------------------------------------------

def _write_openvino(job: Job, path: Path) -> None:
    from realtime.engine.backends.openvino import openvino_module, trace
    ov = openvino_module()
    converted = trace(ov, job.model, job.shape)
    if not job.dynamic_batch:
        converted.reshape([*job.shape])
    if job.precision == "int8":
        from realtime.engine.quantize import quantize
        from realtime.engine.backends.openvino import encoder_of
        converted = quantize(converted, job.calibration(), job.calibration_label,
                             encoder_of(job.model))
    # bf16 is how OpenVINO runs the IR (an inference precision), not what the IR stores: the
    # IR carries it as a runtime option (our loader also sets it explicitly)
    from realtime.engine.backends.openvino import inference_precision
    hint = inference_precision(ov.Core(), job.precision)
    converted.set_rt_info(hint, ["runtime_options", "INFERENCE_PRECISION_HINT"])
    from realtime.engine.backends.openvino import save_ir
    save_ir(ov, converted, path)


def _load_openvino(path: Path, precision: str):
    from realtime.engine.backends.openvino import openvino_module
    from realtime.engine.backends.openvino import inference_precision
    core = openvino_module().Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU",
                                  {"INFERENCE_PRECISION_HINT": inference_precision(core, precision)})
    return lambda x: compiled(x)[0]


def _openvino_missing() -> str | None:
    if optional_module("openvino") is None:
        return "needs OpenVINO (pip install openvino)"
    return None


# --- TorchScript and ExportedProgram ---------------------------------------------------------

def _write_torchscript(job: Job, path: Path) -> None:
    with _quiet(), torch.no_grad():
        traced = torch.jit.trace(job.model.to(memory_format=torch.contiguous_format),
                                 torch.zeros(job.shape))
        _atomic(path, lambda target: torch.jit.save(traced, str(target)))


def _load_torchscript(path: Path, precision: str):
    with _quiet():
        module = torch.jit.load(str(path), map_location="cpu").eval()
    return _torch_runner(module)


def _write_exported(job: Job, path: Path) -> None:
    with _quiet(), torch.no_grad():
        program = torch.export.export(job.model.to(memory_format=torch.contiguous_format),
                                      (torch.zeros(job.shape),), dynamic_shapes=_dynamic(job))
        _atomic(path, lambda target: torch.export.save(program, str(target)))


def _load_exported(path: Path, precision: str):
    with _quiet():
        module = torch.export.load(str(path)).module()
    return _torch_runner(module)


def _torch_runner(module):
    @torch.inference_mode()
    def run(x: np.ndarray) -> np.ndarray:
        return module(torch.from_numpy(x)).float().numpy()
    return run


def _atomic(path: Path, save: Callable[[Path], None]) -> None:
    from m2snet.files import atomic_path
    with atomic_path(path) as partial:
        save(partial)


# --- TensorRT engine (guarded: never run on this project's machines) --------------------------

def _engine_missing() -> str | None:
    from realtime.engine.backends import gpu_missing
    if gpu_missing() is not None:
        return ("needs an NVIDIA GPU with CUDA and torch-tensorrt, and this machine has no GPU: "
                "export --format onnx and build the engine on the GPU machine with trtexec")
    if optional_module("torch_tensorrt") is None:
        return ("needs torch-tensorrt (pip install -r requirements-tensorrt.txt), or export "
                "--format onnx and build the engine with trtexec")
    return None


def _write_engine(job: Job, path: Path) -> None:
    """torch-tensorrt's dynamo path, written to its documented API; never run here."""
    trt = optional_module("torch_tensorrt")
    half = job.precision == "fp16"
    model = job.model.cuda().half() if half else job.model.cuda()
    dtype = torch.float16 if half else torch.float32
    example = torch.zeros(job.shape, device="cuda", dtype=dtype)
    compiled = trt.compile(model, ir="dynamo", inputs=[trt.Input(job.shape, dtype=dtype)],
                           immutable_weights=False)
    _atomic(path, lambda target: trt.save(compiled, str(target), inputs=[example]))


def _load_engine(path: Path, precision: str):
    module = torch.export.load(str(path)).module()
    dtype = torch.float16 if precision == "fp16" else torch.float32

    @torch.inference_mode()
    def run(x: np.ndarray) -> np.ndarray:
        return module(torch.from_numpy(x).cuda().to(dtype)).float().cpu().numpy()
    return run


FORMATS = {f.name: f for f in (
    Format("onnx", ".onnx", ("fp32",), "onnxruntime", _write_onnx, _load_onnx, _onnx_missing),
    Format("openvino", ".xml", ("fp32", "bf16", "int8"), "openvino", _write_openvino,
           _load_openvino, _openvino_missing, lambda p: [p, p.with_suffix(".bin")]),
    Format("torchscript", ".torchscript.pt", ("fp32",), "torch", _write_torchscript,
           _load_torchscript),
    Format("exported-program", ".pt2", ("fp32",), "torch", _write_exported, _load_exported),
    Format("engine", ".engine.ep", ("fp32", "fp16"), "torch_tensorrt", _write_engine,
           _load_engine, _engine_missing),
)}


def get(name: str) -> Format:
    if name not in FORMATS:
        raise BackendError(f"unknown format {name!r}; choose one of {', '.join(FORMATS)}")
    return FORMATS[name]
