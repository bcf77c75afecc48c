"""The inference engine on the CPU: backends against the eager float32 model, frames of every
shape, the engine-cache key, and the errors a user can meet."""

from __future__ import annotations

import logging
import re
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import m2snet
from helpers import dice
from m2snet.calibration import calibrate
from m2snet import CheckpointError
from realtime.engine import cache as engine_cache
from realtime.errors import BackendError
from realtime.errors import FrameError
from realtime.engine.segmenter import Segmenter


def _checkpoint(tmp_path_factory, name, **model_kwargs):
    torch.manual_seed(0)
    model = m2snet.create_model(**model_kwargs)
    calibrate(model, torch.rand(2, 3, 96, 96) * 4 - 2)
    return m2snet.save_checkpoint(model, tmp_path_factory.mktemp("w") / name, input_size=96)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return _checkpoint(tmp_path_factory, "small.pt", arch="m2snet", backbone="resnet18", width=8)


@pytest.fixture(scope="module")
def cpu(weights):
    return Segmenter(weights, backend="cpu")


def _frame(h, w, seed=0):
    rng = np.random.default_rng(seed)
    # smooth colour blobs rather than noise: resizing must not decide the outcome
    small = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)



def _eager_reference(weights, frame: np.ndarray) -> torch.Tensor:
    """Probabilities from the float32 model, preprocessed by hand (not by realtime.frames)."""
    model, ckpt = m2snet.load_model(weights)
    n = ckpt.normalization
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255.0 * n.max_value
    x = F.interpolate(x, size=(ckpt.input_size,) * 2, mode="bilinear", align_corners=False,
                      antialias=True)
    x = (x - torch.tensor(n.mean).view(1, 3, 1, 1)) / torch.tensor(n.std).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = model(x)
    logits = F.interpolate(logits, size=frame.shape[:2], mode="bilinear", align_corners=False)
    return torch.sigmoid(logits[0, 0])


@pytest.mark.parametrize("shape", [(481, 641), (96, 96), (2160, 3840), (37, 53)])
def test_cpu_backend_equals_eager_model_at_frame_size(weights, cpu, shape):
    frame = _frame(*shape)
    result = cpu(frame)
    assert result.probabilities.shape == shape and result.probabilities.dtype == torch.float32
    assert result.masks.shape == shape and result.masks.dtype == torch.bool
    expected = _eager_reference(weights, frame)
    torch.testing.assert_close(result.probabilities, expected, rtol=0, atol=1e-4)
    assert 0.05 < result.masks.float().mean() < 0.95  # the comparison is not vacuous
    assert dice(result.masks, expected > 0.5) >= 0.99


def test_grayscale_frames_in_every_layout(cpu):
    gray = cv2.cvtColor(_frame(120, 160), cv2.COLOR_RGB2GRAY)
    as_rgb = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
    expected = cpu(as_rgb).probabilities
    for frame in (gray, gray[..., None]):
        torch.testing.assert_close(cpu(frame).probabilities, expected)


def test_batches_lists_and_tensors_agree_with_single_frames(cpu):
    frames = [_frame(90, 130, seed) for seed in range(3)]
    singles = torch.stack([cpu(f).probabilities for f in frames])
    for batch in (np.stack(frames), frames, torch.from_numpy(np.stack(frames))):
        result = cpu(batch)
        assert result.probabilities.shape == (3, 90, 130)
        torch.testing.assert_close(result.probabilities, singles, rtol=0, atol=1e-5)


