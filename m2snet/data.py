"""Image/mask folders for training: the PraNet layout (images|image, masks|mask) and the
recipe's augmentations (horizontal flip, rotation within +-10 degrees)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


class LayoutError(ValueError):
    """A data folder whose layout is not recognized; says what was expected."""


def _sub(root: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        if (root / name).is_dir():
            return root / name
    return None


def find_pairs(root: str | Path) -> list[tuple[Path, Path]]:
    """(image, mask) files matched by name stem under root/{images|image} and {masks|mask}."""
    root = Path(root)
    images, masks = _sub(root, ("images", "image")), _sub(root, ("masks", "mask"))
    if images is None or masks is None:
        raise LayoutError(f"{root}: expected sub-folders images/ (or image/) and masks/ "
                          f"(or mask/) with files of matching names")
    by_stem = {p.stem: p for p in masks.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    pairs, unmatched = [], []
    for image in sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        if image.stem in by_stem:
            pairs.append((image, by_stem[image.stem]))
        else:
            unmatched.append(image.name)
    if not pairs:
        raise LayoutError(f"{root}: no image in {images.name}/ has a mask of the same name "
                          f"in {masks.name}/")
    if unmatched:
        raise LayoutError(f"{root}: {len(unmatched)} image(s) without a mask, e.g. {unmatched[0]}")
    return pairs


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"{path}: not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mask(path: Path) -> np.ndarray:
    """Binary mask in {0, 1}: grey values thresholded at 128 (JPEG masks included)."""
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise OSError(f"{path}: not a readable mask")
    return (mask >= 128).astype(np.float32)


class SegmentationFolder(Dataset):
    def __init__(self, root: str | Path, size: int, augment: bool):
        self.pairs = find_pairs(root)
        self.size = size
        self.augment = augment

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, mask_path = self.pairs[index]
        image = cv2.resize(read_rgb(image_path), (self.size, self.size),
                           interpolation=cv2.INTER_LINEAR)
        mask = cv2.resize(read_mask(mask_path), (self.size, self.size),
                          interpolation=cv2.INTER_NEAREST)
        if self.augment:
            # torch's generator: the DataLoader seeds it per worker (and from torch.manual_seed)
            if torch.rand(()) < 0.5:
                image, mask = image[:, ::-1], mask[:, ::-1]
            angle = float(torch.empty(()).uniform_(-10, 10))
            rot = cv2.getRotationMatrix2D((self.size / 2, self.size / 2), angle, 1.0)
            image = cv2.warpAffine(np.ascontiguousarray(image), rot, (self.size, self.size),
                                   flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            mask = cv2.warpAffine(np.ascontiguousarray(mask), rot, (self.size, self.size),
                                  flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)  # uint8
        y = torch.from_numpy(np.ascontiguousarray(mask))[None]
        return x, y
