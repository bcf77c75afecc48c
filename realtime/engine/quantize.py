"""INT8 post-training quantization of an OpenVINO network with NNCF.

NNCF runs the float network over the calibration inputs, records every quantizable layer's
activation range, inserts quantize/dequantize pairs (symmetric, the CPU preset) and corrects
the biases that rounding shifts. OpenVINO then runs those layers on the CPU's int8 dot-product
units (VNNI). Quantization takes seconds to minutes; the result is cached like any traced
network (``realtime.engine.cache``).

Only the encoder (the backbone) is quantized. The decoder's subtraction units take absolute
differences of feature maps that are often nearly equal, and its heads turn small logit
shifts into flipped pixels: quantized too, a trained Res2Net-50 M2SNet's masks fell to Dice
0.81 against float32 (0.99 with the encoder alone, which holds most of the multiplies)."""

from __future__ import annotations

import logging
from typing import Iterable

import torch

from realtime.engine.slow_step import slow_step
from realtime.errors import BackendError

log = logging.getLogger("realtime.engine")

RECIPE = "encoder"  # part of the cache key: a change of what is quantized quantizes anew


def nncf_module():
    from realtime.engine.backends import optional_module
    return optional_module("nncf")


def require_nncf():
    nncf = nncf_module()
    if nncf is None:
        raise BackendError("int8 needs NNCF for its post-training quantization (pip install "
                           "nncf); fp32 and bf16 run without it")
    return nncf


def quantize(model, inputs: Iterable[torch.Tensor], label: str, encoder: str | None = None):
    """``model`` (an openvino.Model) quantized to INT8 on ``inputs`` (normalized N x 3 x S x S
    float32 tensors); ``label`` names the calibration set in the notice; ``encoder``, the
    network's encoder attribute (``resnet``, ``backbone``), limits quantization to it."""
    nncf = require_nncf()
    logging.getLogger("nncf").setLevel(logging.WARNING)  # its INFO lines flood a console
    data = [x.detach().float().contiguous().numpy() for x in inputs]
    if not data:
        raise BackendError("int8: the calibration set has no frame")
    size = data[0].shape[-1]
    with slow_step(f"nncf {nncf.__version__}: quantizing to int8 on {len(data)} {label} frames, "
                   f"once per model and calibration set", key=f"nncf int8 {size} {len(data)}",
                   usually="0.5-5 min"):
        quantized = nncf.quantize(model, nncf.Dataset(data), subset_size=len(data),
                                  target_device=nncf.TargetDevice.CPU,
                                  ignored_scope=_outside(nncf, encoder))
    log.info("int8: quantized on %d %s frames", len(data), label)
    return quantized


def _outside(nncf, encoder: str | None):
    """Every node not in the encoder (OpenVINO names traced nodes ``__module.<attribute>...``)."""
    if encoder is None:
        return None
    return nncf.IgnoredScope(patterns=[rf"^(?!__module\.{encoder}\.).*"], validate=False)

