"""Datasets for training and evaluation: the layouts of the paper's datasets recognized by
``find_samples`` (PraNet, Kvasir-SEG, COVID-19 CT in both layouts, BUSI with merged masks,
GOALS OCT as 4 classes, SUN-SEG video), and the recipe's augmentations (horizontal flip,
rotation within +-10 degrees)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from m2snet.errors import M2SNetError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


class LayoutError(M2SNetError, ValueError):
    """A data folder whose layout is not recognized; says what was expected."""


def _sub(root: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        if (root / name).is_dir():
            return root / name
    return None


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


@dataclass(frozen=True)
class Sample:
    image: Path
    masks: tuple[Path, ...]          # several: their union (BUSI's name_mask_1.png, ...)
    group: str | None = None         # video sequence (SUN-SEG case) or BUSI class


@dataclass
class Samples:
    layout: str
    items: list[Sample]
    class_values: tuple[int, ...] | None = None   # multi-class: mask value of each class

    @property
    def num_classes(self) -> int:
        return len(self.class_values) if self.class_values else 1


# GOALS OCT layer masks: 0 = RNFL, 80 = GCIPL, 160 = choroid, 255 = background; class index
# 0 is the background, then the layers from the top.
GOALS_VALUES = (255, 0, 80, 160)

LAYOUTS = ("images/ + masks/ (or image/ + mask/; PraNet, Kvasir-SEG, COVID-19 CT "
           "{train,test}), Imgs/ + GT/ (Inf-Net COVID-19), benign/ + malignant/ with NAME.png "
           "and NAME_mask*.png (BUSI), Image/ + Layer_Masks/ (GOALS OCT), Frame/<case>/ + "
           "GT/<case>/ (SUN-SEG video)")


def find_samples(root: str | Path) -> Samples:
    """Recognize the dataset layout under ``root`` and list its samples; a LayoutError that
    names the expected layouts otherwise."""
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root}: no such folder")
    images, masks = _sub(root, ("images", "image", "Imgs")), _sub(root, ("masks", "mask", "GT"))
    if (root / "Frame").is_dir() and (root / "GT").is_dir():
        return Samples("sun-seg", _match_sequences(root / "Frame", root / "GT", root))
    if images is not None and masks is not None:
        return Samples("folders", _match(images, masks, root))
    if (root / "Image").is_dir() and (root / "Layer_Masks").is_dir():
        return Samples("goals", _match(root / "Image", root / "Layer_Masks", root), GOALS_VALUES)
    if (root / "benign").is_dir() or (root / "malignant").is_dir():
        return Samples("busi", _busi(root))
    raise LayoutError(f"{root}: not a dataset layout I know; expected one of: {LAYOUTS}")


def _match(images: Path, masks: Path, root: Path, group: str | None = None) -> list[Sample]:
    by_stem = {p.stem: p for p in _images(masks)}
    samples, unmatched = [], []
    for image in _images(images):
        if image.stem in by_stem:
            samples.append(Sample(image, (by_stem[image.stem],), group))
        else:
            unmatched.append(image.name)
    if not samples:
        raise LayoutError(f"{root}: no image in {images.name}/ has a mask of the same name "
                          f"in {masks.name}/")
    if unmatched:
        raise LayoutError(f"{root}: {len(unmatched)} image(s) without a mask, e.g. {unmatched[0]}")
    return samples


def _match_sequences(frames: Path, gt: Path, root: Path) -> list[Sample]:
    samples = []
    for case in sorted(p for p in frames.iterdir() if p.is_dir()):
        if not (gt / case.name).is_dir():
            raise LayoutError(f"{root}: sequence {case.name} has frames but no GT/{case.name}/")
        samples += _match(case, gt / case.name, root, case.name)
    if not samples:
        raise LayoutError(f"{root}: Frame/ holds no sequence folders")
    return samples


def _busi(root: Path) -> list[Sample]:
    """benign + malignant (M2SNet's setting; normal/ has no lesions and is left out)."""
    samples = []
    for label in ("benign", "malignant"):
        folder = root / label
        if not folder.is_dir():
            continue
        files = _images(folder)
        masks: dict[str, list[Path]] = {}
        for path in files:
            if "_mask" in path.stem:
                masks.setdefault(path.stem.split("_mask")[0], []).append(path)
        for path in files:
            if "_mask" in path.stem:
                continue
            if path.stem not in masks:
                raise LayoutError(f"{path}: no {path.stem}_mask.png beside it")
            samples.append(Sample(path, tuple(sorted(masks[path.stem])), label))
    if not samples:
        raise LayoutError(f"{root}: benign/ and malignant/ hold no images")
    return samples


def find_pairs(root: str | Path) -> list[tuple[Path, Path]]:
    """(image, mask) of single-mask layouts (the first mask of each sample)."""
    return [(s.image, s.masks[0]) for s in find_samples(root).items]


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"{path}: not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mask(path: Path) -> np.ndarray:
    """Binary mask in {0, 1}: grey values thresholded at 128 (JPEG masks included); colour
    masks (BUSI's RGB/RGBA files) count a pixel as foreground where any channel is >= 128."""
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise OSError(f"{path}: not a readable mask")
    if mask.ndim == 3:
        mask = mask[..., :3].max(axis=2)
    if mask.dtype != np.uint8:
        mask = (mask / np.iinfo(mask.dtype).max * 255).astype(np.uint8)
    return (mask >= 128).astype(np.float32)


def read_target(sample: Sample, class_values: tuple[int, ...] | None = None) -> np.ndarray:
    """Binary: the union of the sample's masks, float {0, 1}. Multi-class: class indices
    (uint8) from the mask's pixel values (``class_values[k]`` is class k)."""
    if class_values:
        mask = cv2.imread(str(sample.masks[0]), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise OSError(f"{sample.masks[0]}: not a readable mask")
        index = np.full(256, 255, np.uint8)
        index[list(class_values)] = np.arange(len(class_values), dtype=np.uint8)
        labels = index[mask]
        if (labels == 255).any():
            raise ValueError(f"{sample.masks[0]}: values other than {list(class_values)}")
        return labels
    target = read_mask(sample.masks[0])
    for extra in sample.masks[1:]:
        target = np.maximum(target, read_mask(extra))
    return target


class SegmentationFolder(Dataset):
    """Any recognized layout (``find_samples``). Targets: 1 x H x W float {0, 1} (binary) or
    uint8 class indices (multi-class layouts such as GOALS)."""

    def __init__(self, root: str | Path, size: int, augment: bool):
        self.samples = find_samples(root)
        self.size = size
        self.augment = augment

    @property
    def num_classes(self) -> int:
        return self.samples.num_classes

    def __len__(self) -> int:
        return len(self.samples.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        sample = self.samples.items[index]
        image = cv2.resize(read_rgb(sample.image), (self.size, self.size),
                           interpolation=cv2.INTER_LINEAR)
        mask = cv2.resize(read_target(sample, self.samples.class_values),
                          (self.size, self.size), interpolation=cv2.INTER_NEAREST)
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
