"""The fused multi-scale subtraction unit on CUDA, in Triton.

Two launches per unit, each reading the inputs once:
1. ``_channel_sums``: per pixel of B's grid, the channel sums of B and of A resized on the
   fly (bilinear, align_corners=False), into a float32 N x 2 x H x W workspace;
2. ``_subtract``: per pixel, the 3x3 and 5x5 window sums of both channel sums (25 cached
   loads), then for every channel |A'-B| + the two |relu(affine) - relu(affine)| terms.
The composite (resize, two channel sums, box sums, four affine maps, ReLUs, differences,
sums) reads and writes N x C x H x W tensors about a dozen times; this reads A and B twice
and writes the output once.

The launcher also takes CPU tensors when TRITON_INTERPRET=1 is set before triton is
imported (Triton's interpreter): that is how the CPU-only CI checks it.
"""

from __future__ import annotations

import os

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # triton ships with CUDA builds of torch; absent elsewhere
    triton = None

BLOCK = 128              # pixels per program on a GPU
INTERPRETER_BLOCK = 1024  # the interpreter's cost is per program: fewer, larger ones


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


if triton is not None:

    @triton.jit
    def _source(dst, scale, in_size):
        """Bilinear source index pair and weight of output index dst (align_corners=False)."""
        src = (dst.to(tl.float32) + 0.5) * scale - 0.5
        src = tl.maximum(src, 0.0)
        i0 = tl.minimum(src.to(tl.int32), in_size - 1)
        i1 = tl.minimum(i0 + 1, in_size - 1)
        return i0, i1, src - i0.to(tl.float32)

    @triton.jit
    def _pixels(height, width, BLOCK: tl.constexpr):
        """This program's image, its block of flat pixel indices, and their coordinates."""
        n = tl.program_id(0)
        pix = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        plane = height * width
        return n, pix, plane, pix < plane, pix // width, pix % width

    @triton.jit
    def _resized(a_img, c, h_in, w_in, y0, y1, ly, x0, x1, lx, mask):
        base = a_img + c * h_in * w_in
        v00 = tl.load(base + y0 * w_in + x0, mask=mask, other=0.0).to(tl.float32)
        v01 = tl.load(base + y0 * w_in + x1, mask=mask, other=0.0).to(tl.float32)
        v10 = tl.load(base + y1 * w_in + x0, mask=mask, other=0.0).to(tl.float32)
        v11 = tl.load(base + y1 * w_in + x1, mask=mask, other=0.0).to(tl.float32)
        top = v00 * (1.0 - lx) + v01 * lx
        bottom = v10 * (1.0 - lx) + v11 * lx
        return top * (1.0 - ly) + bottom * ly

    @triton.jit
    def _channel_sums(a_ptr, b_ptr, sums_ptr, channels, h_in, w_in, height, width,
                      scale_h, scale_w, BLOCK: tl.constexpr):
        n, pix, plane, mask, y, x = _pixels(height, width, BLOCK)
        y0, y1, ly = _source(y, scale_h, h_in)
        x0, x1, lx = _source(x, scale_w, w_in)
        a_img = a_ptr + n * channels * h_in * w_in
        b_img = b_ptr + n * channels * plane
        sum_a = tl.zeros([BLOCK], dtype=tl.float32)
        sum_b = tl.zeros([BLOCK], dtype=tl.float32)
        for c in range(channels):
            sum_a += _resized(a_img, c, h_in, w_in, y0, y1, ly, x0, x1, lx, mask)
            sum_b += tl.load(b_img + c * plane + pix, mask=mask, other=0.0).to(tl.float32)
        tl.store(sums_ptr + (2 * n) * plane + pix, sum_a, mask=mask)
        tl.store(sums_ptr + (2 * n + 1) * plane + pix, sum_b, mask=mask)

    @triton.jit
    def _subtract(a_ptr, b_ptr, sums_ptr, out_ptr, s3_ptr, t3_ptr, s5_ptr, t5_ptr,
                  channels, h_in, w_in, height, width, scale_h, scale_w, BLOCK: tl.constexpr):
        n, pix, plane, mask, y, x = _pixels(height, width, BLOCK)
        sums_a = sums_ptr + (2 * n) * plane
        sums_b = sums_ptr + (2 * n + 1) * plane
        box3a = tl.zeros([BLOCK], dtype=tl.float32)
        box5a = tl.zeros([BLOCK], dtype=tl.float32)
        box3b = tl.zeros([BLOCK], dtype=tl.float32)
        box5b = tl.zeros([BLOCK], dtype=tl.float32)
        for dy in tl.static_range(-2, 3):
            for dx in tl.static_range(-2, 3):
                yy = y + dy
                xx = x + dx
                inside = mask & (yy >= 0) & (yy < height) & (xx >= 0) & (xx < width)
                va = tl.load(sums_a + yy * width + xx, mask=inside, other=0.0)
                vb = tl.load(sums_b + yy * width + xx, mask=inside, other=0.0)
                box5a += va
                box5b += vb
                if dy >= -1 and dy <= 1 and dx >= -1 and dx <= 1:
                    box3a += va
                    box3b += vb
        y0, y1, ly = _source(y, scale_h, h_in)
        x0, x1, lx = _source(x, scale_w, w_in)
        a_img = a_ptr + n * channels * h_in * w_in
        b_img = b_ptr + n * channels * plane
        o_img = out_ptr + n * channels * plane
        for c in range(channels):
            s3 = tl.load(s3_ptr + c)
            t3 = tl.load(t3_ptr + c)
            s5 = tl.load(s5_ptr + c)
            t5 = tl.load(t5_ptr + c)
            va = _resized(a_img, c, h_in, w_in, y0, y1, ly, x0, x1, lx, mask)
            vb = tl.load(b_img + c * plane + pix, mask=mask, other=0.0).to(tl.float32)
            p3 = tl.abs(tl.maximum(s3 * box3a + t3, 0.0) - tl.maximum(s3 * box3b + t3, 0.0))
            p5 = tl.abs(tl.maximum(s5 * box5a + t5, 0.0) - tl.maximum(s5 * box5b + t5, 0.0))
            value = tl.abs(va - vb) + p3 + p5
            tl.store(o_img + c * plane + pix, value.to(out_ptr.dtype.element_ty), mask=mask)


