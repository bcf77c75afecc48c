"""Building blocks of the M2SNet decoder: the conv-BN-ReLU unit and the subtraction units.

The multi-scale subtraction unit (MSU) of the paper compares two feature maps A and B:

    |A - B| + |P3(A) - P3(B)| + |P5(A) - P5(B)|,   Pk(X) = ReLU(BN_k(Fk(X)))

where Fk is a k x k convolution whose weight is all ones (C x C x k x k) and bias zero.
Fk writes the same number to every output channel: the k x k window sum of the channel
sum of X. ``impl="dense"`` runs Fk as the authors do (a dense convolution, C*C*k*k MACs per
pixel); ``impl="factored"`` (the default) computes that one channel sum and its box sums
(O(C + k) per pixel) and is exact up to floating-point summation order.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

IMPLS = ("factored", "dense", "kernel")
HALF_TYPES = (torch.float16, torch.bfloat16)
BOX_SIZES = (3, 5)


def cbr(in_ch: int, out_ch: int) -> nn.Sequential:
    """3x3 conv (with bias) -> BatchNorm -> ReLU; indices 0/1 match the authors' names."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


def resize_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Bilinear resize of x to ref's spatial size (align_corners=False); identity if equal."""
    if x.shape[-2:] == ref.shape[-2:]:
        return x
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half types (their window sums reach the thousands), else the dtype."""
    return torch.promote_types(dtype, torch.float32)


def folded_affine(norm: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as per-channel (scale, shift), y = scale * x + shift, in at
    least float32."""
    acc = accumulation_dtype(norm.running_var.dtype)
    scale = torch.rsqrt(norm.running_var.to(acc) + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight.to(acc)
    shift = -norm.running_mean.to(acc) * scale
    if norm.bias is not None:
        shift = shift + norm.bias.to(acc)
    return scale, shift


def box_sums(channel_sum: torch.Tensor) -> torch.Tensor:
    """Zero-padded 3x3 and 5x5 window sums of an N x 1 x H x W map, as N x 2 x H x W.

    Both boxes run as one 5x5 convolution: the 3x3 box is the 5x5 one with a zero ring,
    which under padding 2 sees exactly the zero padding a 3x3 box under padding 1 sees.
    """
    weight = channel_sum.new_zeros(2, 1, 5, 5)
    weight[0, :, 1:4, 1:4] = 1.0
    weight[1] = 1.0
    return F.conv2d(channel_sum, weight, padding=2)


class FixedOnesConvBN(nn.Module):
    """Pk of the paper: all-ones k x k conv (never trained, never saved) -> BatchNorm -> ReLU.

    The authors' checkpoints hold only ``norm.*`` for these modules; the all-ones weight
    and zero bias are implied, which is why they are not registered here.
    """

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        self.channels = channels
        self.kernel_size = kernel_size
        self.norm = nn.BatchNorm2d(channels)

    def _apply(self, fn, recurse=True):
        # The statistics of window sums (variances ~1e5..1e7) overflow float16: a half()
        # or bfloat16 model keeps this BatchNorm in float32 (device moves still apply).
        before = {name: t.data for name, t in self._norm_tensors()}
        super()._apply(fn, recurse)
        for name, t in self._norm_tensors():
            if t.dtype in HALF_TYPES:
                t.data = before[name].to(device=t.device, dtype=torch.float32)
        return self

    def _norm_tensors(self):
        yield from self.norm.named_parameters()
        yield from self.norm.named_buffers()

    def dense(self, x: torch.Tensor) -> torch.Tensor:
        """The authors' formulation: a dense C x C x k x k convolution of ones."""
        k, c = self.kernel_size, x.shape[1]
        weight = x.new_ones(c, c, k, k)
        summed = F.conv2d(x, weight, x.new_zeros(c), padding=k // 2)
        return F.relu(self.norm(summed.to(self.norm.running_var.dtype))).to(x.dtype)

    def from_box_sum(self, box_sum: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """ReLU(BN(.)) of an N x 1 x H x W window sum (float32 or wider), broadcast to like's channels."""
        n, c, h, w = like.shape
        if self.training:
            # Batch statistics (and running-stat updates) must see the C identical channels
            # exactly as the dense form produces them.
            out = self.norm(box_sum.to(self.norm.running_var.dtype).expand(n, c, h, w))
        else:
            scale, shift = folded_affine(self.norm)
            out = torch.addcmul(shift.view(1, c, 1, 1), box_sum, scale.view(1, c, 1, 1))
        return F.relu(out).to(like.dtype)


def channel_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum over channels, accumulated in at least float32."""
    return x.sum(dim=1, keepdim=True, dtype=accumulation_dtype(x.dtype))


class SubtractionUnit(nn.Module):
    """SU (MSNet: |A - B|) or MSU (M2SNet) with A resized to B's size first.

    It holds no parameters of its own: the shared ``conv_3``/``conv_5`` modules of the
    network are passed in, because the authors' checkpoints store them at the top level.
    """

    def __init__(self, p3: FixedOnesConvBN | None, p5: FixedOnesConvBN | None, impl: str):
        super().__init__()
        if impl not in IMPLS:
            raise ValueError(f"impl={impl!r} is not one of {', '.join(IMPLS)}")
        # Plain attributes, not submodules: they are registered once, on the network.
        object.__setattr__(self, "p3", p3)
        object.__setattr__(self, "p5", p5)
        self.impl = impl

    @property
    def multiscale(self) -> bool:
        return self.p3 is not None

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.multiscale and self.impl == "kernel" and not self.training:
            return self._kernel(a, b)  # the kernel does the resize itself
        a = resize_to(a, b)
        if not self.multiscale:
            return (a - b).abs()
        if self.impl == "dense":
            return self._dense(a, b)
        return self._factored(a, b)

    def _dense(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        p3, p5 = self.p3, self.p5
        return ((a - b).abs() + (p3.dense(a) - p3.dense(b)).abs()
                + (p5.dense(a) - p5.dense(b)).abs())

    def _factored(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        n = a.shape[0]
        boxes = box_sums(torch.cat([channel_sum(a), channel_sum(b)]))
        s3a, s3b = boxes[:n, 0:1], boxes[n:, 0:1]
        s5a, s5b = boxes[:n, 1:2], boxes[n:, 1:2]
        p3, p5 = self.p3, self.p5
        return ((a - b).abs()
                + (p3.from_box_sum(s3a, a) - p3.from_box_sum(s3b, b)).abs()
                + (p5.from_box_sum(s5a, a) - p5.from_box_sum(s5b, b)).abs())

    def _kernel(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        import kernels  # the fused operator lives outside the model package

        scale3, shift3 = folded_affine(self.p3.norm)
        scale5, shift5 = folded_affine(self.p5.norm)
        return kernels.msu(a, b, scale3, shift3, scale5, shift5)
