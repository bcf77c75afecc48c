"""What a detection aid is judged on, for an annotation run against per-frame ground truth,
scored twice: on the raw per-frame masks (every region is a detection) and on the alerts a
clinician sees (regions count only while the alert is on; on frames where the alert is held
without a region, the last boxes it showed stand for it).

The tiers are TRUE-Colon's, computed by the ``true-colon`` package itself: frame TPR/FPR
(a lesion frame is found when a detection overlaps a lesion's box; a lesion-free frame with
any detection is a false alert), per-lesion first-detection latency and persistence, COCO AP
and the FROC/AFROC curves. Beside them, from the same frame decisions: false-alert episodes
(runs of consecutive frames with a detection, none of which is on a lesion) per minute of
lesion-free video, and each lesion's latency in frames from the frame it is first annotated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime.evaluation.truth import VideoTruth

KINDS = ("masks", "alerts")


@dataclass
class VideoRun:
    folder: Path             # annotate's OUT/<stem>/
    frames: list[dict]       # its frames.jsonl records, in order
    truth: VideoTruth


def detections(frames: list[dict], kind: str) -> dict[int, list[dict]]:
    """Frame index -> the detections (``box`` [x0, y0, x1, y1), ``score``, ``track``) that
    count for ``kind``: "masks" every region, "alerts" the regions while the alert is on."""
    out, held = {}, []
    for frame in frames:
        regions = frame["regions"]
        if kind == "alerts":
            if not frame.get("alert"):
                held = []
                continue
            if regions:
                held = regions
            regions = regions or held
        if regions:
            out[frame["index"]] = regions
    return out


def coco_predictions(run: VideoRun, kind: str, id_offset: int = 0) -> list[dict]:
    """The run's detections as a COCO results list joined to the truth's image ids."""
    image_of_frame = run.truth.image_of_frame
    return [{"image_id": image_of_frame[index] + id_offset, "category_id": 1,
             "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(r["score"])}
            for index, regions in detections(run.frames, kind).items()
            for r in regions for x0, y0, x1, y1 in [r["box"]]]


def true_colon(runs: list[VideoRun], kind: str) -> dict:
    """TRUE-Colon's tiers over all runs pooled (image ids made unique across videos)."""
    import true_colon as tc

    images, annotations, predictions, offset = [], [], [], 0
    for run in runs:
        coco = run.truth.coco
        images += [{**image, "id": image["id"] + offset} for image in coco["images"]]
        annotations += [{**ann, "id": len(annotations) + i + 1,
                         "image_id": ann["image_id"] + offset}
                        for i, ann in enumerate(coco["annotations"])]
        predictions += coco_predictions(run, kind, offset)
        offset += max(image["id"] for image in coco["images"]) + 1
    gt = {"images": images, "annotations": annotations,
          "categories": [{"id": 1, "name": "polyp"}]}
    fps = runs[0].truth.fps
    config = tc.create_config(None, conf=0.001, lesion=tc.LesionConfig(fps=fps),
                              tiers=frozenset({"coco", "frame", "lesion", "froc", "afroc"}))
    evaluator = tc.create_evaluator(None, canonicalizer="stem_int_suffix",
                                    id_source="gt_integer", config=config)
    return tc.result_to_dict(evaluator.evaluate(gt, predictions))


@dataclass
class FrameDecisions:
    flagged: np.ndarray        # a detection counts on this frame
    found: np.ndarray          # ... and overlaps an annotated lesion's box
    lesion_frame: np.ndarray   # the frame has an annotated lesion


def frame_decisions(run: VideoRun, kind: str) -> FrameDecisions:
    n = len(run.frames)
    flagged, found, positive = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
    found_by = detections(run.frames, kind)
    for index in range(n):
        truth = run.truth.annotations.get(index, [])
        positive[index] = bool(truth)
        regions = found_by.get(index, [])
        flagged[index] = bool(regions)
        found[index] = any(_overlaps(r["box"], ann["bbox"]) for r in regions for ann in truth)
    return FrameDecisions(flagged, found, positive)


def _overlaps(box, bbox) -> bool:
    """[x0, y0, x1, y1) against COCO [x, y, w, h]: any shared area (TRUE-Colon's IoU > 0)."""
    x0, y0, x1, y1 = box
    bx, by, bw, bh = bbox
    return min(x1, bx + bw) > max(x0, bx) and min(y1, by + bh) > max(y0, by)


def false_episodes(flagged: np.ndarray, found: np.ndarray) -> int:
    """Runs of consecutive flagged frames on none of which a detection overlaps a lesion:
    alerts (or detections) that were never on a polyp. A run that was on one and lingers
    after it has left is a late end, not a false alert (its frames still count in the FPR)."""
    edges = np.flatnonzero(np.diff(np.r_[0, flagged.astype(np.int8), 0]))
    return sum(not found[start:end].any() for start, end in zip(edges[::2], edges[1::2]))


def clinical_summary(runs: list[VideoRun], kind: str) -> dict:
    """Frame rates, false-alert episodes per minute of lesion-free video and lesion
    latencies, pooled over the runs."""
    false_alerts = negative_frames = tp = positives = fp = 0
    latencies: list[int | None] = []
    fps = runs[0].truth.fps
    for run in runs:
        d = frame_decisions(run, kind)
        fp_frames = d.flagged & ~d.lesion_frame
        false_alerts += false_episodes(d.flagged, d.found)
        negative_frames += int((~d.lesion_frame).sum())
        fp += int(fp_frames.sum())
        tp += int(d.found.sum())
        positives += int(d.lesion_frame.sum())
        latencies += lesion_latencies(run, kind).values()
    minutes = negative_frames / fps / 60
    measured = [v for v in latencies if v is not None]
    return {"frames": sum(len(r.frames) for r in runs), "lesion_frames": positives,
            "frame_tpr": tp / positives if positives else None,
            "frame_fpr": fp / negative_frames if negative_frames else None,
            "false_alert_episodes": false_alerts,
            "lesion_free_minutes": round(minutes, 3),
            "false_alert_episodes_per_minute": false_alerts / minutes if minutes else None,
            "lesions": len(latencies), "lesions_found": len(measured),
            "latency_frames": latencies,
            "latency_frames_median": float(np.median(measured)) if measured else None,
            "latency_frames_max": max(measured) if measured else None,
            "found_within_10_frames": sum(v <= 10 for v in measured)}


def lesion_latencies(run: VideoRun, kind: str) -> dict[str, int | None]:
    """Each lesion: frames from its first annotated frame to the first frame on which a
    detection overlaps it (None: never)."""
    first_seen: dict[str, int] = {}
    first_found: dict[str, int] = {}
    found_by = detections(run.frames, kind)
    for index in sorted(run.truth.annotations):
        for ann in run.truth.annotations[index]:
            lesion = ann.get("unique_id", f"image{ann['image_id']}")
            first_seen.setdefault(lesion, index)
            if lesion not in first_found and any(
                    _overlaps(r["box"], ann["bbox"]) for r in found_by.get(index, [])):
                first_found[lesion] = index
    return {lesion: (first_found[lesion] - start if lesion in first_found else None)
            for lesion, start in first_seen.items()}
