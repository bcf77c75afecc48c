"""Every implementation of the fused subtraction unit against the plain-PyTorch reference."""

from __future__ import annotations

import pytest
import torch

import kernels
from kernels.triton_cuda import interpreting

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _triton_fault() -> str | None:
    """Why the Triton kernel cannot be checked here, or None. Without a GPU it runs in
    Triton's interpreter, and Triton 3.6's (torch 2.11's) hands scalar arguments over as
    one-element arrays, which NumPy 2.4 no longer turns into an int: every loop over a kernel
    argument fails there, a fault of that pairing, not of our kernel (a GPU compiles it)."""
    if DEVICE == "cuda":
        return None
    if not interpreting():
        return "needs CUDA or TRITON_INTERPRET=1"
    try:
        import triton
        import triton.language as tl
    except ImportError:
        return "triton is not installed (it comes with CUDA builds of torch)"

    @triton.jit
    def count(out, n):
        total = 0
        for _ in range(n):
            total += 1
        tl.store(out, total)

    out = torch.zeros(1, dtype=torch.int32)
    try:
        count[(1,)](out, 3)
    except Exception as error:  # noqa: BLE001  (whatever the interpreter raises)
        import numpy
        return (f"Triton {triton.__version__}'s interpreter cannot run loops with NumPy "
                f"{numpy.__version__} ({type(error).__name__}): a GPU, or NumPy < 2.4, runs these")
    return None if out.item() == 3 else f"Triton's interpreter counted to {out.item()}, not 3"


TRITON_FAULT = _triton_fault()
needs_triton = pytest.mark.skipif(TRITON_FAULT is not None, reason=TRITON_FAULT or "")