def msu_triton(a: torch.Tensor, b: torch.Tensor, scale3: torch.Tensor, shift3: torch.Tensor,
               scale5: torch.Tensor, shift5: torch.Tensor, *, block: int | None = None
               ) -> torch.Tensor:
    """CUDA tensors (or CPU tensors under TRITON_INTERPRET=1) in, b's dtype out.

    ``block`` (a power of two) overrides the pixels per program."""
    if triton is None:
        raise RuntimeError("triton is not installed (it comes with CUDA builds of torch)")
    if b.device.type != "cuda" and not interpreting():
        raise ValueError("msu_triton needs CUDA tensors (or TRITON_INTERPRET=1 for CPU "
                         "tensors); use msu_numba on the CPU")
    if a.dim() != 4 or b.dim() != 4 or a.shape[:2] != b.shape[:2]:
        raise ValueError(f"msu expects N x C x h x w and N x C x H x W with equal N and C, "
                         f"got {tuple(a.shape)} and {tuple(b.shape)}")
    if b.dtype == torch.float64:
        raise ValueError("msu_triton computes in float32: pass float32, float16 or bfloat16")
    a = a.to(b.dtype).contiguous()
    b = b.contiguous()
    n, c, height, width = b.shape
    h_in, w_in = a.shape[2], a.shape[3]
    params = [t.to(device=b.device, dtype=torch.float32).contiguous()
              for t in (scale3, shift3, scale5, shift5)]
    out = torch.empty_like(b)
    if out.numel() == 0:
        return out
    sums = torch.empty((n, 2, height, width), device=b.device, dtype=torch.float32)
    block = block or (INTERPRETER_BLOCK if b.device.type == "cpu" else BLOCK)
    grid = (n, triton.cdiv(height * width, block))
    scales = (h_in / height, w_in / width)
    _channel_sums[grid](a, b, sums, c, h_in, w_in, height, width, *scales, BLOCK=block)
    _subtract[grid](a, b, sums, out, *params, c, h_in, w_in, height, width, *scales,
                    BLOCK=block)
    return out