def test_normalization_is_the_checkpoints_own(weights, tmp_path):
    model, _ = m2snet.load_model(weights)
    path = m2snet.save_checkpoint(model, tmp_path / "authors_norm.pt", input_size=64,
                                  normalization=m2snet.AUTHORS_TRAINING)
    seg = Segmenter(path, backend="cpu")
    seen = []
    forward = seg.runner.forward
    seg.runner.forward = lambda x: seen.append(x.clone()) or forward(x)
    frame = np.empty((50, 70, 3), dtype=np.uint8)
    frame[:] = (200, 100, 50)
    seg(frame)
    x = seen[0]
    assert x.shape == (1, 3, 64, 64)
    n = m2snet.AUTHORS_TRAINING
    expected = [(v - m) / s for v, m, s in zip((200, 100, 50), n.mean, n.std)]
    torch.testing.assert_close(x[0].mean(dim=(1, 2)), torch.tensor(expected), rtol=1e-5, atol=1e-5)


def test_bf16_autocast_stays_close_to_float32(weights, cpu):
    frame = _frame(200, 260)
    bf16 = Segmenter(weights, backend="cpu", precision="bf16")(frame).probabilities
    fp32 = cpu(frame).probabilities
    # bf16 keeps 8 significant bits: logits move by ~1%, so probabilities by ~1e-3 on
    # average and up to a few 1e-2 where the logit is large and steep.
    difference = (bf16 - fp32).abs()
    assert difference.mean() < 0.01 and difference.max() < 0.1


@pytest.mark.slow
def test_compile_backend_on_cpu_equals_eager(weights, cpu, caplog, tmp_path, monkeypatch):
    monkeypatch.setenv("M2SNET_CACHE", str(tmp_path))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "")  # so that teardown restores the original
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    frame = _frame(150, 210)
    with caplog.at_level(logging.INFO, logger="realtime.engine"):
        compiled = Segmenter(weights, backend="compile")
        compiled.warmup(iterations=1)
    assert any("compiled in" in r.message for r in caplog.records)
    # compiled code lands in our cache, where the next start finds it
    assert any((tmp_path / "inductor").rglob("*.py"))
    result, expected = compiled(frame), cpu(frame)
    torch.testing.assert_close(result.probabilities, expected.probabilities, rtol=0, atol=1e-4)
    assert dice(result.masks, expected.masks) >= 0.99


def test_multiclass_masks_are_class_indices(tmp_path_factory):
    path = _checkpoint(tmp_path_factory, "four.pt", arch="msnet", backbone="resnet18",
                       width=8, num_classes=4)
    result = Segmenter(path, backend="cpu")(_frame(70, 90))
    assert result.probabilities.shape == (4, 70, 90)
    torch.testing.assert_close(result.probabilities.sum(0), torch.ones(70, 90))
    assert result.masks.dtype == torch.uint8
    assert torch.equal(result.masks, result.probabilities.argmax(0).to(torch.uint8))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU choice")
@pytest.mark.parametrize("openvino_installed", [True, False])
def test_auto_without_gpu_picks_openvino_else_cpu_and_says_so(weights, caplog, monkeypatch,
                                                               openvino_installed):
    if openvino_installed:
        pytest.importorskip("openvino")
    else:
        monkeypatch.setattr("realtime.engine.backends.openvino.openvino_module", lambda: None)
    expected = "openvino" if openvino_installed else "cpu"
    with caplog.at_level(logging.INFO, logger="realtime.engine"):
        seg = Segmenter(weights, backend="auto")
    assert seg.backend == expected and seg.precision == "fp32"
    assert any(r.message.startswith(f"backend auto -> {expected}") for r in caplog.records)


def test_openvino_traces_once_then_reads_its_cache(weights, caplog, tmp_path):
    pytest.importorskip("openvino")
    frame = _frame(100, 140)
    with caplog.at_level(logging.INFO, logger="realtime.engine"):
        first = Segmenter(weights, backend="openvino", cache_dir=tmp_path)(frame)
        assert any("traced in" in r.message for r in caplog.records)
        # the first start says what it is doing and how long it should take
        assert any(re.fullmatch(r"openvino .*: tracing the network, once per model and library "
                                r"version \((usually 10-60 s|last time \d+ s)\)\.\.\.", r.message)
                   for r in caplog.records)
        caplog.clear()
        second = Segmenter(weights, backend="openvino", cache_dir=tmp_path)(frame)
    assert any("loaded the cached network" in r.message for r in caplog.records)
    assert not any("traced in" in r.message for r in caplog.records)
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".bin", ".xml"]
    torch.testing.assert_close(second.probabilities, first.probabilities, rtol=0, atol=0)