# (a shape, b spatial size)
SHAPES = [
    ((1, 1, 1, 1), (1, 1)),
    ((1, 1, 1, 1), (3, 2)),        # 1x1 upsampled
    ((2, 3, 5, 7), (5, 7)),        # same size: no resize
    ((2, 5, 4, 6), (8, 12)),       # 2x
    ((3, 7, 3, 5), (9, 13)),       # odd sizes, non-integer factors, C not a power of 2
    ((1, 6, 9, 8), (4, 5)),        # downsampling
]
REAL = [  # the ten M2SNet units at 352x352 come in these four size pairs, C = 64
    ((1, 64, 11, 11), (22, 22)), ((1, 64, 22, 22), (44, 44)),
    ((1, 64, 44, 44), (88, 88)), ((1, 64, 88, 88), (88, 88)),
]
# Output tolerances: rounding of the output to the dtype (2 units in the last place) on top
# of float32 summation-order differences, relative to the output's magnitude.
TOLERANCE = {torch.float64: 1e-12, torch.float32: 2e-6, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


def _inputs(a_shape, size, dtype, device="cpu", seed=0):
    gen = torch.Generator().manual_seed(seed)
    n, c = a_shape[:2]
    a = torch.randn(a_shape, generator=gen) * 2
    b = torch.randn(n, c, *size, generator=gen) * 2
    # BatchNorm-like affines: the box sums reach ~25*C*2, so scale ~1/that, shifts around 0.
    params = [torch.randn(c, generator=gen) / (10 * c), torch.randn(c, generator=gen),
              torch.randn(c, generator=gen) / (25 * c), torch.randn(c, generator=gen)]
    return ([t.to(device=device, dtype=dtype) for t in (a, b)],
            [p.to(device=device, dtype=torch.float64 if dtype == torch.float64 else torch.float32)
             for p in params])


def _check(got, a, b, params, dtype):
    expected = kernels.msu_reference(a, b, *params)
    assert got.dtype == dtype and got.shape == b.shape
    assert got.is_contiguous() or got.is_contiguous(memory_format=torch.channels_last)
    scale = expected.abs().max().float().item() or 1.0
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(got.float(), expected.float(), rtol=tol, atol=tol * scale)


def test_reference_equals_the_authors_dense_form():
    from m2snet.blocks import FixedOnesConvBN, SubtractionUnit, folded_affine
    (a, b), _ = _inputs((2, 6, 5, 6), (10, 12), torch.float64)
    p3, p5 = FixedOnesConvBN(6, 3).double().eval(), FixedOnesConvBN(6, 5).double().eval()
    for p in (p3, p5):
        p.norm.running_mean.uniform_(-20, 20)
        p.norm.running_var.uniform_(10, 400)
    dense = SubtractionUnit(p3, p5, "dense").eval()(a, b)
    ref = kernels.msu_reference(a, b, *folded_affine(p3.norm), *folded_affine(p5.norm))
    torch.testing.assert_close(ref, dense, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("a_shape, size", SHAPES + REAL)
def test_numba(a_shape, size, dtype):
    (a, b), params = _inputs(a_shape, size, dtype)
    _check(kernels.msu_numba(a, b, *params), a, b, params, dtype)


@needs_triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("a_shape, size", SHAPES + REAL[:1])
def test_triton(a_shape, size, dtype):
    (a, b), params = _inputs(a_shape, size, dtype, DEVICE)
    _check(kernels.msu_triton(a, b, *params), a, b, params, dtype)


@needs_triton
@pytest.mark.parametrize("a_shape, size", REAL[1:])
def test_triton_real_sizes_float32(a_shape, size):
    (a, b), params = _inputs(a_shape, size, torch.float32, DEVICE)
    _check(kernels.msu_triton(a, b, *params), a, b, params, torch.float32)


@needs_triton
def test_triton_gpu_block_size_masks_partial_blocks():
    (a, b), params = _inputs((2, 5, 7, 9), (13, 17), torch.float32, DEVICE)  # 221 px: 2 blocks
    _check(kernels.msu_triton(a, b, *params, block=128), a, b, params, torch.float32)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_custom_op_dispatches_and_matches(dtype):
    (a, b), params = _inputs((2, 5, 4, 6), (8, 12), dtype)
    _check(kernels.msu(a, b, *params), a, b, params, dtype)
    _check(torch.ops.m2snet.msu(a, b, *params), a, b, params, dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16])
@pytest.mark.parametrize("a_shape, size", SHAPES[2:] + REAL[:1])
def test_numba_channels_last_stays_channels_last(a_shape, size, dtype):
    (a, b), params = _inputs(a_shape, size, dtype)
    a_cl, b_cl = (t.contiguous(memory_format=torch.channels_last) for t in (a, b))
    out = kernels.msu_numba(a_cl, b_cl, *params)
    assert out.is_contiguous(memory_format=torch.channels_last)
    _check(out.contiguous(), a, b, params, dtype)


def test_custom_op_output_layout_follows_b():
    (a, b), params = _inputs((1, 8, 5, 5), (10, 10), torch.float32)
    a_cl, b_cl = (t.contiguous(memory_format=torch.channels_last) for t in (a, b))
    out = kernels.msu(a_cl, b_cl, *params)
    assert out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()
    _check(out.contiguous(), a, b, params, torch.float32)
    assert kernels.msu(a, b, *params).is_contiguous()
    compiled = torch.compile(_Unit(), fullgraph=True)
    torch.testing.assert_close(compiled(a_cl, b_cl, *params), _Unit()(a_cl, b_cl, *params))


def test_custom_op_gradients_follow_the_reference():
    (a, b), params = _inputs((2, 3, 3, 4), (6, 8), torch.float64)
    inputs = [t.requires_grad_() for t in (a, b, *params)]
    assert torch.autograd.gradcheck(kernels.msu, inputs)


class _Unit(torch.nn.Module):
    def forward(self, a, b, s3, t3, s5, t5):
        return kernels.msu(a, b, s3, t3, s5, t5) + 1.0


def test_custom_op_under_torch_compile_fullgraph():
    (a, b), params = _inputs((1, 4, 3, 3), (6, 6), torch.float32)
    compiled = torch.compile(_Unit(), fullgraph=True)
    torch.testing.assert_close(compiled(a, b, *params), _Unit()(a, b, *params))


def test_custom_op_survives_torch_export():
    (a, b), params = _inputs((1, 4, 3, 3), (6, 6), torch.float32)
    exported = torch.export.export(_Unit(), (a, b, *params))
    targets = [n.target for n in exported.graph.nodes if n.op == "call_function"]
    assert torch.ops.m2snet.msu.default in targets
    torch.testing.assert_close(exported.module()(a, b, *params), _Unit()(a, b, *params))


def test_bad_shapes_are_named():
    a, b = torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 8, 8)
    params = [torch.zeros(3)] * 4
    for impl in (kernels.msu_reference, kernels.msu_numba):
        with pytest.raises(ValueError, match=r"equal N and C, got \(1, 3, 4, 4\) and \(1, 4, 8, 8\)"):
            impl(a, b, *params)
