"""``python -m realtime export``: every format written, loaded back in its own runtime and
checked against the float32 network; the provenance beside it; and the one-line errors for
artefacts that are corrupted, changed, moved without their provenance or from other weights.

The bundled demo model (trained weights) at a small input keeps it quick."""

from __future__ import annotations

import hashlib
import json

import pytest

from helpers import run_cli
from realtime.engine.segmenter import DEMO_WEIGHTS
from realtime.errors import BackendError
from realtime.export import ArtefactError, export, provenance_path, verify

SIZE, CHECK = 128, 6


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    return tmp_path_factory.mktemp("exports")


@pytest.mark.parametrize("fmt, suffix, runtime", [
    ("onnx", ".onnx", "onnxruntime"),
    ("openvino", ".xml", "openvino"),
    ("torchscript", ".torchscript.pt", "torch"),
    ("exported-program", ".pt2", "torch"),
])
def test_every_format_is_written_checked_and_described(exports, fmt, suffix, runtime):
    out = exports / f"demo{suffix}"
    path, provenance = export(None, fmt, out, size=SIZE, check_frames=CHECK)
    assert path == out and out.is_file()
    check = provenance["check"]
    # float32 formats give the float32 network's outputs, on frames that do show a polyp
    assert check["foreground"] > 0.01 and check["frames"] == CHECK
    assert check["max_prob_diff"] < 1e-4 and check["mask_dice"] > 0.999
    assert abs(check["mdice_drop"]) < 1e-3 and check["passed"]
    written = json.loads(provenance_path(out).read_text())
    assert written == json.loads(json.dumps(provenance))
    assert written["runtime"] == runtime and written["precision"] == "fp32"
    assert written["weights"]["sha256"] == _sha256(DEMO_WEIGHTS)
    for name, digest in written["files"].items():
        assert _sha256(exports / name) == digest
    assert written["input"]["shape"] == [1, 3, SIZE, SIZE]
    assert written["input"]["normalization"]["mean"] == [0.485, 0.456, 0.406]
    assert written["calibration"] is None
    assert not [p for p in exports.iterdir() if "partial" in p.name]


def test_openvino_bf16_passes_the_gate_on_trained_weights(exports):
    pytest.importorskip("openvino")
    from realtime.engine.backends.openvino import bf16_units
    if not bf16_units():
        pytest.skip("this CPU has no bfloat16 units")
    _, provenance = export(None, "openvino", exports / "demo-bf16.xml", precision="bf16",
                           size=SIZE, check_frames=CHECK)
    check = provenance["check"]
    assert 0 < check["max_prob_diff"] < 0.3 and check["mask_dice"] >= 0.98 and check["passed"]


def test_an_int8_export_records_its_calibration_and_its_gate(exports, tmp_path):
    pytest.importorskip("nncf")
    _, provenance = export(None, "openvino", exports / "demo-int8.xml", precision="int8",
                           size=SIZE, calibration_frames=16, check_frames=CHECK)
    assert provenance["calibration"] == {"source": "phantom", "frames": 16}
    check = provenance["check"]
    assert check["max_prob_diff"] > 1e-3  # really quantized
    assert check["passed"] == (check["mask_dice"] >= 0.98 and check["mdice_drop"] <= 0.01)


def test_a_format_refuses_precisions_it_does_not_store_and_says_which_does():
    with pytest.raises(BackendError, match="the onnx format is written in fp32; int8: use "
                                           "--format openvino"):
        export(None, "onnx", precision="int8")
    with pytest.raises(BackendError, match="unknown format 'tflite'"):
        export(None, "tflite")


def test_verify_passes_an_intact_artefact_and_names_each_problem(exports, tmp_path):
    out = exports / "demo.onnx"
    if not out.is_file():
        export(None, "onnx", out, size=SIZE, check_frames=CHECK)
    assert verify(out, check_frames=CHECK)["passed"]
    copy = tmp_path / "copy.onnx"
    copy.write_bytes(out.read_bytes())
    with pytest.raises(ArtefactError, match=r"copy.onnx: no provenance \(copy.onnx.json\) beside it"):
        verify(copy)
    provenance_path(copy).write_text(provenance_path(out).read_text().replace("demo.onnx",
                                                                              "copy.onnx"))
    assert verify(copy, check_frames=CHECK)["passed"]
    other = tmp_path / "other.pt"
    other.write_bytes(b"not the weights it came from")
    with pytest.raises(ArtefactError, match=r"exported from demo_model.pt \(SHA-256 [0-9a-f]{12}\), "
                                            r"not from other.pt"):
        verify(copy, other)
    copy.write_bytes(copy.read_bytes()[:5000])  # a copy cut short
    with pytest.raises(ArtefactError, match="does not match its provenance .*corrupted or "
                                            "changed since export"):
        verify(copy)
    # an artefact its runtime cannot read, though its provenance vouches for it
    record = json.loads(provenance_path(copy).read_text())
    record["files"]["copy.onnx"] = _sha256(copy)
    provenance_path(copy).write_text(json.dumps(record))
    with pytest.raises(ArtefactError, match="onnxruntime cannot load it as a onnx artefact"):
        verify(copy)


def test_cli_exit_codes_and_one_line_errors(exports, tmp_path):
    out = exports / "demo.onnx"
    if not out.is_file():
        export(None, "onnx", out, size=SIZE, check_frames=CHECK)
    ok = run_cli("realtime", "export", "--verify", str(out), "--check-frames", str(CHECK))
    assert ok.returncode == 0, ok.stderr
    assert "matches its provenance" in ok.stdout and "gate (Dice >= 0.98" in ok.stdout
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x00" * 100)
    provenance_path(broken).write_text("{not json")
    bad = run_cli("realtime", "export", "--verify", str(broken))
    assert bad.returncode == 1
    assert bad.stderr.strip().count("\n") == 0 and "not a provenance file" in bad.stderr
    engine = run_cli("realtime", "export", "--format", "engine", "--out",
                     str(tmp_path / "x.engine.ep"))
    assert engine.returncode == 1 and not (tmp_path / "x.engine.ep").exists()
    assert "build the engine" in engine.stderr and "trtexec" in engine.stderr
