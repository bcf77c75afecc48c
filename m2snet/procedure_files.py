"""A phantom procedure on disk (what ``m2snet phantom --procedure`` writes):

- ``<name>.mp4``        the video, H.264 (near-lossless, crf 12), constant frame rate;
- ``<name>.truth.json`` COCO ground truth: every frame an image (id = frame index + 1,
  file_name ``<name>_<index:06d>.png``, also ``frame_index`` and ``time``), one annotation
  per annotated lesion and frame (bbox [x, y, w, h] in pixels, area, RLE segmentation,
  ``unique_id`` = the lesion's id, the same on every frame that shows it), and the
  procedure's plan under ``procedure``. It is what TRUE-Colon reads as ground truth and what
  ``m2snet-rt evaluate`` scores an annotation run against;
- with ``frames_every=K``: every K-th frame (every ``max(1, K // 4)``-th of those that show
  a lesion: they are rarer) as ``images/<name>_<index>.png`` and its mask as
  ``masks/<name>_<index>.png`` (0/255), a training set in the folders layout;
  ``entering_frames=N`` adds every one of the first N frames on which each lesion is
  annotated (a polyp coming into view, the frames a detection aid is slowest on).

Each file appears complete or not at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from m2snet.files import atomic_path, write_bytes, write_text
from m2snet.phantom_procedure import Procedure


@dataclass
class ProcedureReport:
    video: Path
    truth: Path
    frames: int
    frames_with_lesion: int
    lesions: int
    stretches: dict[str, int]   # kind -> count
    training_pairs: int = 0


def write_procedure(out: Path, procedure: Procedure, frames_every: int | None = None,
                    progress: bool = True, entering_frames: int = 0) -> ProcedureReport:
    import av
    from pycocotools import mask as coco_mask
    from tqdm import tqdm

    out.mkdir(parents=True, exist_ok=True)
    name, size = procedure.name, procedure.size
    images, annotations, pairs = [], [], 0
    first_frame: dict[str, int] = {}  # lesion id -> the first frame it is annotated on
    if frames_every:
        (out / "images").mkdir(exist_ok=True)
        (out / "masks").mkdir(exist_ok=True)
    video = out / f"{name}.mp4"
    with atomic_path(video) as tmp:
        container = av.open(str(tmp), "w", format="mp4")
        try:
            stream = container.add_stream("libx264", rate=round(procedure.fps))
            stream.width = stream.height = size
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "12", "preset": "veryfast"}
            for index, image, lesions in tqdm(procedure.frames(), total=procedure.frame_count,
                                              desc=name, unit="frame", disable=not progress):
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = index
                container.mux(stream.encode(frame))
                images.append({"id": index + 1, "file_name": f"{name}_{index:06d}.png",
                               "width": size, "height": size, "frame_index": index,
                               "time": round(index / procedure.fps, 6)})
                for lesion, mask in lesions.items():
                    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
                    x, y, w, h = (int(v) for v in coco_mask.toBbox(rle))
                    rle["counts"] = rle["counts"].decode("ascii")
                    annotations.append({"id": len(annotations) + 1, "image_id": index + 1,
                                        "category_id": 1, "bbox": [x, y, w, h],
                                        "area": int(mask.sum()), "segmentation": rle,
                                        "iscrowd": 0, "unique_id": lesion})
                    first_frame.setdefault(lesion, index)
                if frames_every and _training_pair(index, lesions, first_frame, frames_every,
                                                   entering_frames):
                    union = np.zeros((size, size), np.uint8)
                    for mask in lesions.values():
                        union[mask] = 255
                    file = f"{name}_{index:06d}.png"
                    _write_png(out / "images" / file, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
                    _write_png(out / "masks" / file, union)
                    pairs += 1
            container.mux(stream.encode(None))
        finally:
            container.close()
    truth = out / f"{name}.truth.json"
    kinds: dict[str, int] = {}
    for stretch in procedure.stretches:
        kinds[stretch.kind] = kinds.get(stretch.kind, 0) + 1
    write_text(truth, json.dumps({
        "info": {"description": f"phantom procedure {name} (m2snet phantom --procedure)",
                 "video": video.name, "fps": procedure.fps, "frames": procedure.frame_count,
                 "image_ids": "frame index + 1"},
        "images": images, "annotations": annotations,
        "categories": [{"id": 1, "name": "polyp", "supercategory": "lesion"}],
        "procedure": {"seed": procedure.seed, "size": size, "stretches": procedure.plan()},
    }) + "\n")
    with_lesion = len({a["image_id"] for a in annotations})
    return ProcedureReport(video, truth, procedure.frame_count, with_lesion, len(first_frame),
                           kinds, pairs)


def _training_pair(index: int, lesions: dict, first_frame: dict[str, int], every: int,
                   entering_frames: int) -> bool:
    """Whether frame ``index`` is written as a training pair: every ``every``-th frame, every
    ``every // 4``-th that shows a lesion, and each lesion's first ``entering_frames``."""
    if any(index - first_frame[lesion] < entering_frames for lesion in lesions):
        return True
    return index % (max(1, every // 4) if lesions else every) == 0


def _write_png(path: Path, array: np.ndarray) -> None:
    ok, data = cv2.imencode(".png", array)
    if not ok:
        raise OSError(f"could not encode {path}")
    write_bytes(path, data.tobytes())
