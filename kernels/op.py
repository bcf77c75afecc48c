"""``torch.ops.m2snet.msu``: the fused subtraction unit as a PyTorch custom operator.

Dispatch by device: CUDA -> Triton, CPU -> numba, anything else (or float64 on CUDA) -> the
plain-PyTorch reference. A fake implementation makes it traceable by ``torch.compile``
(fullgraph) and ``torch.export``; gradients come from the reference, so a model using it
can still be trained. Where torch-tensorrt with TensorRT's Quick Deployable Plugins is
importable, the op is also registered as a TensorRT plugin so that an engine does not break
its graph at every subtraction unit (this path cannot be exercised on this project's
machines: TensorRT is not installable there).
"""

from __future__ import annotations

import logging

import torch

from kernels.numba_cpu import is_channels_last, msu_numba, numba
from kernels.reference import msu_reference
from kernels.triton_cuda import msu_triton, triton

log = logging.getLogger(__name__)


def _layout(b: torch.Tensor) -> torch.memory_format:
    """Every implementation returns b's layout: channels-last if b is, else contiguous."""
    return torch.channels_last if is_channels_last(b) else torch.contiguous_format


@torch.library.custom_op("m2snet::msu", mutates_args=())
def msu(a: torch.Tensor, b: torch.Tensor, scale3: torch.Tensor, shift3: torch.Tensor,
        scale5: torch.Tensor, shift5: torch.Tensor) -> torch.Tensor:
    """|A'-B| + sum_k |relu(scale_k S_k(A') + shift_k) - relu(scale_k S_k(B) + shift_k)|,
    A' = A resized to B's size; see kernels.reference."""
    out = msu_reference(a, b, scale3, shift3, scale5, shift5)
    return out.contiguous(memory_format=_layout(b))


@msu.register_kernel("cpu")
def _msu_cpu(a, b, scale3, shift3, scale5, shift5):
    if numba is None:
        out = msu_reference(a, b, scale3, shift3, scale5, shift5)
    else:
        out = msu_numba(a, b, scale3, shift3, scale5, shift5)
    return out.contiguous(memory_format=_layout(b))


@msu.register_kernel("cuda")
def _msu_cuda(a, b, scale3, shift3, scale5, shift5):
    if triton is None or b.dtype == torch.float64:
        out = msu_reference(a, b, scale3, shift3, scale5, shift5)
    else:
        out = msu_triton(a, b, scale3, shift3, scale5, shift5)
    return out.contiguous(memory_format=_layout(b))


@msu.register_fake
def _msu_fake(a, b, scale3, shift3, scale5, shift5):
    torch._check(a.dim() == 4 and b.dim() == 4, lambda: "msu expects 4-d inputs")
    torch._check(a.shape[0] == b.shape[0] and a.shape[1] == b.shape[1],
                 lambda: "msu expects equal N and C")
    return b.new_empty(b.shape).contiguous(memory_format=_layout(b))


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _backward(ctx, grad):
    inputs = ctx.saved_tensors
    wanted = [i for i, need in enumerate(ctx.needs_input_grad) if need]
    with torch.enable_grad():
        leaves = [t.detach().requires_grad_(i in wanted) for i, t in enumerate(inputs)]
        out = msu_reference(*leaves)
        grads = torch.autograd.grad(out, [leaves[i] for i in wanted], grad)
    result = [None] * len(inputs)
    for i, g in zip(wanted, grads):
        result[i] = g
    return tuple(result)


msu.register_autograd(_backward, setup_context=_setup_context)


def _register_tensorrt_plugin() -> bool:
    """Register the op as a TensorRT QDP plugin when torch-tensorrt supports it."""
    try:
        import torch_tensorrt
    except Exception:  # without a driver it raises a bare Exception, not ImportError
        return False
    try:
        if not getattr(torch_tensorrt.ENABLED_FEATURES, "qdp_plugin", False):
            return False
        torch_tensorrt.dynamo.conversion.plugins.custom_op("m2snet::msu",
                                                           supports_dynamic_shapes=True)
        return True
    except Exception as err:  # an engine still builds, falling back to PyTorch for the op
        log.warning("m2snet::msu not registered as a TensorRT plugin: %s", err)
        return False


TENSORRT_PLUGIN = _register_tensorrt_plugin()
