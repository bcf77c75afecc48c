"""Frames in and network output back to frame size, on the backend's device (the network's
input itself is made by ``m2snet.preprocess``, which training and evaluation share).

Frames are uint8 RGB, H x W x 3 (one) or N x H x W x 3 (a batch), as numpy arrays or torch
tensors on any device. Grayscale frames (H x W or H x W x 1) are repeated to three channels.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from realtime.errors import FrameError


def _as_tensor(frames) -> torch.Tensor:
    if isinstance(frames, torch.Tensor):
        return frames
    if isinstance(frames, np.ndarray):
        if not frames.flags.writeable:  # e.g. a web framework's frame: torch wants to own it
            frames = frames.copy()
        return torch.from_numpy(np.ascontiguousarray(frames))
    if isinstance(frames, Sequence) and frames and not isinstance(frames, (str, bytes)):
        parts = [_as_tensor(f) for f in frames]
        shapes = {tuple(p.shape) for p in parts}
        if len(shapes) != 1:
            raise FrameError(f"frames of one batch must share a size, got {sorted(shapes)}")
        return torch.stack([p.to(parts[0].device) for p in parts])
    raise FrameError(f"expected a uint8 image (numpy array or torch tensor), got "
                     f"{type(frames).__name__}")


class HostStager:
    """Copies CPU frames to the GPU through one reused pinned buffer, asynchronously.

    The buffer is rewritten only after the previous copy out of it has finished (an event),
    so a frame is never overwritten while the GPU still reads it.
    """

    def __init__(self):
        self.buffer: torch.Tensor | None = None
        self.copied: torch.cuda.Event | None = None

    def __call__(self, t: torch.Tensor, device: torch.device) -> torch.Tensor:
        if self.copied is not None:
            self.copied.synchronize()
        if self.buffer is None or self.buffer.shape != t.shape:
            self.buffer = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
        self.buffer.copy_(t)
        out = self.buffer.to(device, non_blocking=True)
        self.copied = torch.cuda.Event()
        self.copied.record()
        return out


def to_batch(frames, device: torch.device,
             stager: HostStager | None = None) -> tuple[torch.Tensor, bool]:
    """(N x H x W x 3 uint8 tensor on device, whether a single frame was given)."""
    t = _as_tensor(frames)
    if t.dtype != torch.uint8:
        raise FrameError(f"frames must be uint8 RGB (0..255), got {t.dtype}")
    shape = tuple(t.shape)
    if t.dim() == 2:
        t = t.unsqueeze(-1)
    single = t.dim() == 3
    if single:
        t = t.unsqueeze(0)
    if t.dim() != 4 or t.shape[-1] not in (1, 3):
        raise FrameError(f"expected H x W x 3 (or N x H x W x 3) RGB frames, got shape {shape}")
    if t.shape[1] < 1 or t.shape[2] < 1:
        raise FrameError(f"empty frame of shape {tuple(t.shape[1:])}")
    if t.shape[-1] == 1:
        t = t.expand(*t.shape[:-1], 3)
    if t.device != device:
        if device.type == "cuda" and t.device.type == "cpu" and stager is not None:
            t = stager(t, device)
        else:
            t = t.to(device)
    return t, single


def to_frame_size(logits: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Logits (any float dtype) -> float32 probabilities at frame size: sigmoid for one
    class, softmax over classes otherwise."""
    logits = F.interpolate(logits.float(), size=(height, width), mode="bilinear",
                           align_corners=False)
    if logits.shape[1] == 1:
        return torch.sigmoid(logits[:, 0])
    return torch.softmax(logits, dim=1)
