"""M2SNet (multi-scale-in-multi-scale subtraction network) and MSNet, as one model package.

    model = m2snet.create_model("m2snet", weights="M2SNet.pth")   # the authors' file
    model = m2snet.load_model("ours.pt")                           # built from its own metadata
    light = m2snet.create_model(**m2snet.VARIANTS["m2snet-light"])

Models come back in eval mode and take N x 3 x H x W normalized floats (H, W multiples of
32), returning N x num_classes x H x W logits.
"""

from __future__ import annotations

import os

from m2snet.checkpoint import (AUTHORS_TRAINING, IMAGENET, Checkpoint, CheckpointError,
                               ModelConfig, Normalization, load_state, read_checkpoint,
                               save_checkpoint)
from m2snet.model import ARCHS, M2SNet

# Named configurations. "m2snet" / "msnet" are the papers' networks; the light variant
# trades the Res2Net-50 and 64-wide decoder for real-time CPU/edge speed.
VARIANTS = {
    "m2snet": dict(arch="m2snet", backbone="res2net50d", width=64),
    "msnet": dict(arch="msnet", backbone="res2net50d", width=64),
    "m2snet-light": dict(arch="m2snet", backbone="mobilenetv3_large_100", width=16),
}


def create_model(arch: str = "m2snet", backbone: str = "res2net50d", num_classes: int = 1,
                 weights: str | os.PathLike | Checkpoint | None = None, *, width: int = 64,
                 impl: str = "factored", pretrained_backbone: bool = False) -> M2SNet:
    """Build a network in eval mode; with ``weights``, load them strictly.

    ``impl`` picks the subtraction unit: "factored" (exact, cheap: the default), "dense"
    (the authors' all-ones convolution, the reference) or "kernel" (the fused operator).
    """
    ckpt = weights if isinstance(weights, Checkpoint) or weights is None else read_checkpoint(weights)
    if ckpt is not None:
        asked = ModelConfig(arch, backbone, num_classes, width)
        wrong = [f"{f} is {getattr(ckpt.config, f)!r}, not {getattr(asked, f)!r}"
                 for f in ("arch", "backbone", "num_classes", "width")
                 if getattr(ckpt.config, f) != getattr(asked, f)]
        if wrong:
            source = weights if not isinstance(weights, Checkpoint) else "checkpoint"
            raise CheckpointError(f"{source}: checkpoint does not match the requested model: "
                                  f"{'; '.join(wrong)} (m2snet.load_model builds what the "
                                  f"file describes)")
    model = M2SNet(arch, backbone, num_classes, width=width, impl=impl,
                   pretrained_backbone=pretrained_backbone)
    if ckpt is not None:
        load_state(model, ckpt.state_dict, str(weights))
    return model.eval()


def load_model(weights: str | os.PathLike, *, impl: str = "factored") -> tuple[M2SNet, Checkpoint]:
    """Build the network a checkpoint describes and load it; returns (model, checkpoint)."""
    ckpt = read_checkpoint(weights)
    c = ckpt.config
    model = M2SNet(c.arch, c.backbone, c.num_classes, width=c.width, impl=impl)
    load_state(model, ckpt.state_dict, str(weights))
    return model.eval(), ckpt


__all__ = ["ARCHS", "AUTHORS_TRAINING", "IMAGENET", "VARIANTS", "Checkpoint", "CheckpointError",
           "M2SNet", "ModelConfig", "Normalization", "create_model", "load_model",
           "read_checkpoint", "save_checkpoint"]