@pytest.mark.parametrize("damaged", [".xml", ".bin"])
def test_openvino_damaged_cache_entry_is_traced_again(weights, caplog, tmp_path, damaged):
    pytest.importorskip("openvino")
    frame = _frame(90, 110)
    first = Segmenter(weights, backend="openvino", cache_dir=tmp_path)(frame)
    [entry] = tmp_path.glob(f"*{damaged}")
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])  # a write cut short
    with caplog.at_level(logging.INFO, logger="realtime.engine"):
        again = Segmenter(weights, backend="openvino", cache_dir=tmp_path)(frame)
    warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "is unreadable" in warnings[0] and "\n" not in warnings[0]
    assert any("traced in" in r.message for r in caplog.records)
    torch.testing.assert_close(again.probabilities, first.probabilities, rtol=0, atol=0)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="realtime.engine"):
        Segmenter(weights, backend="openvino", cache_dir=tmp_path)  # the entry was rewritten
    assert any("loaded the cached network" in r.message for r in caplog.records)


def test_unwritable_caches_cost_time_not_the_run(weights, caplog, tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    blocker = tmp_path / "a-file"
    blocker.write_text("the cache folders would have to go under this file")
    monkeypatch.setenv("M2SNET_CACHE", str(blocker / "cache"))
    frame = _frame(90, 110)
    with caplog.at_level(logging.INFO, logger="realtime.engine"):
        result = Segmenter(weights, backend="openvino", cache_dir=blocker / "engines")(frame)
    warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert any("could not cache the traced network" in w for w in warnings)
    assert any("compiled code is not kept" in w for w in warnings)
    assert blocker.read_text().startswith("the cache folders")
    reference = Segmenter(weights, backend="cpu")(frame)
    assert dice(result.masks, reference.masks) >= 0.99
    torch.testing.assert_close(result.probabilities, reference.probabilities, rtol=0, atol=1e-4)


@pytest.mark.slow
def test_numba_without_a_cache_folder_compiles_and_says_so_once(weights, tmp_path):
    """A read-only install run by an account with no writable home leaves numba nowhere to
    cache: numba then refuses cache=True at import. Its own setting that narrows where it may
    look (to IPython's cells only) produces that failure here, where every folder is writable."""
    import subprocess
    import sys

    import numba
    import numba.core.caching

    if not hasattr(numba.config, "CACHE_LOCATOR_CLASSES"):
        pytest.skip(f"numba {numba.__version__} has no NUMBA_CACHE_LOCATOR_CLASSES")
    ipython_only = next(name for name in ("IPythonCacheLocator", "_IPythonCacheLocator")
                        if hasattr(numba.core.caching, name))
    script = ("import numpy as np\n"
              "from realtime.engine.segmenter import Segmenter\n"
              f"seg = Segmenter({str(weights)!r}, backend='cpu')\n"
              "result = seg(np.full((90, 110, 3), 128, np.uint8))\n"
              "print(tuple(result.probabilities.shape), seg.info.runner)\n")
    env = dict(os.environ, NUMBA_CACHE_LOCATOR_CLASSES=ipython_only)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, cwd=Path(__file__).resolve().parents[1], timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("(90, 110) cpu")
    warnings = [line for line in done.stderr.splitlines() if "numba cannot cache" in line]
    assert len(warnings) == 1 and "NUMBA_CACHE_DIR" in warnings[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU errors")
@pytest.mark.parametrize("backend", ["cuda", "tensorrt"])
def test_gpu_backends_without_gpu_fail_in_one_line(weights, backend):
    with pytest.raises(BackendError, match=f"backend '{backend}' needs an NVIDIA GPU"):
        Segmenter(weights, backend=backend)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(backend="npu"), BackendError, "unknown backend 'npu'"),
    (dict(backend="cpu", precision="fp16"), BackendError, "fp16 is a GPU precision"),
    (dict(backend="cpu", precision="int4"), BackendError, "unknown precision 'int4'"),
    (dict(backend="cpu", size=100), ValueError, "multiple of 32, got 100"),
    (dict(backend="cpu", threshold=1.0), ValueError, "strictly between 0 and 1"),
])
def test_bad_settings_are_named(weights, kwargs, error, message):
    with pytest.raises(error, match=message):
        Segmenter(weights, **kwargs)


