"""Reading and writing weights: the authors' released .pth files and our own checkpoints.

A checkpoint is data: every file is read with ``torch.load(weights_only=True)``, so a
pickle that would import or call anything is refused before any of it runs.

Our files are self-describing::

    {"format": FORMAT, "model": {arch, backbone, num_classes, width},
     "input_size": 352, "normalization": {"mean": [..], "std": [..], "max_value": 1.0},
     "state_dict": {...}}

The authors' files are a bare state dict (names possibly prefixed ``module.``, with the unused
ImageNet classifier ``resnet.fc.*``); they expect ImageNet normalization at 352 x 352.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from m2snet.errors import M2SNetError
from m2snet.files import atomic_path

FORMAT = "m2snet-rt/1"
MAX_LISTED = 6


class CheckpointError(M2SNetError, ValueError):
    """A weights file that cannot be used; the message is one line naming file and problem."""


@dataclass(frozen=True)
class Normalization:
    """x_normalized = (pixel / 255 * max_value - mean) / std, per RGB channel."""
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    max_value: float = 1.0  # 1.0: mean/std are for 0..1 pixels; 255.0: for 0..255 pixels


IMAGENET = Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 1.0)
# The reference training script's statistics, on 0..255 pixels.
AUTHORS_TRAINING = Normalization((124.55, 118.90, 102.94), (56.77, 55.97, 57.50), 255.0)


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "m2snet"
    backbone: str = "res2net50d"
    num_classes: int = 1
    width: int = 64


@dataclass(frozen=True)
class Checkpoint:
    config: ModelConfig
    state_dict: dict[str, torch.Tensor]
    input_size: int = 352
    normalization: Normalization = IMAGENET
    authors: bool = False  # True: a reference-implementation file, already cleaned up
    extra: dict = field(default_factory=dict)


def _load_file(path: Path) -> object:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pickle-protocol notes: the error below says it
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found:
            raise CheckpointError(f"{path}: refused: the file holds Python objects or code, "
                                  f"not just tensors (it references {found.group(1)}); "
                                  f"nothing in it was run") from None
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", text)
        reason = detail.group(1).strip() if detail else _first_line(err)
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({reason})") from None
    except RuntimeError as err:
        text = _first_line(err)
        if "zip archive" in text or "central directory" in text or "PytorchStreamReader" in text:
            raise CheckpointError(f"{path}: truncated or corrupt checkpoint archive "
                                  f"({text})") from None
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({text})") from None
    except (EOFError, ValueError, OSError, KeyError, IndexError) as err:
        raise CheckpointError(f"{path}: not a PyTorch checkpoint "
                              f"({type(err).__name__}: {_first_line(err)})") from None


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0].split(". ")[0][:200] if lines else type(err).__name__


def _is_state_dict(obj: object) -> bool:
    return (isinstance(obj, dict) and len(obj) > 0
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()))


def _clean_authors(path: Path, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip ``module.``, drop the ImageNet classifier, check and drop the implied all-ones
    convolution of the subtraction units."""
    cleaned = {}
    for name, tensor in state.items():
        if name.startswith("module."):
            name = name[len("module."):]
        if name.startswith("resnet.fc."):
            continue
        match = re.fullmatch(r"conv_([35])\.(weight|bias)", name)
        if match:
            expected = 1.0 if match.group(2) == "weight" else 0.0
            if not bool(torch.all(tensor == expected)):
                raise CheckpointError(f"{path}: {name} must be all {expected:g} (the fixed "
                                      f"subtraction-unit convolution), it is not")
            continue
        cleaned[name] = tensor
    return cleaned


def _infer_config(path: Path, state: dict[str, torch.Tensor]) -> ModelConfig:
    if "output1.0.weight" not in state or "x5_x4.0.weight" not in state:
        raise CheckpointError(f"{path}: not an M2SNet/MSNet checkpoint (no decoder entries "
                              f"output1.0.weight / x5_x4.0.weight)")
    backbone = "res2net50d" if any(k.startswith("resnet.") for k in state) else None
    if backbone is None:
        raise CheckpointError(f"{path}: a bare state dict without a Res2Net 'resnet.*' "
                              f"backbone; only our self-describing checkpoints can carry "
                              f"other backbones")
    arch = "m2snet" if "conv_3.norm.weight" in state else "msnet"
    return ModelConfig(arch, backbone, int(state["output1.0.weight"].shape[0]),
                       int(state["x5_x4.0.weight"].shape[0]))


