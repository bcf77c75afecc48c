"""The fused multi-scale subtraction unit of M2SNet, as an operator.

``msu(a, b, scale3, shift3, scale5, shift5)`` is the operator the model's ``impl="kernel"``
calls. Until the fused CPU/CUDA kernels land it is the plain-PyTorch reference.
"""

from kernels.reference import msu_reference

msu = msu_reference

__all__ = ["msu", "msu_reference"]
