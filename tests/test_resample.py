"""The CPU's one-pass resize + normalize (realtime/resample.py) against torch's resize in
float64: the same filter computed independently, and exactly enough to judge both float32
implementations by."""

import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from m2snet.resample import filter_taps, resize_normalize

SIZES = [(480, 640), (1080, 1920), (37, 53), (1, 1), (300, 1000), (1000, 300), (352, 352),
         (353, 351), (2, 700)]


def _frames(n, h, w, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, h, w, 3),
                                                                  dtype=np.uint8))


def _torch_resize(frames, size, dtype):
    x = frames.permute(0, 3, 1, 2).to(dtype)
    if x.shape[-2:] == (size, size):
        return x
    shrinking = x.shape[-2] > size or x.shape[-1] > size
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=shrinking)


@pytest.mark.parametrize("shape", SIZES)
def test_resize_equals_torch_float64(shape):
    frames = _frames(1, *shape)
    ours = resize_normalize(frames, 352, (1.0,) * 3, (0.0,) * 3)
    exact = _torch_resize(frames, 352, torch.float64)
    assert ours.shape == (1, 3, 352, 352) and ours.dtype == torch.float32
    assert ours.is_contiguous(memory_format=torch.channels_last)
    # float32 sums of at most a few dozen products of values up to 255: 1e-3 of one level
    torch.testing.assert_close(ours.double(), exact, rtol=0, atol=1e-3)


@pytest.mark.parametrize("shape", [(480, 640), (1080, 1920), (353, 351)])
def test_resize_is_closer_to_exact_than_torch_float32(shape):
    frames = _frames(1, *shape, seed=1)
    exact = _torch_resize(frames, 352, torch.float64)
    ours = (resize_normalize(frames, 352, (1.0,) * 3, (0.0,) * 3).double() - exact).abs().max()
    torchs = (_torch_resize(frames, 352, torch.float32).double() - exact).abs().max()
    assert ours < torchs < 0.02  # both far below one level; ours by another factor of ten


def test_normalization_batches_other_sizes_and_strided_frames():
    frames = _frames(3, 90, 130, seed=2)
    scale, offset = (0.5, 2.0, -1.0), (1.0, -3.0, 0.25)
    ours = resize_normalize(frames, 64, scale, offset)
    expected = (_torch_resize(frames, 64, torch.float64)
                * torch.tensor(scale, dtype=torch.float64).view(1, 3, 1, 1)
                + torch.tensor(offset, dtype=torch.float64).view(1, 3, 1, 1))
    torch.testing.assert_close(ours.double(), expected, rtol=0, atol=1e-3)

    crop = frames[:, 5:80, 7:120]  # not contiguous
    gray = frames[..., :1].expand(-1, -1, -1, 3)  # zero stride over colours
    for strided in (crop, gray):
        torch.testing.assert_close(resize_normalize(strided, 64, scale, offset),
                                   resize_normalize(strided.contiguous(), 64, scale, offset))


@pytest.mark.parametrize("in_size,out_size", [(1080, 352), (37, 352), (352, 352), (1, 352),
                                              (353, 352), (4000, 32)])
@pytest.mark.parametrize("antialias", [False, True])
def test_filter_taps_are_valid_weightings(in_size, out_size, antialias):
    indices, weights = filter_taps(in_size, out_size, antialias)
    assert indices.shape == weights.shape and indices.shape[0] == out_size
    assert indices.min() >= 0 and indices.max() < in_size
    assert weights.min() >= 0
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-6)


def test_threads_sharing_it_each_get_their_own_result():
    frames = [_frames(1, 480, 640, seed) for seed in range(4)]
    expected = [resize_normalize(f, 352, (1.0,) * 3, (0.0,) * 3) for f in frames]
    results, errors = {}, []

    def work(i):
        try:
            for _ in range(5):
                results[i] = resize_normalize(frames[i], 352, (1.0,) * 3, (0.0,) * 3)
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, want in enumerate(expected):
        torch.testing.assert_close(results[i], want, rtol=0, atol=0)


def test_cpu_engine_input_agrees_with_the_device_path():
    """What the CPU backends feed the network equals what the GPU path (torch operators)
    computes, to torch's own float32 error (under 0.01 of a level, 2e-4 after normalizing)."""
    from m2snet.checkpoint import IMAGENET
    from m2snet.preprocess import resize_normalize, torch_resize_normalize

    frames = _frames(2, 721, 1283, seed=3)
    ours = resize_normalize(frames, 352, IMAGENET, torch.float32)
    device_path = torch_resize_normalize(frames, 352, IMAGENET)
    assert ours.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(ours, device_path, rtol=0, atol=3e-4)
    assert resize_normalize(frames, 352, IMAGENET, torch.bfloat16).dtype == torch.bfloat16


def test_training_normalization_and_the_runtimes_agree_to_float_rounding():
    """Training keeps the formula's own order (divide, subtract, divide); the runtime fuses it
    into one multiply-add: the same numbers up to float32 rounding, for both conventions."""
    from m2snet.checkpoint import AUTHORS_TRAINING, IMAGENET
    from m2snet.preprocess import normalize, resize_normalize, torch_resize_normalize
    frames = _frames(2, 48, 48, seed=5)  # at the network's side: nothing is resized
    pixels = frames.permute(0, 3, 1, 2)
    for norm in (IMAGENET, AUTHORS_TRAINING):
        exact = (pixels.double() / 255 * norm.max_value
                 - torch.tensor(norm.mean, dtype=torch.float64).view(1, 3, 1, 1)) \
            / torch.tensor(norm.std, dtype=torch.float64).view(1, 3, 1, 1)
        for computed in (normalize(pixels, norm), torch_resize_normalize(frames, 48, norm),
                         resize_normalize(frames, 48, norm, channels_last=False)):
            torch.testing.assert_close(computed.double(), exact, rtol=0, atol=2e-6)


@pytest.mark.parametrize("numba_dir", [False, True])
def test_compiled_resize_is_cached_under_ours_unless_numba_has_a_folder(tmp_path, numba_dir):
    """In a fresh process (numba picks a function's cache folder when it is decorated): the
    kernels land under $M2SNET_CACHE/numba, or in NUMBA_CACHE_DIR when the user set one, and
    numba's own setting is left as the user had it."""
    import subprocess
    import sys

    from helpers import ROOT, cli_env
    script = ("import numpy as np, torch, numba\n"
              "from m2snet.resample import resize_normalize\n"
              "resize_normalize(torch.zeros((1, 40, 30, 3), dtype=torch.uint8), 32, "
              "(1.0,) * 3, (0.0,) * 3)\n"
              "print(repr(numba.config.CACHE_DIR))\n")
    extra = {"M2SNET_CACHE": str(tmp_path / "ours")}
    if numba_dir:
        extra["NUMBA_CACHE_DIR"] = str(tmp_path / "numba's")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=cli_env(extra), cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    chosen = tmp_path / ("numba's" if numba_dir else "ours/numba")
    assert any(p.name.startswith("resample._resample_rows") for p in chosen.rglob("*.nbi"))
    assert done.stdout.strip() == (repr(str(chosen)) if numba_dir else "''")
    if numba_dir:
        assert not (tmp_path / "ours").exists()
