"""Backbones: five feature maps x1..x5 at strides 4, 4, 8, 16, 32 with known channels.

``res2net50d`` is the authors' Res2Net-50 v1b and lives under the attribute ``resnet`` with
the authors' parameter names (timm's module is name-for-name identical). Any other timm
model that offers five feature levels (ResNet-18, MobileNetV3, EfficientNet, ...) is wrapped
by ``TimmFeatures`` and lives under ``backbone``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

AUTHORS_BACKBONE = "res2net50d"


@dataclass(frozen=True)
class EncoderSpec:
    attribute: str                 # where the network stores it (checkpoint prefix)
    channels: tuple[int, ...]      # channels of x1..x5


def _timm():
    try:
        import timm
    except ImportError as err:  # pragma: no cover - timm is a hard dependency
        raise RuntimeError("timm is not installed: pip install -r requirements.txt") from err
    return timm


def _known_backbone(name: str) -> None:
    timm = _timm()
    if name not in timm.list_models():
        close = timm.list_models(f"*{name.split('_')[0]}*")[:12]
        hint = f"; similar names: {', '.join(close)}" if close else ""
        raise ValueError(f"unknown backbone {name!r} (any timm model name with 5 feature "
                         f"levels works, e.g. res2net50d, resnet18, mobilenetv3_large_100){hint}")


def res2net_features(net: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """x1..x5 of the authors' forward: stem + max-pool, then the four stages."""
    x = net.act1(net.bn1(net.conv1(x)))
    x1 = net.maxpool(x)
    x2 = net.layer1(x1)
    x3 = net.layer2(x2)
    x4 = net.layer3(x3)
    x5 = net.layer4(x4)
    return [x1, x2, x3, x4, x5]


class TimmFeatures(nn.Module):
    """A timm backbone's last five feature levels; a stride-2 first level is max-pooled to
    stride 4 (as ResNet's stem does) so the decoder never runs at half resolution."""

    def __init__(self, name: str, pretrained: bool = False):
        super().__init__()
        timm = _timm()
        self.body = timm.create_model(name, pretrained=pretrained, features_only=True)
        reductions = self.body.feature_info.reduction()
        if len(reductions) != 5:
            raise ValueError(f"backbone {name!r} has {len(reductions)} feature levels; M2SNet "
                             f"needs 5 (strides 2 or 4, 4, 8, 16, 32)")
        if list(reductions[1:]) != [4, 8, 16, 32] or reductions[0] not in (2, 4):
            raise ValueError(f"backbone {name!r} has feature strides {reductions}; M2SNet "
                             f"needs (2 or 4, 4, 8, 16, 32)")
        self.pool_first = reductions[0] == 2
        self.channels = tuple(self.body.feature_info.channels())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.body(x)
        if self.pool_first:
            feats[0] = F.max_pool2d(feats[0], 3, stride=2, padding=1)
        return feats


def build_encoder(name: str, pretrained: bool = False) -> tuple[EncoderSpec, nn.Module]:
    """The backbone module and where/how the network holds it.

    ``pretrained`` asks timm for ImageNet weights, which needs its hub (no network here).
    """
    _known_backbone(name)
    timm = _timm()
    if name == AUTHORS_BACKBONE:
        net = timm.create_model(name, pretrained=pretrained, num_classes=0)
        return EncoderSpec("resnet", (64, 256, 512, 1024, 2048)), net
    wrapper = TimmFeatures(name, pretrained=pretrained)
    return EncoderSpec("backbone", wrapper.channels), wrapper


def encode(spec: EncoderSpec, module: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    if spec.attribute == "resnet":
        return res2net_features(module, x)
    return module(x)
