"""The deployment runtimes behind the Segmenter on the CPU: ONNX Runtime on the exported graph,
OpenVINO in bf16 and int8 (NNCF), and the int8 calibration sets.

Reduced precisions are judged on the bundled demo model (trained weights) and phantom frames
that show a polyp: a random network's logits sit near 0 and flip under any rounding."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from helpers import dice
from helpers.videos import write_video
from realtime.bench.grid import sample_frames
from realtime.engine import backends, calibration
from realtime.engine.segmenter import Segmenter
from realtime.errors import BackendError, SourceError

SIZE = 128  # the demo model at a small input: quick, and still trained weights


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return sample_frames(6, SIZE)


@pytest.fixture(scope="module")
def reference(frames):
    return Segmenter(None, backend="cpu", size=SIZE)(frames)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("engines")


def test_onnxruntime_equals_the_eager_model_and_reads_its_cache(frames, reference, cache_dir,
                                                                caplog):
    pytest.importorskip("onnxruntime")
    with caplog.at_level(logging.INFO, logger="realtime.engine"):
        first = Segmenter(None, backend="onnxruntime", size=SIZE, cache_dir=cache_dir)
        assert any("onnx: exported in" in r.message for r in caplog.records)
        caplog.clear()
        second = Segmenter(None, backend="onnxruntime", size=SIZE, cache_dir=cache_dir)
        assert not any("exported in" in r.message for r in caplog.records)
    assert first.info.runner == "onnxruntime (cpu) fp32"
    result = second(frames)
    assert reference.masks.any()
    torch.testing.assert_close(result.probabilities, reference.probabilities, rtol=0, atol=1e-4)
    assert dice(result.masks, reference.masks) >= 0.999
    # the graph's batch is open: one frame works too
    torch.testing.assert_close(second(frames[0]).probabilities, reference.probabilities[0],
                               rtol=0, atol=1e-4)
    # its threads block when idle instead of spinning on the cores the frames need
    from realtime.engine.backends.onnx_runtime import session
    options = session(next(cache_dir.rglob("*.onnx"))).get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def openmp_spin_seen_by(code: str, **env: str) -> str:
    """GOMP_SPINCOUNT as a fresh Python process sees it after ``code``."""
    clean = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", f"{code}; import os; "
                          "print(os.environ.get('GOMP_SPINCOUNT', 'unset'))"],
                         env={**clean, **env}, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_importing_realtime_before_torch_shortens_openmps_idle_spin():
    assert openmp_spin_seen_by("import realtime; import torch") == "30000"
    assert openmp_spin_seen_by("import realtime", GOMP_SPINCOUNT="5") == "5"  # the user's wins
    # libgomp has read its settings once torch is loaded: setting it then would change nothing
    assert openmp_spin_seen_by("import torch; import realtime") == "unset"


def test_a_backend_with_its_own_threads_says_when_openmp_still_spins(monkeypatch, caplog):
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    backends.note_openmp_spin.cache_clear()
    with caplog.at_level(logging.INFO, logger="realtime.engine"):
        backends.note_openmp_spin("openvino")
        backends.note_openmp_spin("openvino")  # once per process
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and messages[0].startswith("openvino: torch was imported before")
    assert "GOMP_SPINCOUNT=30000" in messages[0]
    backends.note_openmp_spin.cache_clear()
    monkeypatch.setenv("GOMP_SPINCOUNT", "30000")
    caplog.clear()
    backends.note_openmp_spin("openvino")
    assert not caplog.records


def test_onnxruntime_damaged_cache_entry_is_exported_again(frames, reference, cache_dir,
                                                           tmp_path, caplog):
    pytest.importorskip("onnxruntime")
    Segmenter(None, backend="onnxruntime", size=SIZE, cache_dir=cache_dir)  # cached already
    [cached] = cache_dir.glob("*.onnx")
    (tmp_path / cached.name).write_bytes(cached.read_bytes()[:1000])  # a copy cut short
    with caplog.at_level(logging.INFO, logger="realtime.engine"):
        again = Segmenter(None, backend="onnxruntime", size=SIZE, cache_dir=tmp_path)(frames)
    warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "is unreadable" in warnings[0] and "\n" not in warnings[0]
    torch.testing.assert_close(again.probabilities, reference.probabilities, rtol=0, atol=1e-4)


def test_openvino_bf16_stays_close_to_fp32(frames, reference, cache_dir):
    pytest.importorskip("openvino")
    from realtime.engine.backends.openvino import bf16_units
    if not bf16_units():
        pytest.skip("this CPU has no bfloat16 units")
    seg = Segmenter(None, backend="openvino", precision="bf16", size=SIZE, cache_dir=cache_dir)
    assert seg.info.runner == "openvino (cpu) bf16" and seg.precision == "bf16"
    result = seg(frames)
    difference = (result.probabilities - reference.probabilities).abs().max().item()
    assert 0 < difference < 0.3  # rounded (not fp32 under another name), yet close
    assert dice(result.masks, reference.masks) >= 0.98


def test_openvino_int8_is_quantized_once_then_cached(frames, reference, cache_dir, caplog):
    pytest.importorskip("nncf")
    with caplog.at_level(logging.INFO, logger="realtime.engine"):
        seg = Segmenter(None, backend="openvino", precision="int8", size=SIZE,
                        cache_dir=cache_dir, calibration_frames=16)
        assert any(r.message == "int8: quantized on 16 phantom frames" for r in caplog.records)
        caplog.clear()
        again = Segmenter(None, backend="openvino", precision="int8", size=SIZE,
                          cache_dir=cache_dir, calibration_frames=16)
        assert not any("quantized" in r.message for r in caplog.records)
    assert seg.info.runner == "openvino (cpu) int8"
    [cached_ir] = cache_dir.glob("*int8-*phantom-16-*.xml")
    # the encoder is quantized, the decoder (subtraction units, heads) is not
    import openvino
    quantizers = [op.get_friendly_name() for op in openvino.Core().read_model(
        str(cached_ir)).get_ordered_ops() if op.get_type_name() == "FakeQuantize"]
    assert len(quantizers) > 20
    inside = [name for name in quantizers if name.startswith("__module.backbone.")]
    assert len(inside) == len(quantizers) - 1  # and the input image itself
    result, cached = seg(frames), again(frames)
    torch.testing.assert_close(cached.probabilities, result.probabilities, rtol=0, atol=0)
    difference = (result.probabilities - reference.probabilities).abs().max().item()
    assert difference > 1e-3  # really quantized
    assert dice(result.masks, reference.masks) >= 0.8


def test_openvino_precisions_it_cannot_run_here_are_refused_in_one_line(monkeypatch):
    pytest.importorskip("openvino")
    monkeypatch.setattr("realtime.engine.quantize.nncf_module", lambda: None)
    with pytest.raises(BackendError, match=r"^int8 needs NNCF .*\(pip install nncf\)"):
        Segmenter(None, backend="openvino", precision="int8", size=SIZE)
    monkeypatch.setattr("realtime.engine.backends.openvino.bf16_units", lambda: False)
    with pytest.raises(BackendError, match="this CPU has no bfloat16 units"):
        Segmenter(None, backend="openvino", precision="bf16", size=SIZE)


def test_calibration_frames_from_a_video_are_spread_over_it(tmp_path):
    video = tmp_path / "clip.mp4"
    write_video(video, [i / 25 for i in range(40)], 96, 64)
    chosen = calibration.frames(str(video), count=4)
    assert len(chosen) == 4 and chosen[0].shape == (64, 96, 3)
    # every tenth frame of forty: they differ (the clip's brightness changes over time)
    assert len({float(f.mean()) for f in chosen}) == 4
    assert calibration.identity(str(video)) != calibration.identity(str(tmp_path))
    with pytest.raises(SourceError, match="no such calibration video or image folder"):
        calibration.identity(str(tmp_path / "missing.mp4"))


def test_the_default_calibration_is_a_phantom_procedure_with_and_without_polyps():
    from m2snet.phantom_procedure import Procedure
    chosen = calibration.frames(None, count=40, size=96)
    assert len(chosen) == 40 and chosen[0].shape == (96, 96, 3)
    procedure = Procedure(calibration.PHANTOM_SEED, seconds=40 * calibration.PHANTOM_STRIDE / 30
                          + 1, fps=30, size=96)
    shown = [bool(lesions) for index, _, lesions in procedure.frames()
             if index % calibration.PHANTOM_STRIDE == 0][:40]
    assert any(shown) and not all(shown)
