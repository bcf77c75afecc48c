"""Plain-PyTorch multi-scale subtraction unit: the source of truth for every fast path.

    out[n, c] = |A - B| + sum_{k in 3, 5} |relu(scale_k[c] * S_k(A) + shift_k[c])
                                           - relu(scale_k[c] * S_k(B) + shift_k[c])|

A is resized to B's size first (bilinear, align_corners=False); S_k(X) is the zero-padded
k x k window sum of the channel sum of X. Everything runs in at least float32 (float64
stays float64); the result has the inputs' dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _window_sum(s: torch.Tensor, k: int) -> torch.Tensor:
    return F.conv2d(s, s.new_ones(1, 1, k, k), padding=k // 2)


def msu_reference(a: torch.Tensor, b: torch.Tensor, scale3: torch.Tensor, shift3: torch.Tensor,
                  scale5: torch.Tensor, shift5: torch.Tensor) -> torch.Tensor:
    if a.dim() != 4 or b.dim() != 4 or a.shape[:2] != b.shape[:2]:
        raise ValueError(f"msu expects N x C x h x w and N x C x H x W with equal N and C, "
                         f"got {tuple(a.shape)} and {tuple(b.shape)}")
    out_dtype, acc = b.dtype, torch.promote_types(b.dtype, torch.float32)
    a, b = a.to(acc), b.to(acc)
    if a.shape[-2:] != b.shape[-2:]:
        a = F.interpolate(a, size=b.shape[-2:], mode="bilinear", align_corners=False)
    out = (a - b).abs()
    for k, scale, shift in ((3, scale3, shift3), (5, scale5, shift5)):
        scale = scale.to(acc).view(1, -1, 1, 1)
        shift = shift.to(acc).view(1, -1, 1, 1)
        pa = torch.relu(scale * _window_sum(a.sum(1, keepdim=True), k) + shift)
        pb = torch.relu(scale * _window_sum(b.sum(1, keepdim=True), k) + shift)
        out = out + (pa - pb).abs()
    return out.to(out_dtype)
