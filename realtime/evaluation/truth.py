"""Per-frame ground truth of a video: a COCO file with every frame as an image and one
annotation per lesion and frame (what ``m2snet phantom --procedure`` writes, and what
REAL-Colon-style datasets carry).

Required: ``images`` with ``id``, ``file_name`` ending in ``_<frame index>`` (TRUE-Colon
reads the frame's position from it) and ``width``/``height``; ``annotations`` with
``image_id``, ``bbox`` [x, y, w, h], a ``segmentation`` (RLE or polygons) for the pixel
metrics, and ``unique_id`` naming the lesion for the lesion tier. The frame index of an image
is its ``frame_index`` when given, else the number at the end of its file name.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime.errors import RealtimeError


class TruthError(RealtimeError, ValueError):
    """A ground-truth file that cannot be used; the message says why."""


@dataclass
class VideoTruth:
    path: Path
    coco: dict                          # the file as read
    fps: float
    frame_of_image: dict[int, int]      # image id -> frame index
    image_of_frame: dict[int, int]      # frame index -> image id
    annotations: dict[int, list[dict]]  # frame index -> its annotations

    @property
    def frames(self) -> int:
        return len(self.image_of_frame)

    def mask(self, index: int) -> np.ndarray:
        """The frame's ground-truth mask (every annotated lesion), H x W bool."""
        from pycocotools import mask as coco_mask
        image = self.coco_image(index)
        h, w = image["height"], image["width"]
        out = np.zeros((h, w), bool)
        for ann in self.annotations.get(index, []):
            segmentation = ann["segmentation"]
            if isinstance(segmentation, list):
                rle = coco_mask.merge(coco_mask.frPyObjects(segmentation, h, w))
            elif isinstance(segmentation.get("counts"), list):
                rle = coco_mask.frPyObjects(segmentation, h, w)
            else:
                rle = segmentation
            out |= coco_mask.decode(rle).astype(bool)
        return out

    def coco_image(self, index: int) -> dict:
        return self._images[self.image_of_frame[index]]

    def __post_init__(self):
        self._images = {image["id"]: image for image in self.coco["images"]}


_TRAILING_NUMBER = re.compile(r"(\d+)$")


def load_truth(path: Path, fps: float | None = None) -> VideoTruth:
    try:
        coco = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise TruthError(f"{path}: no such file") from None
    except (OSError, ValueError) as error:
        raise TruthError(f"{path}: not a JSON file ({error})") from None
    if not isinstance(coco, dict) or not isinstance(coco.get("images"), list) \
            or not isinstance(coco.get("annotations"), list):
        raise TruthError(f"{path}: not COCO ground truth (needs 'images' and 'annotations')")
    frame_of_image = {}
    for image in coco["images"]:
        index = image.get("frame_index")
        if index is None:
            match = _TRAILING_NUMBER.search(Path(str(image.get("file_name", ""))).stem)
            if match is None:
                raise TruthError(f"{path}: image {image.get('id')!r} has no frame_index and "
                                 f"its file_name {image.get('file_name')!r} does not end in "
                                 f"a frame number")
            index = int(match.group(1))
        frame_of_image[image["id"]] = int(index)
    if len(set(frame_of_image.values())) != len(frame_of_image):
        raise TruthError(f"{path}: two images have the same frame index")
    annotations: dict[int, list[dict]] = {}
    for ann in coco["annotations"]:
        if ann.get("image_id") not in frame_of_image:
            raise TruthError(f"{path}: annotation {ann.get('id')!r} refers to image "
                             f"{ann.get('image_id')!r}, which is not listed")
        if "segmentation" not in ann or "bbox" not in ann:
            raise TruthError(f"{path}: annotation {ann.get('id')!r} needs a bbox and a "
                             f"segmentation")
        annotations.setdefault(frame_of_image[ann["image_id"]], []).append(ann)
    fps = fps or float(coco.get("info", {}).get("fps") or 30.0)
    return VideoTruth(Path(path), coco, fps, frame_of_image,
                      {f: i for i, f in frame_of_image.items()}, annotations)
