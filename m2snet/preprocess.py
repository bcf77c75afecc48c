"""The pixel preprocessing a checkpoint was trained with, owned here and used alike by
training, evaluation and the runtime, so that metrics describe the input the runtime ships.

- Normalization: ``(pixel / 255 * max_value - mean) / std`` per RGB channel, computed as
  ``pixel * scale + offset`` (``affine``) from the checkpoint's ``Normalization``.
- Resizing to the network's side: torch's bilinear filter (align_corners=False),
  antialiased as PIL does it when either side shrinks. On the CPU one numba pass
  (``m2snet.resample``) computes that filter straight from the uint8 frame; on other devices
  torch's operators do (``torch_resize_normalize``).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from m2snet.checkpoint import Normalization


@functools.lru_cache(maxsize=8)
def affine(norm: Normalization) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The normalization of 0..255 values as value * scale + offset, per channel."""
    scale = tuple(norm.max_value / 255.0 / s for s in norm.std)
    return scale, tuple(-m / s for m, s in zip(norm.mean, norm.std))


@functools.lru_cache(maxsize=8)
def affine_on(norm: Normalization, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and offset as 1 x 3 x 1 x 1 tensors on the device, made once (not per frame: on
    a GPU each new small tensor is a synchronous host-to-device copy)."""
    return tuple(torch.tensor(v, device=device).view(1, 3, 1, 1) for v in affine(norm))


def normalize(images: torch.Tensor, norm: Normalization) -> torch.Tensor:
    """N x 3 x H x W pixels in 0..255 (uint8 or float) -> normalized float32, same size, in
    the formula's own order (divide, subtract, divide): what training and its validation
    compute, bit for bit what earlier runs trained on. The runtime's fused form
    (``affine``) differs from it by float rounding only."""
    mean = torch.tensor(norm.mean, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(norm.std, device=images.device).view(1, 3, 1, 1)
    x = images.float() / 255.0
    if norm.max_value != 1.0:
        x = x * norm.max_value
    return (x - mean) / std


def torch_resize_normalize(batch: torch.Tensor, size: int, norm: Normalization) -> torch.Tensor:
    """The device path (torch operators): uint8 N x H x W x 3 -> normalized float32
    N x 3 x size x size, antialiased when either side shrinks."""
    x = batch.permute(0, 3, 1, 2).float()
    if x.shape[-2:] != (size, size):
        shrinking = x.shape[-2] > size or x.shape[-1] > size
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                          antialias=shrinking)
    scale, offset = affine_on(norm, x.device)
    return torch.addcmul(offset, x, scale)


def resize_normalize(batch: torch.Tensor, size: int, norm: Normalization,
                     dtype: torch.dtype = torch.float32, channels_last: bool = True
                     ) -> torch.Tensor:
    """uint8 N x H x W x 3 on any device -> normalized N x 3 x size x size in ``dtype``."""
    if batch.device.type == "cpu":
        from m2snet.resample import resize_normalize as one_pass  # numba: compiled when first used
        x = one_pass(batch, size, *affine(norm))
    else:
        x = torch_resize_normalize(batch, size, norm)
    x = x.to(dtype)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()
