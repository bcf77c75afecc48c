"""Training configuration: YAML files mapped onto dataclasses, ``key=value`` overrides,
unknown keys refused, and the learning-rate schedule the configuration names."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from m2snet.errors import M2SNetError


@dataclass
class DataConfig:
    train: str = ""
    val: str = ""
    test: str = ""     # held out: for `python -m m2snet eval --data`, never read in training


@dataclass
class TrainConfig:
    arch: str = "m2snet"
    backbone: str = "res2net50d"
    width: int = 64
    num_classes: int = 1
    input_size: int = 352
    scales: list = field(default_factory=lambda: [224, 256, 288, 320, 352])
    epochs: int = 50
    batch_size: int = 16
    optimizer: str = "sgd"          # sgd (the recipe) or adamw
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "triangular"    # triangular (the recipe), cosine, constant
    lossnet: str = "off"            # off, random, or a path to torchvision vgg16 weights
    lossnet_weight: float = 0.1
    pretrained_backbone: bool = False
    init: str = ""                  # start from these weights (ours or the authors'): fine-tuning
    seed: int = 0
    workers: int = 2
    max_minutes: float = 0.0        # stop after this long (0: no limit); the run stays valid
    channels_last: bool = True      # same math; a training step took 26% less time on the CPU
    bn_recalibrate: int = 0         # after the last epoch, re-estimate BatchNorm statistics
                                    # over this many un-augmented batches at input_size
    data: DataConfig = field(default_factory=DataConfig)


class ConfigError(M2SNetError, ValueError):
    """An unknown key or a value of the wrong type in a training config."""


def _apply(target, values: dict, prefix: str = "") -> None:
    names = {f.name: f for f in dataclasses.fields(target)}
    for key, value in values.items():
        if key not in names:
            raise ConfigError(f"unknown config key '{prefix}{key}'; known: {', '.join(names)}")
        current = getattr(target, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"config key {prefix}{key} takes a mapping, got {value!r}")
            _apply(current, value, f"{prefix}{key}.")
            continue
        kind = type(current)
        if kind is float and isinstance(value, int):
            value = float(value)
        if kind is str and isinstance(value, bool):
            value = "on" if value else "off"  # YAML 1.1 reads an unquoted off/on as a boolean
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(f"config key {prefix}{key} takes {kind.__name__}, got {value!r}")
        setattr(target, key, value)


def load_config(path: str | Path | None, overrides: list[str]) -> TrainConfig:
    """YAML file, then ``key=value`` (dotted keys, YAML values) overrides; unknown keys fail."""
    config = TrainConfig()
    if path is not None:
        values = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: a training config is a YAML mapping")
        _apply(config, values)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} is not key=value")
        nested: dict = {}
        cursor = nested
        parts = key.split(".")
        for part in parts[:-1]:
            cursor = cursor.setdefault(part, {})
        cursor[parts[-1]] = yaml.safe_load(raw)
        _apply(config, nested)
    return config


def learning_rate(config: TrainConfig, epoch: float) -> float:
    """The rate for (fractional) ``epoch``: the recipe's triangular schedule changes once per
    epoch; cosine follows the step (``epoch + step / steps``) down to zero at the end, so a
    short run ends annealed instead of on its last epoch's plateau."""
    e, total = epoch, config.epochs
    if config.schedule == "triangular":
        return config.lr * (1 - abs(2 * (e + 1) / (total + 1) - 1))
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * e / total))
    return config.lr
