"""The fused multi-scale subtraction unit of M2SNet, as an operator.

``msu(a, b, scale3, shift3, scale5, shift5)`` is ``torch.ops.m2snet.msu``: it dispatches to
``msu_triton`` on CUDA and ``msu_numba`` on the CPU, and ``msu_reference`` is the plain
PyTorch source of truth that every path is tested against. The model's ``impl="kernel"``
calls it.
"""

from kernels.numba_cpu import msu_numba
from kernels.op import TENSORRT_PLUGIN, msu
from kernels.reference import msu_reference
from kernels.triton_cuda import msu_triton

__all__ = ["TENSORRT_PLUGIN", "msu", "msu_numba", "msu_reference", "msu_triton"]
