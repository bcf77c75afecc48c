"""The reference recipe's loss: structure loss + 0.1 x LossNet (the authors' training setup)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

log = logging.getLogger("m2snet.train")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def local_mean(mask: torch.Tensor, k: int = 31) -> torch.Tensor:
    """``F.avg_pool2d(mask, k, stride=1, padding=k // 2)`` (zero padding counted), as two 1-D
    passes: 2k instead of k*k reads per pixel (the 31 x 31 pool was 14% of a training step)."""
    rows = F.avg_pool2d(mask, (k, 1), stride=1, padding=(k // 2, 0))
    return F.avg_pool2d(rows, (1, k), stride=1, padding=(0, k // 2))


def structure_loss(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Boundary-weighted BCE + weighted IoU; mask in {0, 1}, same shape as logits."""
    weight = 1 + 5 * (local_mean(mask) - mask).abs()
    bce = F.binary_cross_entropy_with_logits(logits, mask, reduction="none")
    wbce = (weight * bce).sum(dim=(2, 3)) / weight.sum(dim=(2, 3))
    prob = torch.sigmoid(logits)
    inter = (prob * mask * weight).sum(dim=(2, 3))
    union = ((prob + mask) * weight).sum(dim=(2, 3))
    wiou = 1 - (inter + 1) / (union - inter + 1)
    return (wbce + wiou).mean()


def multiclass_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy + soft Dice averaged over classes, for N x K x H x W logits and N x H x W
    class indices (the multi-class tasks, e.g. OCT layers; the paper's structure loss is
    binary)."""
    ce = F.cross_entropy(logits, labels)
    prob = logits.softmax(dim=1)
    onehot = F.one_hot(labels, logits.shape[1]).permute(0, 3, 1, 2).to(prob.dtype)
    inter = (prob * onehot).sum(dim=(2, 3))
    dice = (2 * inter + 1) / (prob.sum(dim=(2, 3)) + onehot.sum(dim=(2, 3)) + 1)
    return ce + (1 - dice).mean()


class LossNet(nn.Module):
    """MSE between frozen VGG-16 features of prediction and mask at relu1_2, relu2_2,
    relu3_3 and relu4_3 (cuts after layers 3, 8, 15, 22)."""

    CUTS = (4, 9, 16, 23)

    def __init__(self, weights: str | Path | None):
        super().__init__()
        from torchvision.models import vgg16
        features = vgg16(weights=None).features[: self.CUTS[-1]]
        if weights is not None:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            state = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
            features.load_state_dict({k: v for k, v in state.items()
                                      if int(k.split(".")[0]) < self.CUTS[-1]})
        self.features = features.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x.repeat(1, 3, 1, 1) - self.mean) / self.std
        x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
        taps, start = [], 0
        for cut in self.CUTS:
            x = self.features[start:cut](x)
            taps.append(x)
            start = cut
        return taps

    def forward(self, prob: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return sum(F.mse_loss(p, m) for p, m in zip(self._taps(prob), self._taps(mask)))


def build_lossnet(setting: str) -> LossNet | None:
    """"off", "random" (frozen random features: the structure, not ImageNet's knowledge) or a
    path to torchvision's vgg16 ImageNet weights. The choice is logged."""
    if setting == "off":
        log.info("LossNet: off (structure loss only)")
        return None
    if setting == "random":
        log.info("LossNet: frozen VGG-16 with RANDOM weights (no ImageNet weights given)")
        return LossNet(None)
    path = Path(setting)
    if not path.is_file():
        raise FileNotFoundError(f"LossNet weights {path} not found (give torchvision's "
                                f"vgg16 ImageNet .pth, or lossnet=random / lossnet=off)")
    log.info("LossNet: VGG-16 ImageNet features from %s", path)
    return LossNet(path)
