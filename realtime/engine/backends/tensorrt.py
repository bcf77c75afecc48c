"""``tensorrt``: torch-tensorrt's dynamo path with a half model and half inputs; engines are
saved under a cache key (weights, GPU, library versions, shape, precision) and reused.

TensorRT cannot be installed on this project's machines (its libraries come from NVIDIA's own
package index), so this path is written to the documented API and has never run here. In the
dynamo path fp16 comes from ``model.half()`` with half ``Input``s (``enabled_precisions`` is
ignored there); reusing an engine needs ``immutable_weights=False``.
"""

from __future__ import annotations

import logging
import time

import torch

from realtime.engine import cache
from realtime.engine.slow_step import slow_step
from realtime.engine.backends import (Backend, BuildRequest, Runner, folded, gpu_missing, one_line,
                                      optional_module, register, short)

log = logging.getLogger("realtime.engine")


def tensorrt_module():
    """torch_tensorrt, or None when it is absent or there is no GPU driver."""
    return optional_module("torch_tensorrt")


def missing() -> str | None:
    reason = gpu_missing()
    if reason is None and tensorrt_module() is None:
        reason = ("needs torch-tensorrt (pip install -r requirements-tensorrt.txt); use "
                  "backend='cuda' instead")
    return reason


def identity(shape: tuple) -> tuple[str, dict, tuple]:
    """One GPU, one input shape, these library versions."""
    return torch.cuda.get_device_name(), cache.library_versions(), shape


def build(request: BuildRequest) -> Runner:
    dtype, shape, engine_path = request.dtype, request.shape, request.artifact
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
            return Runner(loaded, dtype, f"tensorrt {short(dtype)} (cached engine)")
    torch_tensorrt = tensorrt_module()
    model = folded(request.model, torch.device("cuda")).to(dtype)
    start = time.perf_counter()
    inputs = [torch_tensorrt.Input(shape=shape, dtype=dtype)]
    with slow_step(f"tensorrt: building an engine for {shape} {short(dtype)}",
                   key=f"tensorrt build {shape} {short(dtype)}", usually="minutes"):
        compiled = torch_tensorrt.compile(model, ir="dynamo", inputs=inputs,
                                          immutable_weights=False, min_block_size=1)
    log.info("tensorrt: engine built in %.1f s", time.perf_counter() - start)
    if engine_path is not None:
        _save(torch_tensorrt, compiled, engine_path, torch.zeros(shape, dtype=dtype, device="cuda"))
    return Runner(compiled, dtype, f"tensorrt {short(dtype)}")


def _save(torch_tensorrt, compiled, engine_path, example) -> None:
    partial = engine_path.with_name(engine_path.stem + ".partial.ep")
    try:
        engine_path.parent.mkdir(parents=True, exist_ok=True)
        torch_tensorrt.save(compiled, str(partial), inputs=[example])
        partial.replace(engine_path)
    except OSError as error:
        log.warning("tensorrt: could not cache the engine in %s (%s); the next start "
                    "builds it again", engine_path.parent, one_line(error))


register(Backend("tensorrt", "TensorRT engines through torch-tensorrt, fp16 by default "
                             "(never run on this project's machines)",
                 device="cuda", precisions=("fp16", "fp32"), build=build, missing=missing,
                 fallback="cuda", artifact_suffix=".ep", artifact_identity=identity,
                 auto_rank=100, precision_hint="TensorRT engines here are fp16 or fp32"))
