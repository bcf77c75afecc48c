"""``python -m realtime export``: a checkpoint as a deployment artefact (ONNX, OpenVINO IR,
TorchScript, ExportedProgram, TensorRT engine), with a provenance file beside it and a check
of the artefact, in its own runtime, against the float32 network.

    path, provenance = export("m2snet_polyp.pt", "onnx", out="m2snet.onnx")
    provenance["check"]["passed"]      # the accuracy gate (``realtime.export.check``)
    verify("m2snet.onnx")              # the same check again, later or elsewhere

The provenance (``<artefact>.json``) says what the artefact is and how to feed it: the
weights it came from (file name and SHA-256), the artefact's own SHA-256, input name, layout,
size and normalization, output meaning, precision, calibration, library versions, the check.
"""

from __future__ import annotations

import json
import platform
import time
from importlib import metadata
from pathlib import Path

import torch

from m2snet.files import write_json
from realtime.engine.cache import file_sha256
from realtime.errors import BackendError, one_line
from realtime.export import check as checks
from realtime.export.formats import FORMATS, Format, Job, get

LIBRARIES = ("torch", "onnx", "onnxscript", "onnxruntime", "openvino", "nncf", "torch_tensorrt",
             "m2snet-realtime")


class ArtefactError(BackendError):
    """An artefact that cannot be used: missing, changed since export, unreadable."""


def provenance_path(artefact: Path) -> Path:
    return artefact.with_name(artefact.name + ".json")


def default_output(weights: Path, fmt: Format, size: int, precision: str) -> Path:
    return Path("exports") / f"{weights.stem}-{size}-{precision}{fmt.suffix}"


