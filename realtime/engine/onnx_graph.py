"""The network as an ONNX graph, through ``torch.export`` (the dynamo exporter).

The factored subtraction unit is plain convolutions, pooling and arithmetic, so the graph
needs no custom operator and runs on any ONNX runtime (ONNX Runtime, TensorRT's trtexec,
OpenVINO). Input ``image`` (N x 3 x S x S, normalized float32), output ``logits`` (N x K x S
x S); the batch is left open unless asked otherwise."""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from pathlib import Path

import torch

from m2snet.files import atomic_path
from realtime.engine.slow_step import slow_step

log = logging.getLogger("realtime.engine")

INPUT, OUTPUT = "image", "logits"
OPSET = 18


def export_onnx(model: torch.nn.Module, shape: tuple, path: Path, dynamic_batch: bool = True
                ) -> None:
    """Write ``model`` (folded, eval mode, on the CPU) as ONNX to ``path``: written beside it
    and renamed, so a reader never sees half a file."""
    for chatty in ("onnx_ir", "onnxscript"):  # INFO lines on every optimization pass
        logging.getLogger(chatty).setLevel(logging.WARNING)
    model = model.to(memory_format=torch.contiguous_format)
    example = torch.zeros(shape)
    dynamic = ({0: torch.export.Dim("batch", min=1, max=256)},) if dynamic_batch else None
    start = time.perf_counter()
    size = sum(p.numel() for p in model.parameters())
    with atomic_path(path) as partial:
        with slow_step(f"torch {torch.__version__}: exporting the network to ONNX",
                       key=f"onnx export {size} {tuple(shape[1:])}"), \
                warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # the exporter's notes on deprecated options
            program = torch.onnx.export(model, (example,), input_names=[INPUT],
                                        output_names=[OUTPUT], opset_version=OPSET,
                                        dynamic_shapes=dynamic, dynamo=True, verbose=False)
            program.save(str(partial))
    log.info("onnx: exported in %.1f s", time.perf_counter() - start)