def test_missing_default_weights_say_what_to_do(monkeypatch, tmp_path):
    import realtime.engine.segmenter as segmenter
    monkeypatch.setattr(segmenter, "DEMO_WEIGHTS", tmp_path / "absent.pt")
    with pytest.raises(CheckpointError, match="no weights given .* pass weights=PATH"):
        Segmenter(backend="cpu")


@pytest.mark.parametrize("frame, message", [
    (np.zeros((10, 10, 3), dtype=np.float32), "must be uint8"),
    (np.zeros((10, 10, 4), dtype=np.uint8), r"expected H x W x 3 .* got shape \(10, 10, 4\)"),
    ([np.zeros((10, 10, 3), np.uint8), np.zeros((12, 10, 3), np.uint8)], "must share a size"),
    (np.zeros((0, 10, 3), dtype=np.uint8), "empty frame"),
    ("frame.png", "expected a uint8 image"),
])
def test_bad_frames_are_named(cpu, frame, message):
    with pytest.raises(FrameError, match=message):
        cpu(frame)


def test_torch_compile_cache_goes_under_ours_only_where_it_can_be_written(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "")  # so that teardown restores the original
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("M2SNET_CACHE", str(tmp_path / "a-file" / "cache"))
    assert engine_cache.use_for_torch_compile() is None
    assert "TORCHINDUCTOR_CACHE_DIR" not in os.environ
    monkeypatch.setenv("M2SNET_CACHE", str(tmp_path / "cache"))
    assert engine_cache.use_for_torch_compile() == tmp_path / "cache" / "inductor"
    assert (tmp_path / "cache" / "inductor").is_dir()


def test_engine_cache_key_covers_everything_that_invalidates_an_engine(tmp_path):
    base = dict(weights_sha256="a" * 64, gpu_name="NVIDIA H100 80GB HBM3",
                versions={"torch": "2.11.0", "tensorrt": "11.1.0"}, shape=(1, 3, 352, 352),
                precision="fp16")
    key = engine_cache.cache_key(**base)
    assert key == engine_cache.cache_key(**dict(base))
    changes = [dict(weights_sha256="b" * 64), dict(gpu_name="NVIDIA H200"),
               dict(versions={"torch": "2.11.0", "tensorrt": "11.2.0"}),
               dict(shape=(2, 3, 352, 352)), dict(precision="fp32")]
    keys = {engine_cache.cache_key(**{**base, **change}) for change in changes}
    assert len(keys) == len(changes) and key not in keys
    path = engine_cache.engine_path(tmp_path, key, base["shape"], "fp16")
    assert path.parent == tmp_path and path.name == f"m2snet-1x3x352x352-fp16-{key[:16]}.ep"


def test_weights_hash_is_the_files_sha256(tmp_path):
    import hashlib
    data = b"0123456789" * 300_000
    (tmp_path / "w.pt").write_bytes(data)
    assert engine_cache.file_sha256(tmp_path / "w.pt") == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("shape", [(481, 641), (37, 53)])
