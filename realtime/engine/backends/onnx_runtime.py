"""``onnxruntime``: the network exported to ONNX (``realtime.engine.onnx_graph``) and run by
ONNX Runtime, fp32.

The ONNX file is cached on disk under a key of the weights and the exporter's versions. On
this CPU ONNX Runtime runs its own CPU kernels; where onnxruntime-gpu is installed and a CUDA
GPU is present, its TensorRT and CUDA execution providers are asked for first (frames are
still prepared on the CPU and handed over by ONNX Runtime).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from realtime.engine.backends import (Backend, BuildRequest, Runner, folded,
                                      note_openmp_spin, one_line, optional_module, register)

log = logging.getLogger("realtime.engine")

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def ort_module():
    return optional_module("onnxruntime")


def missing() -> str | None:
    if ort_module() is None or optional_module("onnxscript") is None:
        return ("needs ONNX Runtime and the ONNX exporter (pip install onnxruntime onnxscript); "
                "use backend='openvino' or 'cpu' instead")
    return None


def identity(shape: tuple) -> tuple[str, dict, tuple]:
    """The ONNX file depends on the exporter, not on the runtime that reads it."""
    versions = {"torch": torch.__version__, "onnxscript": optional_module("onnxscript").__version__}
    return "any", versions, shape[1:]


def providers() -> list[str]:
    available = ort_module().get_available_providers()
    chosen = [p for p in GPU_PROVIDERS if p in available] if torch.cuda.is_available() else []
    return [*chosen, "CPUExecutionProvider"]


def session(path: Path):
    """An inference session on ``path`` with every graph optimization ONNX Runtime has."""
    ort = ort_module()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: its warnings about unused providers are noise
    # its worker threads would otherwise spin after each run, on the cores that the frame's
    # preparation and the next frame's decoding need (README: Export and deployment,
    # "Threads")
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=providers())


def build(request: BuildRequest) -> Runner:
    from realtime.engine.onnx_graph import INPUT, export_onnx
    note_openmp_spin("onnxruntime")
    path = request.artifact  # always given: the registry entry names its suffix
    loaded = _cached_session(path) if path.is_file() else None
    if loaded is None:
        export_onnx(folded(request.model, torch.device("cpu")), request.shape, path)
        loaded = session(path)
    provider = loaded.get_providers()[0].removesuffix("ExecutionProvider").lower()

    def forward(x: torch.Tensor) -> torch.Tensor:
        result = loaded.run(None, {INPUT: x.detach().float().contiguous().cpu().numpy()})
        return torch.from_numpy(result[0])

    return Runner(forward, torch.float32, f"onnxruntime ({provider}) fp32")


def _cached_session(path: Path):
    """The cached file's session, or None (with a warning) when it is damaged: the cache only
    saves time, so a bad entry is exported again and overwritten."""
    try:
        return session(path)
    except Exception as error:
        log.warning("onnxruntime: the cached network %s is unreadable (%s): exporting it again",
                    path.name, one_line(error))
        return None


register(Backend("onnxruntime", "ONNX Runtime on the network exported to ONNX, fp32 (its CUDA "
                 "and TensorRT providers where onnxruntime-gpu is installed)",
                 device="cpu", precisions=("fp32",), build=build, missing=missing,
                 fallback="cpu", artifact_suffix=".onnx", artifact_identity=identity,
                 impls=("factored",), precision_hint="ONNX Runtime here runs fp32"))
