"""COCO-style annotations of a video's positive frames: one image entry per frame with a polyp,
one annotation per region (uncompressed RLE in COCO's column-major order, box, area, score),
as annotation tools (CVAT, pycocotools) import them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from m2snet.files import write_json
from realtime.io.overlay import Region


def rle_encode(mask: np.ndarray) -> dict:
    """COCO uncompressed RLE: run lengths over the column-major pixels, zeros first."""
    flat = np.asarray(mask, bool).ravel(order="F")
    changes = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def rle_decode(rle: dict) -> np.ndarray:
    height, width = rle["size"]
    values = np.zeros(height * width, bool)
    position, value = 0, False
    for count in rle["counts"]:
        values[position:position + count] = value
        position, value = position + count, not value
    return values.reshape((height, width), order="F")


class CocoWriter:
    def __init__(self, path: Path, video: str, width: int, height: int):
        self.path, self.video, self.width, self.height = path, video, width, height
        self.images: list[dict] = []
        self.annotations: list[dict] = []

    def add(self, index: int, time: float, mask: np.ndarray, regions: list[Region]) -> None:
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "file_name": f"{self.video}/{index:06d}.png",
                            "width": self.width, "height": self.height, "frame_index": index,
                            "time": round(time, 6), "video": self.video})
        labels = mask.astype(np.uint8) if mask.dtype != bool else mask.astype(np.uint8)
        count, ids = cv2.connectedComponents((labels > 0).astype(np.uint8), connectivity=8)
        for region in regions:
            x0, y0, x1, y1 = region.box
            # the component whose box this is: the most common label inside the box
            inside = ids[y0:y1, x0:x1]
            component = np.bincount(inside[inside > 0]).argmax()
            self.annotations.append({
                "id": len(self.annotations) + 1, "image_id": image_id,
                "category_id": region.label, "segmentation": rle_encode(ids == component),
                "area": region.area, "bbox": [x0, y0, x1 - x0, y1 - y0], "iscrowd": 0,
                "score": round(region.score, 4)})

    def close(self) -> None:
        data = {"info": {"description": f"M2SNet polyp masks of {self.video}"},
                "images": self.images, "annotations": self.annotations,
                "categories": [{"id": 1, "name": "polyp"}]}
        write_json(self.path, data, indent=None)
