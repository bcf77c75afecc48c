"""The subtraction unit: factored and kernel forms against the authors' dense form."""

from __future__ import annotations

import copy

import pytest
import torch

from m2snet.blocks import FixedOnesConvBN, SubtractionUnit, folded_affine

SHAPES = [  # (a shape, b spatial size)
    ((1, 1, 1, 1), (1, 1)),
    ((2, 3, 5, 7), (5, 7)),
    ((2, 5, 4, 6), (8, 12)),      # 2x resize
    ((1, 7, 3, 5), (9, 13)),      # odd sizes, non-integer factor
    ((3, 64, 11, 11), (22, 22)),  # the real width, /16 -> /8 at 352
]


def _units(channels, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    p3, p5 = FixedOnesConvBN(channels, 3), FixedOnesConvBN(channels, 5)
    for p in (p3, p5):
        n = p.norm
        n.running_mean.copy_(torch.randn(channels, generator=gen) * 5)
        n.running_var.copy_(torch.rand(channels, generator=gen) * 50 + 1)
        n.weight.data.copy_(torch.rand(channels, generator=gen) + 0.5)
        n.bias.data.copy_(torch.randn(channels, generator=gen))
    return p3.to(dtype).eval(), p5.to(dtype).eval()


@pytest.mark.parametrize("a_shape, size", SHAPES)
def test_all_forms_equal_dense_float64(a_shape, size):
    n, c = a_shape[:2]
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(a_shape, dtype=torch.float64, generator=gen)
    b = torch.randn(n, c, *size, dtype=torch.float64, generator=gen)
    p3, p5 = _units(c)
    out = {impl: SubtractionUnit(p3, p5, impl).eval()(a, b) for impl in ("dense", "factored", "kernel")}
    assert out["dense"].shape == (n, c, *size)
    for impl in ("factored", "kernel"):
        torch.testing.assert_close(out[impl], out["dense"], rtol=1e-12, atol=1e-12)


def test_relu_and_both_scales_matter():
    """Guards against a test that cannot fail: the multi-scale terms change the result."""
    gen = torch.Generator().manual_seed(2)
    a = torch.randn(1, 4, 6, 6, dtype=torch.float64, generator=gen)
    b = torch.randn(1, 4, 6, 6, dtype=torch.float64, generator=gen)
    p3, p5 = _units(4)
    plain = SubtractionUnit(None, None, "factored")(a, b)
    full = SubtractionUnit(p3, p5, "factored").eval()(a, b)
    assert (full - plain).abs().max() > 0.1
    torch.testing.assert_close(plain, (a - b).abs())


def test_float16_keeps_sums_and_statistics_in_float32():
    gen = torch.Generator().manual_seed(3)
    # Channel sums of 64 activations of ~10 over a 5x5 window reach ~16000: beyond fp16's
    # integer precision; their variance (4000^2) does not fit fp16 at all.
    a = (torch.rand(1, 64, 11, 11, generator=gen) * 20).half()
    b = (torch.rand(1, 64, 22, 22, generator=gen) * 20).half()
    p3, p5 = _units(64)
    with torch.no_grad():
        for p in (p3, p5):
            p.norm.running_mean.fill_(8000.0)
            p.norm.running_var.fill_(4000.0 ** 2)
    exact = SubtractionUnit(p3, p5, "dense").eval()(a.double(), b.double())
    h3, h5 = copy.deepcopy(p3).half(), copy.deepcopy(p5).half()
    assert h3.norm.running_var.dtype == torch.float32
    assert h3.norm.running_var[0] == 4000.0 ** 2
    for impl in ("factored", "kernel"):
        half = SubtractionUnit(h3, h5, impl).eval()(a, b)
        assert half.dtype == torch.float16
        # fp16 rounding of the resized input and the output (~1e-3 relative) only.
        torch.testing.assert_close(half.double(), exact, rtol=4e-3, atol=2e-2)


def test_folded_affine_is_eval_batchnorm():
    p3, _ = _units(6)
    x = torch.randn(2, 6, 3, 3, dtype=torch.float64)
    scale, shift = folded_affine(p3.norm)
    torch.testing.assert_close(p3.norm(x), x * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1))


def test_kernel_form_in_training_falls_back_to_batch_statistics():
    gen = torch.Generator().manual_seed(4)
    a = torch.randn(2, 3, 4, 4, dtype=torch.float64, generator=gen)
    b = torch.randn(2, 3, 8, 8, dtype=torch.float64, generator=gen)
    results = []
    for impl in ("dense", "kernel"):
        p3, p5 = _units(3)
        p3.train(), p5.train()
        unit = SubtractionUnit(p3, p5, impl).train()
        results.append((unit(a, b), p3.norm.running_mean.clone()))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(results[0][1], results[1][1])