def read_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read either format; raises CheckpointError with one line on any problem."""
    path = Path(path)
    obj = _load_file(path)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        try:
            model = obj["model"]
            norm = obj["normalization"]
            return Checkpoint(
                config=ModelConfig(str(model["arch"]), str(model["backbone"]),
                                   int(model["num_classes"]), int(model["width"])),
                state_dict=dict(obj["state_dict"]),
                input_size=int(obj["input_size"]),
                normalization=Normalization(tuple(norm["mean"]), tuple(norm["std"]),
                                            float(norm["max_value"])),
                extra=dict(obj.get("extra", {})))
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{path}: damaged {FORMAT} checkpoint (field {err})") from None
    if isinstance(obj, dict) and "format" in obj:
        raise CheckpointError(f"{path}: unknown checkpoint format {obj['format']!r} "
                              f"(this version reads {FORMAT})")
    if isinstance(obj, dict) and not _is_state_dict(obj):
        for key in ("state_dict", "model"):
            if _is_state_dict(obj.get(key)):
                obj = obj[key]
                break
    if not _is_state_dict(obj):
        raise CheckpointError(f"{path}: not a model checkpoint (expected a state dict of "
                              f"tensors, found {type(obj).__name__})")
    state = _clean_authors(path, obj)
    return Checkpoint(_infer_config(path, state), state, authors=True)


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


def load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Strict load whose error names every kind of mismatch in one line."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    misshaped = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
                 for k, v in own.items() if k in state and state[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} entries ({_listed(missing)})")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} entries ({_listed(unexpected)})")
    if misshaped:
        problems.append(f"{len(misshaped)} mis-shaped entries (file vs model: "
                        f"{_listed(misshaped)})")
    if problems:
        raise CheckpointError(f"{source}: does not fit {describe(model)}: " + "; ".join(problems))
    broken = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken:
        raise CheckpointError(f"{source}: {len(broken)} entries hold NaN or infinite values "
                              f"({_listed(broken)}): these weights cannot be used")
    model.load_state_dict(state, strict=True)


def describe(model: torch.nn.Module) -> str:
    name = {"m2snet": "M2SNet", "msnet": "MSNet"}.get(getattr(model, "arch", ""), "model")
    return (f"{name}({getattr(model, 'backbone_name', '?')}, "
            f"{getattr(model, 'num_classes', '?')} class(es), width {getattr(model, 'width', '?')})")


def _stored(name: str, tensor: torch.Tensor, half: bool) -> torch.Tensor:
    tensor = tensor.detach().cpu()
    # The subtraction units' window-sum statistics (variances up to ~1e7) overflow fp16.
    if half and tensor.is_floating_point() and not name.startswith(("conv_3.", "conv_5.")):
        return tensor.half()
    return tensor


def save_checkpoint(model: torch.nn.Module, path: str | os.PathLike, *, input_size: int = 352,
                    normalization: Normalization = IMAGENET, extra: dict | None = None,
                    half: bool = False) -> Path:
    """Write a self-describing checkpoint atomically (a crash never leaves half a file).

    ``half`` stores weights as float16 (half the size; loading restores float32)."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "model": {"arch": model.arch, "backbone": model.backbone_name,
                  "num_classes": model.num_classes, "width": model.width},
        "input_size": int(input_size),
        "normalization": {k: list(v) if isinstance(v, tuple) else v
                          for k, v in asdict(normalization).items()},
        "state_dict": {k: _stored(k, v, half) for k, v in model.state_dict().items()},
        "extra": dict(extra or {}),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def initialize_from(net: torch.nn.Module, path: str | os.PathLike) -> str | os.PathLike:
    """Fine-tuning: the weights of ``path`` (any checkpoint ``read_checkpoint`` takes, half
    precision included) into a freshly built network, which they must fit exactly. Returns
    ``path``."""
    checkpoint = read_checkpoint(path)
    own = net.state_dict()
    state = {k: v.to(own[k].dtype) if k in own else v for k, v in checkpoint.state_dict.items()}
    load_state(net, state, str(path))
    return path