def test_openvino_backend_equals_eager_model(weights, cpu, shape):
    pytest.importorskip("openvino")
    seg = Segmenter(weights, backend="openvino")
    assert seg.info.runner == "openvino (cpu) fp32"
    frame = _frame(*shape)
    result = seg(frame)
    expected = _eager_reference(weights, frame)
    torch.testing.assert_close(result.probabilities, expected, rtol=0, atol=1e-4)
    assert dice(result.masks, expected > 0.5) >= 0.99
    frames = np.stack([_frame(*shape, seed) for seed in range(3)])  # a second batch shape
    torch.testing.assert_close(seg(frames).probabilities, cpu(frames).probabilities,
                               rtol=0, atol=1e-4)


def test_openvino_refuses_what_it_cannot_run(weights, monkeypatch):
    pytest.importorskip("openvino")
    with pytest.raises(BackendError, match="fp16 is a GPU precision; on the CPU use fp32, bf16 "
                                           "or int8"):
        Segmenter(weights, backend="openvino", precision="fp16")
    with pytest.raises(BackendError, match="the cpu backend runs fp32 or bf16"):
        Segmenter(weights, backend="cpu", precision="int8")
    with pytest.raises(BackendError, match="impl='factored'"):
        Segmenter(weights, backend="openvino", impl="kernel")
    monkeypatch.setattr("realtime.engine.backends.openvino.openvino_module", lambda: None)
    with pytest.raises(BackendError, match=r"needs OpenVINO \(pip install openvino\)"):
        Segmenter(weights, backend="openvino")


def _openvino_that_cannot_convert(monkeypatch):
    """OpenVINO failing the way it does on a network it cannot convert (its multi-line
    message). Patched: every network this project builds converts, so no real one fails."""
    openvino = pytest.importorskip("openvino")

    def convert_model(*args, **kwargs):
        raise RuntimeError("Exception from src/frontends/pytorch/src/frontend.cpp:168:\n"
                           "Model wasn't fully converted.\n"
                           "Summary: -- No conversion rule found for operations: aten::foo")
    monkeypatch.setattr(openvino, "convert_model", convert_model)


@pytest.mark.skipif(torch.cuda.is_available(), reason="auto picks a GPU backend there")
def test_auto_falls_back_to_cpu_when_openvino_cannot_take_the_network(weights, caplog,
                                                                       tmp_path, monkeypatch):
    _openvino_that_cannot_convert(monkeypatch)
    with caplog.at_level(logging.INFO, logger="realtime.engine"):
        seg = Segmenter(weights, backend="auto", cache_dir=tmp_path)
    assert seg.backend == "cpu" and seg.info.runner.startswith("cpu")
    [warning] = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith("backend openvino could not prepare small.pt (") and \
        "No conversion rule found for operations: aten::foo" in warning and \
        warning.endswith("): using cpu instead")
    frame = _frame(70, 90)
    torch.testing.assert_close(seg(frame).probabilities,
                               Segmenter(weights, backend="cpu")(frame).probabilities)
    assert not list(tmp_path.iterdir())  # nothing half-written in the cache


def test_explicit_openvino_that_cannot_take_the_network_fails_in_one_line(weights, tmp_path,
                                                                           monkeypatch):
    _openvino_that_cannot_convert(monkeypatch)
    with pytest.raises(BackendError) as caught:
        Segmenter(weights, backend="openvino", cache_dir=tmp_path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(
        "backend 'openvino' could not prepare small.pt: Exception from")
    assert message.endswith("aten::foo; backend='cpu' runs any network")


def test_openvino_segmenter_shared_by_threads_gives_each_its_own_result(weights, tmp_path):
    pytest.importorskip("openvino")
    from concurrent.futures import ThreadPoolExecutor
    seg = Segmenter(weights, backend="openvino", cache_dir=tmp_path)
    frames = [_frame(80, 120, seed) for seed in range(8)]
    alone = [seg(f).probabilities for f in frames]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda f: seg(f).probabilities, frames * 3))
    for i, result in enumerate(together):
        torch.testing.assert_close(result, alone[i % 8], rtol=0, atol=0)
