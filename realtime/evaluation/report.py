"""``m2snet-rt evaluate``: annotation runs (``annotate``'s ``OUT/<stem>/`` folders) scored
against per-frame ground truth: the pixel metrics of the masks, then the clinical tiers
(``clinical``) for the raw masks and the alerts side by side."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from realtime.evaluation.clinical import KINDS, VideoRun, clinical_summary, true_colon
from realtime.evaluation.truth import TruthError, load_truth


def match_truth(runs: list[Path], truth: list[Path]) -> list[tuple[Path, Path]]:
    """Each run folder with its ground truth: one folder holding ``<stem>.truth.json`` for
    every run, or one file per run in the same order."""
    if len(truth) == 1 and truth[0].is_dir():
        pairs = [(run, truth[0] / f"{run.name}.truth.json") for run in runs]
        missing = [str(t) for _, t in pairs if not t.is_file()]
        if missing:
            raise TruthError(f"no ground truth for {len(missing)} run(s): {missing[0]} is missing")
        return pairs
    if len(truth) != len(runs):
        raise TruthError(f"{len(runs)} run(s) but {len(truth)} ground-truth file(s): give one "
                         f"per run, in the same order, or a folder of <stem>.truth.json")
    return list(zip(runs, truth))


def load_run(folder: Path, truth_path: Path) -> VideoRun:
    log = folder / "frames.jsonl"
    if not log.is_file():
        raise TruthError(f"{folder}: not an annotate result (no frames.jsonl)")
    frames = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    truth = load_truth(truth_path)
    if len(frames) != truth.frames:
        raise TruthError(f"{folder} has {len(frames)} frames but {truth_path} describes "
                         f"{truth.frames}: not the same video")
    if frames and frames[-1]["index"] != len(frames) - 1:
        raise TruthError(f"{folder}/frames.jsonl does not number its frames 0..{len(frames) - 1}")
    missing = sorted(set(range(len(frames))) - set(truth.image_of_frame))
    if missing:
        raise TruthError(f"{truth_path}: frame {missing[0]} has no image")
    return VideoRun(folder, frames, truth)


def pixel_metrics(runs: list[VideoRun]) -> dict:
    """The paper's metrics (pysodmetrics) over the frames with an annotated lesion, and Dice
    over every frame (an empty frame left empty counts 1)."""
    import av

    from m2snet.evaluate import BinaryEvaluator

    evaluator, dice_all = BinaryEvaluator(), []
    for run in runs:
        with av.open(str(run.folder / "masks.mkv")) as c:
            for index, frame in enumerate(c.decode(video=0)):
                predicted = frame.to_ndarray(format="gray") >= 128
                truth = run.truth.mask(index)
                if truth.any():
                    evaluator.add(predicted.astype(np.uint8) * 255, truth)
                total = predicted.sum() + truth.sum()
                dice_all.append(1.0 if total == 0 else 2 * (predicted & truth).sum() / total)
    out = evaluator.results() if evaluator.images else {}
    return {"lesion_frames": out, "dice_all_frames": float(np.mean(dice_all))}


def replay_alerts(frames: list[dict], settings) -> None:
    """The alert states another filter setting would have given, from the run's own
    per-mask decisions (no inference again)."""
    from realtime.pipeline.alerts import AlertFilter
    alerts = AlertFilter(settings)
    for frame in frames:
        score = max((r["score"] for r in frame["regions"]), default=0.0)
        frame["alert"] = alerts.update(frame["polyp"], score, frame["index"], frame["time"]).on


def evaluate(pairs: list[tuple[Path, Path]], pixels: bool = True, alerts=None) -> dict:
    """``alerts``: AlertSettings to replay over the runs instead of their own alert states."""
    runs = [load_run(folder, truth) for folder, truth in pairs]
    if alerts is not None:
        for run in runs:
            replay_alerts(run.frames, alerts)
    report = {"videos": [{"run": str(f), "truth": str(t), "frames": len(r.frames)}
                         for (f, t), r in zip(pairs, runs)]}
    if alerts is not None:
        report["alerts_replayed"] = asdict(alerts)
    if pixels:
        report["pixels"] = pixel_metrics(runs)
    for kind in KINDS:
        report[kind] = {"summary": clinical_summary(runs, kind),
                        "true_colon": true_colon(runs, kind)}
    return report


ROWS = [("frame TPR", lambda s, t: s["frame_tpr"], "{:.3f}"),
        ("frame FPR", lambda s, t: s["frame_fpr"], "{:.4f}"),
        ("false-alert episodes", lambda s, t: s["false_alert_episodes"], "{}"),
        ("  per lesion-free minute", lambda s, t: s["false_alert_episodes_per_minute"], "{:.2f}"),
        ("lesions found", lambda s, t: f"{s['lesions_found']}/{s['lesions']}", "{}"),
        ("latency, frames (median)", lambda s, t: s["latency_frames_median"], "{:g}"),
        ("latency, frames (max)", lambda s, t: s["latency_frames_max"], "{}"),
        ("found within 10 frames", lambda s, t: s["found_within_10_frames"], "{}"),
        ("TRUE-Colon frame TPR / FPR",
         lambda s, t: f"{t['frame']['tpr']:.3f} / {t['frame']['fpr']:.4f}", "{}"),
        ("TRUE-Colon lesions detected >= 50%",
         lambda s, t: f"{t['lesion']['summary']['detected_50pct']}", "{}"),
        ("TRUE-Colon mean latency, frames",
         lambda s, t: t["lesion"]["summary"]["mean_latency_frames"], "{:.1f}"),
        ("COCO AP50", lambda s, t: t["coco"]["ap50"], "{:.3f}")]


def table(report: dict) -> str:
    lines = ["| | raw masks | alerts |", "|---|---|---|"]
    for label, get, fmt in ROWS:
        cells = []
        for kind in KINDS:
            value = get(report[kind]["summary"], report[kind]["true_colon"])
            cells.append("-" if value is None else fmt.format(value))
        lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    pixels = report.get("pixels")
    if pixels and pixels["lesion_frames"]:
        p = pixels["lesion_frames"]
        lines.append(f"\nmasks on frames with a lesion: mDice {p['mDice']:.3f}, mIoU "
                     f"{p['mIoU']:.3f}, Sm {p['Sm']:.3f}, MAE {p['MAE']:.4f}; Dice over all "
                     f"frames {pixels['dice_all_frames']:.3f}")
    return "\n".join(lines)
