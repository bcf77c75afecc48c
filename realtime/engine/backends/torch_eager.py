"""PyTorch eager backends: ``cpu`` (float32, or bfloat16 autocast; numba's fused subtraction
unit) and ``cuda`` (half precision on an NVIDIA GPU). Both run the folded network in
channels-last memory under inference mode."""

from __future__ import annotations

import torch

from realtime.engine.backends import Backend, BuildRequest, Runner, folded, gpu_missing, register, short


def autocast_forward(model: torch.nn.Module, device: torch.device, dtype: torch.dtype):
    """float32 in, the network under autocast: BatchNorm and the subtraction unit's sums stay
    float32 while convolutions run in ``dtype``."""
    def forward(x):
        with torch.autocast(device.type, dtype=dtype):
            return model(x)
    return forward


def build_cpu(request: BuildRequest) -> Runner:
    model = folded(request.model, torch.device("cpu"))
    if request.dtype == torch.bfloat16:
        return Runner(autocast_forward(model, torch.device("cpu"), request.dtype), torch.float32,
                      "cpu (cpu) bf16")
    return Runner(model, torch.float32, "cpu (cpu) fp32")


def build_cuda(request: BuildRequest) -> Runner:
    model = folded(request.model, torch.device("cuda")).to(request.dtype)
    return Runner(model, request.dtype, f"cuda {short(request.dtype)}")  # the unit's BN stays fp32


register(
    Backend("cpu", "PyTorch on the CPU: fp32 (or bf16 autocast), numba's fused subtraction unit",
            device="cpu", precisions=("fp32", "bf16"), build=build_cpu, default_impl="kernel",
            auto_rank=10),
    Backend("cuda", "PyTorch eager on an NVIDIA GPU, fp16 by default", device="cuda",
            precisions=("fp16", "bf16", "fp32"), build=build_cuda, missing=gpu_missing,
            auto_rank=90,
            auto_note="at batch 1, --backend compile (CUDA graphs) annotated 1.4-2.9x faster than "
                      "eager cuda at 1080p on an H200; auto does not pick it yet (README: "
                      "'On a GPU')"),
)