def export(weights: str | Path | None, format: str, out: str | Path | None = None,
           precision: str = "fp32", size: int | None = None, dynamic_batch: bool = False,
           calibration: str | None = None, calibration_frames: int | None = None,
           check_frames: int = checks.CHECK_FRAMES) -> tuple[Path, dict]:
    """Write the artefact and its provenance, check it; (artefact path, provenance)."""
    import m2snet
    from realtime.engine import DEMO_WEIGHTS
    from realtime.engine.backends import folded
    from realtime.engine.calibration import CalibrationSet
    from realtime.engine.segmenter import checked_size
    fmt = _usable(format, precision)
    weights = Path(weights) if weights else DEMO_WEIGHTS
    model, ckpt = m2snet.load_model(weights, impl="factored")
    size = checked_size(size or ckpt.input_size)
    out = Path(out) if out else default_output(weights, fmt, size, precision)
    if not out.name.endswith(fmt.suffix):
        raise ValueError(f"{out}: a {fmt.name} artefact's name ends in {fmt.suffix}")
    out.parent.mkdir(parents=True, exist_ok=True)
    calibrate = CalibrationSet(calibration, calibration_frames, size, ckpt.normalization)
    job = Job(folded(model.eval(), torch.device("cpu")), (1, 3, size, size), precision,
              dynamic_batch, calibrate, calibrate.name)
    started = time.perf_counter()
    fmt.write(job, out)
    provenance = {
        "format": fmt.name, "precision": precision, "runtime": fmt.runtime,
        "files": {p.name: file_sha256(p) for p in fmt.files(out)},
        "weights": {"file": weights.name, "sha256": file_sha256(weights),
                    "model": m2snet.checkpoint.describe(model)},
        "input": {"name": "image", "shape": ["N" if dynamic_batch else 1, 3, size, size],
                  "dtype": "float32", "layout": "NCHW", "channels": "RGB",
                  "normalization": {"mean": list(ckpt.normalization.mean),
                                    "std": list(ckpt.normalization.std),
                                    "pixel_scale": ckpt.normalization.max_value / 255.0}},
        "output": {"name": "logits", "shape": ["N" if dynamic_batch else 1,
                                               ckpt.config.num_classes, size, size],
                   "meaning": "logits: sigmoid gives the polyp probability"
                   if ckpt.config.num_classes == 1 else "logits per class: softmax, argmax"},
        "calibration": ({"source": calibration or "phantom", "frames": calibrate.count}
                        if precision == "int8" else None),
        "versions": _versions(), "machine": platform.processor() or platform.machine(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "export_seconds": round(time.perf_counter() - started, 1),
    }
    try:
        provenance["check"] = _check(fmt, out, precision, weights, size, check_frames)
    except Exception:
        for path in fmt.files(out):  # an artefact its own runtime cannot run is not kept
            path.unlink(missing_ok=True)
        raise
    write_json(provenance_path(out), provenance)
    return out, provenance


def verify(artefact: str | Path, weights: str | Path | None = None,
           check_frames: int = checks.CHECK_FRAMES) -> dict:
    """Check an exported artefact again: that it is what its provenance describes (and, given
    ``weights``, that it came from them), then the accuracy check. ArtefactError (one line)
    when it is missing, changed or unreadable."""
    artefact = Path(artefact)
    provenance = _read_provenance(artefact)
    fmt = get(provenance["format"])
    for path in fmt.files(artefact):
        recorded = provenance["files"].get(path.name)
        if not path.is_file():
            raise ArtefactError(f"{path}: no such file (part of the {fmt.name} artefact)")
        if recorded != file_sha256(path):
            raise ArtefactError(f"{path}: does not match its provenance (SHA-256 differs): "
                                f"corrupted or changed since export; export it again")
    weights = _reference_weights(weights, provenance)
    if file_sha256(weights) != provenance["weights"]["sha256"]:
        raise ArtefactError(f"{artefact}: exported from {provenance['weights']['file']} "
                            f"(SHA-256 {provenance['weights']['sha256'][:12]}), not from "
                            f"{Path(weights).name}")
    size = provenance["input"]["shape"][-1]
    return _check(fmt, artefact, provenance["precision"], weights, size, check_frames)


def _reference_weights(weights, provenance: dict) -> Path:
    """The checkpoint the check compares against: the one given, or the bundled demo model
    when that is what the artefact came from."""
    from realtime.engine import DEMO_WEIGHTS
    if weights is not None:
        return Path(weights)
    if file_sha256(DEMO_WEIGHTS) == provenance["weights"]["sha256"]:
        return DEMO_WEIGHTS
    raise ArtefactError(f"the check compares against the float32 network: pass the weights "
                        f"it was exported from ({provenance['weights']['file']})")


def _usable(name: str, precision: str) -> Format:
    fmt = get(name)
    reason = fmt.missing()
    if reason:
        raise BackendError(f"format {name!r} {reason}")
    if precision not in fmt.precisions:
        others = [f.name for f in FORMATS.values() if precision in f.precisions]
        raise BackendError(f"the {name} format is written in {' or '.join(fmt.precisions)}; "
                           f"{precision}: use --format {' or '.join(others) or 'openvino'}")
    return fmt


def _check(fmt: Format, artefact: Path, precision: str, weights, size: int, count: int) -> dict:
    from realtime.engine import Segmenter
    from m2snet.preprocess import resize_normalize
    try:
        run = fmt.load(artefact, precision)
    except Exception as error:
        raise ArtefactError(f"{artefact}: {fmt.runtime} cannot load it as a {fmt.name} artefact "
                            f"({one_line(error, limit=300)})") from error
    reference = Segmenter(weights, backend="cpu", precision="fp32", size=size)
    frames, truth = checks.check_frames(count, size)
    inputs = [resize_normalize(torch.from_numpy(f)[None], size, reference.normalization)
              .contiguous().numpy() for f in frames]

    @torch.inference_mode()
    def float32(x):
        return reference.runner.forward(torch.from_numpy(x)).numpy()
    return checks.compare(run, float32, inputs, truth)


def _read_provenance(artefact: Path) -> dict:
    if not artefact.is_file():
        raise ArtefactError(f"{artefact}: no such artefact")
    path = provenance_path(artefact)
    try:
        provenance = json.loads(path.read_text())
        provenance["format"], provenance["files"], provenance["input"]["shape"]
    except FileNotFoundError:
        raise ArtefactError(f"{artefact}: no provenance ({path.name}) beside it: "
                            f"not written by `export`, or moved without it") from None
    except (ValueError, KeyError, TypeError) as error:
        raise ArtefactError(f"{path}: not a provenance file ({one_line(error)})") from None
    return provenance


def _versions() -> dict:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            continue
    return versions


__all__ = ["FORMATS", "ArtefactError", "export", "provenance_path", "verify"]
