"""COCO files of one annotated video, written with pycocotools' run-length encoding:

- ``coco.json``: a dataset, as annotation tools (CVAT) import it and as pycocotools' ``COCO()``
  reads ground truth. Every frame is an image, polyp-free frames included, with the id
  ``frame index + 1`` (the same in every file of the run, so ids join); ``file_name`` is
  ``<video stem>_<frame index, 6 digits>.png`` (the frames are named, not extracted; the
  form TRUE-Colon's ``stem_int_suffix`` rule reads video and frame from, as in the ground
  truth ``m2snet phantom --procedure`` writes). One
  annotation per listed region: compressed RLE segmentation, ``bbox`` [x, y, width, height]
  in pixels, area, score (the region's mean probability).
- ``coco_results.json``: the same regions as a results list (image_id, category_id, bbox,
  score, segmentation), the file pycocotools' ``loadRes`` (and TRUE-Colon) take as
  predictions.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from m2snet.files import write_json
from realtime.io.overlay import Region

RESULTS = "coco_results.json"


def rle_encode(mask: np.ndarray) -> dict:
    """pycocotools' compressed RLE of a H x W mask, its counts as text (JSON-ready)."""
    from pycocotools import mask as coco_mask
    rle = coco_mask.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def rle_decode(rle: dict) -> np.ndarray:
    from pycocotools import mask as coco_mask
    return coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")}
                            ).astype(bool)


def image_id(index: int) -> int:
    """COCO image id of a frame: its index + 1 (ids start at 1)."""
    return index + 1


class CocoWriter:
    def __init__(self, path: Path, video: str, width: int, height: int):
        self.path, self.video, self.width, self.height = path, video, width, height
        self.images: list[dict] = []
        self.annotations: list[dict] = []

    def add(self, index: int, time: float, mask: np.ndarray, regions: list[Region]) -> None:
        """A frame, with or without regions."""
        self.images.append({"id": image_id(index), "file_name": f"{self.video}_{index:06d}.png",
                            "width": self.width, "height": self.height, "frame_index": index,
                            "time": round(time, 6), "video": self.video})
        if not regions:
            return
        _, ids = cv2.connectedComponents((mask > 0).astype(np.uint8), connectivity=8)
        for region in regions:
            x0, y0, x1, y1 = region.box
            # the component whose box this is: the most common label inside the box
            inside = ids[y0:y1, x0:x1]
            component = np.bincount(inside[inside > 0]).argmax()
            self.annotations.append({
                "id": len(self.annotations) + 1, "image_id": image_id(index),
                "category_id": region.label, "segmentation": rle_encode(ids == component),
                "area": region.area, "bbox": [x0, y0, x1 - x0, y1 - y0], "iscrowd": 0,
                "score": round(region.score, 4)})

    def close(self) -> None:
        data = {"info": {"description": f"M2SNet polyp masks of {self.video}",
                         "image_ids": "frame index + 1"},
                "images": self.images, "annotations": self.annotations,
                "categories": [{"id": 1, "name": "polyp"}]}
        write_json(self.path, data, indent=None)
        results = [{key: a[key] for key in ("image_id", "category_id", "bbox", "score",
                                            "segmentation")} for a in self.annotations]
        write_json(self.path.with_name(RESULTS), results, indent=None)
