"""The fused multi-scale subtraction unit on the CPU, with numba (parallel over image rows).

Three passes over one image instead of the composite's dozen tensor passes:
1. channel sums of B and of bilinearly resized A (A is resized on the fly, never stored);
2. the 3x3 and 5x5 zero-padded window sums of both channel sums;
3. per channel and pixel: |A'-B| + the two |relu(affine(S_k(A'))) - relu(affine(S_k(B)))|.
Sums and the affine maps run in float32 (float64 inputs stay float64).
"""

from __future__ import annotations

import numpy as np
import torch

try:
    import numba
    from numba import prange

    from kernels.numba_jit import cached_njit
except ImportError:  # pragma: no cover - numba is a hard dependency; this keeps import errors clear
    numba = None


def bilinear_axis(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PyTorch's align_corners=False source indices and weights along one axis."""
    scale = in_size / out_size
    src = (np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5
    src = np.maximum(src, 0.0)
    i0 = np.floor(src).astype(np.int64)
    i0 = np.minimum(i0, in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    lam = src - i0
    return i0, i1, lam


if numba is not None:

    @cached_njit(inline="always")
    def _resized(a, n, c, y0, y1, ly, x0, x1, lx):
        top = a[n, c, y0, x0] * (1.0 - lx) + a[n, c, y0, x1] * lx
        bottom = a[n, c, y1, x0] * (1.0 - lx) + a[n, c, y1, x1] * lx
        return top * (1.0 - ly) + bottom * ly

    @cached_njit(inline="always")
    def _resized_nhwc(a, n, c, y0, y1, ly, x0, x1, lx):
        top = a[n, y0, x0, c] * (1.0 - lx) + a[n, y0, x1, c] * lx
        bottom = a[n, y1, x0, c] * (1.0 - lx) + a[n, y1, x1, c] * lx
        return top * (1.0 - ly) + bottom * ly

    @cached_njit(parallel=True)
    def _box_sums(sums):
        """3x3 and 5x5 zero-padded window sums of sums[0] (A') and sums[1] (B):
        boxes[0..3] = S3A', S5A', S3B, S5B."""
        _, n_img, height, width = sums.shape
        boxes = np.zeros((4, n_img, height, width), dtype=sums.dtype)
        for row in prange(n_img * height):
            n, y = row // height, row % height
            for x in range(width):
                for which in range(2):
                    box3 = 0.0
                    box5 = 0.0
                    for dy in range(-2, 3):
                        yy = y + dy
                        if yy < 0 or yy >= height:
                            continue
                        for dx in range(-2, 3):
                            xx = x + dx
                            if xx < 0 or xx >= width:
                                continue
                            v = sums[which, n, yy, xx]
                            box5 += v
                            if -1 <= dy <= 1 and -1 <= dx <= 1:
                                box3 += v
                    boxes[2 * which, n, y, x] = box3
                    boxes[2 * which + 1, n, y, x] = box5
        return boxes

    @cached_njit(parallel=True)
    def _msu_nchw(a, b, s3, t3, s5, t5, yi0, yi1, yl, xi0, xi1, xl, out):
        n_img, channels, height, width = b.shape
        sums = np.zeros((2, n_img, height, width), dtype=b.dtype)
        for row in prange(n_img * height):
            n, y = row // height, row % height
            y0, y1, ly = yi0[y], yi1[y], yl[y]
            for c in range(channels):
                for x in range(width):
                    sums[0, n, y, x] += _resized(a, n, c, y0, y1, ly, xi0[x], xi1[x], xl[x])
                    sums[1, n, y, x] += b[n, c, y, x]
        boxes = _box_sums(sums)
        for row in prange(n_img * height):
            n, y = row // height, row % height
            y0, y1, ly = yi0[y], yi1[y], yl[y]
            for c in range(channels):
                for x in range(width):
                    va = _resized(a, n, c, y0, y1, ly, xi0[x], xi1[x], xl[x])
                    p3a = max(s3[c] * boxes[0, n, y, x] + t3[c], 0.0)
                    p5a = max(s5[c] * boxes[1, n, y, x] + t5[c], 0.0)
                    p3b = max(s3[c] * boxes[2, n, y, x] + t3[c], 0.0)
                    p5b = max(s5[c] * boxes[3, n, y, x] + t5[c], 0.0)
                    out[n, c, y, x] = abs(va - b[n, c, y, x]) + abs(p3a - p3b) + abs(p5a - p5b)

    @cached_njit(parallel=True)
    def _msu_nhwc(a, b, s3, t3, s5, t5, yi0, yi1, yl, xi0, xi1, xl, out):
        """The same unit on channels-last data (arrays indexed [n, y, x, c])."""
        n_img, height, width, channels = b.shape
        sums = np.zeros((2, n_img, height, width), dtype=b.dtype)
        for row in prange(n_img * height):
            n, y = row // height, row % height
            y0, y1, ly = yi0[y], yi1[y], yl[y]
            for x in range(width):
                total_a = 0.0
                total_b = 0.0
                for c in range(channels):
                    total_a += _resized_nhwc(a, n, c, y0, y1, ly, xi0[x], xi1[x], xl[x])
                    total_b += b[n, y, x, c]
                sums[0, n, y, x] = total_a
                sums[1, n, y, x] = total_b
        boxes = _box_sums(sums)
        for row in prange(n_img * height):
            n, y = row // height, row % height
            y0, y1, ly = yi0[y], yi1[y], yl[y]
            for x in range(width):
                b3a, b5a = boxes[0, n, y, x], boxes[1, n, y, x]
                b3b, b5b = boxes[2, n, y, x], boxes[3, n, y, x]
                for c in range(channels):
                    va = _resized_nhwc(a, n, c, y0, y1, ly, xi0[x], xi1[x], xl[x])
                    p3 = abs(max(s3[c] * b3a + t3[c], 0.0) - max(s3[c] * b3b + t3[c], 0.0))
                    p5 = abs(max(s5[c] * b5a + t5[c], 0.0) - max(s5[c] * b5b + t5[c], 0.0))
                    out[n, y, x, c] = abs(va - b[n, y, x, c]) + p3 + p5


def msu_numba(a: torch.Tensor, b: torch.Tensor, scale3: torch.Tensor, shift3: torch.Tensor,
              scale5: torch.Tensor, shift5: torch.Tensor) -> torch.Tensor:
    """CPU tensors in, CPU tensor of b's dtype out; see kernels.reference for the maths."""
    if numba is None:
        raise RuntimeError("numba is not installed: pip install -r requirements.txt")
    if a.device.type != "cpu" or b.device.type != "cpu":
        raise ValueError("msu_numba runs on CPU tensors; use msu_triton for CUDA")
    if a.dim() != 4 or b.dim() != 4 or a.shape[:2] != b.shape[:2]:
        raise ValueError(f"msu expects N x C x h x w and N x C x H x W with equal N and C, "
                         f"got {tuple(a.shape)} and {tuple(b.shape)}")
    out_dtype = b.dtype
    acc = torch.float64 if out_dtype == torch.float64 else torch.float32
    # Channels-last in, channels-last out (no layout conversions around the kernel).
    nhwc = b.dim() == 4 and is_channels_last(b)
    a, b = a.detach().to(acc), b.detach().to(acc)
    if nhwc:
        np_a = a.permute(0, 2, 3, 1).contiguous().numpy()
        np_b = b.permute(0, 2, 3, 1).contiguous().numpy()
    else:
        np_a, np_b = a.contiguous().numpy(), b.contiguous().numpy()
    params = [t.detach().to(acc).contiguous().numpy() for t in (scale3, shift3, scale5, shift5)]
    yi0, yi1, yl = bilinear_axis(a.shape[2], b.shape[2])
    xi0, xi1, xl = bilinear_axis(a.shape[3], b.shape[3])
    out = np.empty(np_b.shape, dtype=np_b.dtype)
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
    kernel = _msu_nhwc if nhwc else _msu_nchw
    kernel(np_a, np_b, *params, yi0, yi1, yl.astype(np_b.dtype), xi0, xi1,
           xl.astype(np_b.dtype), out)
    result = torch.from_numpy(out)
    if nhwc:
        result = result.permute(0, 3, 1, 2)  # an N x C x H x W view in channels-last memory
    return result.to(out_dtype)


def is_channels_last(t: torch.Tensor) -> bool:
    """Stored channels-last (and not also plain contiguous, as 1-channel or 1x1 tensors are)."""
    return t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()
