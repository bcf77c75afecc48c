"""Offline annotation on generated videos: every decodable frame, the input's timestamps,
bit-exact masks, damaged and garbage inputs, image folders, resume and interruption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import ROOT, run_cli
from helpers.small_disk import run_on_small_disk, small_disk_missing
from helpers.videos import decoded_frames, write_video
from realtime.pipeline.offline import AnnotateOptions, InputSpec, annotate_one, expand_inputs
from realtime.io.coco import rle_decode, rle_encode
from realtime.engine.segmenter import Segmenter
from realtime.io.writers import read_masks

VFR_TIMES = [0.0, 0.033, 0.067, 0.2, 0.21, 0.5, 0.533, 0.9, 1.0, 1.034, 1.5, 1.52]


@pytest.fixture(scope="module")
def demo():
    return Segmenter(backend="cpu")


def _annotate(spec_path, out, segmenter, **options):
    spec = expand_inputs([str(spec_path)])[0]
    return annotate_one(spec, segmenter, out, AnnotateOptions(progress=False, **options))


def test_every_frame_with_the_inputs_timestamps_and_bit_exact_masks(demo, tmp_path):
    video = tmp_path / "cfr.mp4"
    write_video(video, [i / 30 for i in range(45)], 320, 240, phantom=True)
    summary = _annotate(video, tmp_path / "out", demo)
    out = tmp_path / "out" / "cfr"
    source = decoded_frames(video)
    assert summary["frames"] == len(source) == 45
    overlay = decoded_frames(out / "overlay.mp4")
    assert [f.time for f in overlay] == [f.time for f in source]
    masks, times = read_masks(out / "masks.mkv")
    assert len(masks) == 45
    assert np.allclose(times, [f.time for f in source], atol=0.0011)  # Matroska: milliseconds
    lines = [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]
    for frame, stored, line in zip(source, masks, lines):
        result = demo(frame.to_ndarray(format="rgb24"))
        expected = result.masks.numpy().astype(np.uint8) * 255
        assert np.array_equal(stored, expected)
        # every frame's highest probability, also below the threshold (AFROC-style curves)
        assert line["max_probability"] == round(float(result.probabilities.max()), 6)
    assert [r["index"] for r in lines] == list(range(45))
    assert [r["pts"] for r in lines] == [f.pts for f in source]
    assert any(r["polyp"] for r in lines) and all(r["mask_age"] == 0 for r in lines)
    positive = [r for r in lines if r["polyp"]][0]
    assert positive["regions"][0]["area"] >= 64 and 0.5 < positive["regions"][0]["score"] <= 1
    assert all(r["polyp"] == bool(r["regions"]) for r in lines)  # polyp: a listed region
    saved = json.loads((out / "summary.json").read_text())
    assert saved["frames"] == 45 and saved["damaged_packets_skipped"] == 0
    assert {"decode_s", "infer_s", "write_s", "wall_s", "fps"} <= set(saved["timings"])
    assert not any(p.name.endswith(".partial") for p in (tmp_path / "out").iterdir())


def test_variable_frame_rate_is_kept(demo, tmp_path):
    video = tmp_path / "vfr.mp4"
    stored = write_video(video, VFR_TIMES, 160, 120)
    _annotate(video, tmp_path / "out", demo)
    overlay = decoded_frames(tmp_path / "out" / "vfr" / "overlay.mp4")
    assert [f.time for f in overlay] == pytest.approx(stored, abs=1e-9)


def test_odd_sizes_pad_the_overlay_by_one_pixel_and_keep_masks_exact(demo, tmp_path):
    video = tmp_path / "odd.mp4"
    write_video(video, [i / 30 for i in range(6)], 161, 121)
    _annotate(video, tmp_path / "out", demo, batch=4)
    overlay = decoded_frames(tmp_path / "out" / "odd" / "overlay.mp4")
    assert (overlay[0].width, overlay[0].height) == (162, 122) and len(overlay) == 6
    masks, _ = read_masks(tmp_path / "out" / "odd" / "masks.mkv")
    assert masks[0].shape == (121, 161) and len(masks) == 6


def test_batches_agree_with_single_frames(demo, tmp_path):
    video = tmp_path / "clip.mp4"
    write_video(video, [i / 30 for i in range(10)], 256, 192, phantom=True)
    _annotate(video, tmp_path / "one", demo, batch=1)
    _annotate(video, tmp_path / "four", demo, batch=4)
    one, _ = read_masks(tmp_path / "one" / "clip" / "masks.mkv")
    four, _ = read_masks(tmp_path / "four" / "clip" / "masks.mkv")
    assert len(one) == len(four) == 10
    for a, b in zip(one, four):
        a, b = a > 0, b > 0
        total = a.sum() + b.sum()
        assert total == 0 or 2 * (a & b).sum() / total >= 0.99


def test_damaged_mpegts_skips_what_cannot_be_decoded_and_goes_on(demo, tmp_path):
    clean = tmp_path / "clean.ts"
    write_video(clean, [i / 30 for i in range(90)], 160, 120, fmt="mpegts")
    data = bytearray(clean.read_bytes())
    rng = np.random.default_rng(0)
    for start in (len(data) // 3, len(data) // 2, 2 * len(data) // 3):
        data[start:start + 3000] = rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.ts"
    damaged.write_bytes(bytes(data))
    summary = _annotate(damaged, tmp_path / "out", demo)
    assert summary["frames"] == len(_decodable(damaged))
    assert 0 < summary["frames"] < 90
    lines = (tmp_path / "out" / "damaged" / "frames.jsonl").read_text().splitlines()
    assert len(lines) == summary["frames"]


def _decodable(path: Path) -> list:
    """Frames a plain PyAV loop gets, skipping packets that fail to decode."""
    import av
    frames = []
    with av.open(str(path)) as container:
        for packet in container.demux(video=0):
            try:
                frames.extend(packet.decode())
            except av.error.FFmpegError:
                pass
    return frames


def test_frames_without_timestamps_get_interpolated_ones(demo, tmp_path):
    raw = tmp_path / "raw.h264"  # an elementary stream: no container timestamps
    write_video(raw, [i / 30 for i in range(8)], 160, 120, fmt="h264")
    summary = _annotate(raw, tmp_path / "out", demo)
    lines = [json.loads(line) for line in
             (tmp_path / "out" / "raw" / "frames.jsonl").read_text().splitlines()]
    assert summary["interpolated_timestamps"] == 8 and all(r["pts_interpolated"] for r in lines)
    times = [r["time"] for r in lines]
    assert np.allclose(np.diff(times), times[1] - times[0]) and times[1] > times[0]


def test_image_folder_is_one_input_in_natural_order(demo, tmp_path):
    folder = tmp_path / "case7"
    folder.mkdir()
    for i in (1, 2, 10):
        image, _ = __import__("m2snet.phantom", fromlist=["x"]).phantom_image(i, 128)
        cv2.imwrite(str(folder / f"f{i}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    summary = _annotate(folder, tmp_path / "out", demo, png_masks=True, coco=True, image_fps=10)
    assert summary["frames"] == 3
    lines = [json.loads(line) for line in
             (tmp_path / "out" / "case7" / "frames.jsonl").read_text().splitlines()]
    assert [r["time"] for r in lines] == [0.0, 0.1, 0.2]
    pngs = sorted((tmp_path / "out" / "case7" / "masks").iterdir())
    assert [p.name for p in pngs] == ["000000.png", "000001.png", "000002.png"]
    coco = json.loads((tmp_path / "out" / "case7" / "coco.json").read_text())
    assert [i["id"] for i in coco["images"]] == [1, 2, 3]  # every frame: index + 1
    assert [i["file_name"] for i in coco["images"]] == [f"case7_{i:06d}.png" for i in range(3)]
    for annotation in coco["annotations"]:
        image = next(i for i in coco["images"] if i["id"] == annotation["image_id"])
        png = cv2.imread(str(pngs[image["frame_index"]]), cv2.IMREAD_GRAYSCALE) > 0
        region = rle_decode(annotation["segmentation"])
        assert region.sum() == annotation["area"] and (region <= png).all()


def test_coco_files_are_what_pycocotools_reads_as_dataset_and_results(demo, tmp_path):
    """pycocotools itself: COCO() loads the dataset, loadRes the results (before: the
    results were not a list, so loadRes refused them), and scoring the results against the
    dataset made of the same regions gives AP 1 (image ids join)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    video = tmp_path / "procedure.mp4"
    write_video(video, [i / 30 for i in range(8)], 192, 144, phantom=True)
    summary = _annotate(video, tmp_path / "out", demo, coco=True)
    folder = tmp_path / "out" / "procedure"
    assert {"coco.json", "coco_results.json"} <= set(summary["outputs"])
    dataset = COCO(str(folder / "coco.json"))
    assert sorted(dataset.getImgIds()) == list(range(1, 9))  # polyp-free frames included
    assert dataset.loadImgs(1)[0]["file_name"] == "procedure_000000.png"
    results = dataset.loadRes(str(folder / "coco_results.json"))
    assert len(results.getAnnIds()) == len(dataset.getAnnIds()) > 0
    frames = [json.loads(line) for line in (folder / "frames.jsonl").read_text().splitlines()]
    for frame in frames:  # the same regions in both files, under the frame's id
        boxes = [a["bbox"] for a in results.loadAnns(results.getAnnIds(imgIds=frame["index"] + 1))]
        assert boxes == [[x0, y0, x1 - x0, y1 - y0] for x0, y0, x1, y1 in
                         (r["box"] for r in frame["regions"])]
    evaluation = COCOeval(dataset, results, "segm")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)  # AP@[.5:.95]


def test_rle_round_trip_through_pycocotools():
    mask = np.zeros((4, 5), bool)
    mask[0, 0] = mask[1:3, 2] = mask[3, 4] = True
    rle = rle_encode(mask)
    assert rle["size"] == [4, 5] and isinstance(rle["counts"], str)
    json.dumps(rle)  # JSON-ready
    assert np.array_equal(rle_decode(rle), mask)


def test_globs_expand_to_videos_or_one_image_sequence(tmp_path):
    for name in ("a.mp4", "b.mp4"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "imgs").mkdir()
    for i in range(2):
        (tmp_path / "imgs" / f"{i}.png").write_bytes(b"")
    found = expand_inputs([str(tmp_path / "*.mp4"), str(tmp_path / "imgs" / "*.png"),
                           str(tmp_path / "none*.avi"), str(tmp_path / "a.mp4")])
    assert [(s.stem, s.kind) for s in found if isinstance(s, InputSpec)] == \
        [("a", "video"), ("b", "video"), ("imgs", "images"), ("a_2", "video")]
    assert "matches no file" in str(found[3])


def test_garbage_among_good_inputs_fails_alone(tmp_path):
    good = tmp_path / "good.mp4"
    write_video(good, [i / 30 for i in range(5)], 160, 120)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(os.urandom(4000))
    done = run_cli("realtime", "annotate", garbage, tmp_path / "missing.mp4", good, "--out",
                   tmp_path / "out", "--backend", "cpu", "--quiet")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {garbage}: cannot open as video: Invalid data found when "
                      f"processing input", f"error: {tmp_path / 'missing.mp4'}: no such file"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good"]
    assert "1 of 3 inputs complete" in done.stdout


def test_a_second_writer_of_the_same_output_is_refused_and_harms_nothing(tmp_path):
    """Two annotate runs into one folder: the second used to delete the first's partial
    folder (its open files went with it) and the first then published a folder holding only
    events.jsonl and summary.json. Now the output is locked while it is written."""
    from m2snet.files import atomic_directory
    clip, other = tmp_path / "clip.mp4", tmp_path / "other.mp4"
    write_video(clip, [i / 30 for i in range(5)], 160, 120)
    write_video(other, [i / 30 for i in range(5)], 160, 120)
    with atomic_directory(tmp_path / "out" / "clip") as first:  # another run, still writing
        (first / "frames.jsonl").write_text("the first run's")
        done = run_cli("realtime", "annotate", clip, other, "--out", tmp_path / "out",
                       "--backend", "cpu", "--quiet")
        assert done.returncode == 1
        assert f"error: {clip}: {tmp_path / 'out' / 'clip'}: another process is writing it " \
            f"right now" in done.stderr
        assert (first / "frames.jsonl").read_text() == "the first run's"
        assert (tmp_path / "out" / "other" / "frames.jsonl").is_file()  # the others go on
    assert (tmp_path / "out" / "clip" / "frames.jsonl").read_text() == "the first run's"
    assert not list((tmp_path / "out").glob(".*"))  # no lock or partial folder left


def test_resume_skips_complete_inputs(tiny_weights, tmp_path):
    video = tmp_path / "clip.mp4"
    write_video(video, [i / 30 for i in range(5)], 160, 120)
    args = ("realtime", "annotate", video, "--out", tmp_path / "out", "--weights", tiny_weights,
            "--backend", "cpu", "--quiet")
    assert run_cli(*args).returncode == 0
    stamp = (tmp_path / "out" / "clip" / "summary.json").stat().st_mtime_ns
    again = run_cli(*args, "--resume")
    assert again.returncode == 0 and "clip: already complete, skipped" in again.stdout
    assert (tmp_path / "out" / "clip" / "summary.json").stat().st_mtime_ns == stamp


def test_ctrl_c_keeps_complete_inputs_and_nothing_half_written(tiny_weights, tmp_path):
    short, long = tmp_path / "short.mp4", tmp_path / "long.mp4"
    write_video(short, [i / 30 for i in range(3)], 160, 120)
    write_video(long, [i / 30 for i in range(3000)], 320, 240)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "realtime", "annotate", str(short), str(long),
                             "--out", str(tmp_path / "out"), "--weights", str(tiny_weights),
                             "--backend", "cpu", "--quiet"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    log = tmp_path / "out" / ".long.partial" / "frames.jsonl"
    for _ in range(480):  # until the long input is being annotated (the limit: a broken run)
        time.sleep(0.25)
        if log.exists() and log.stat().st_size > 0:
            break
    proc.send_signal(signal.SIGINT)  # 3000 frames: it is far from done
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted during" in err and "complete: short" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["short"]


def test_a_short_last_batch_is_padded_to_the_batch_size(demo, tmp_path):
    """7 frames in batches of 4: the engine sees two batches of 4 (one shape for compiled
    backends), and exactly 7 frames come out."""
    video = tmp_path / "seven.mp4"
    write_video(video, [i / 30 for i in range(7)], 160, 120)
    shapes = []
    original = demo.__class__.__call__

    class Spy:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def __call__(self, frames):
            shapes.append(len(frames))
            return original(self.inner, frames)

    summary = _annotate(video, tmp_path / "out", Spy(demo), batch=4)
    assert shapes == [4, 4] and summary["frames"] == 7
    assert len(read_masks(tmp_path / "out" / "seven" / "masks.mkv")[0]) == 7


@pytest.fixture
def small_disk():
    missing = small_disk_missing()
    if missing:
        pytest.skip(missing)


def test_a_writer_that_hits_a_full_disk_releases_its_file(small_disk, tmp_path):
    """Before: the overlay writer failed while flushing and kept its file open, so deleting
    the partial output freed nothing and every later input failed too."""
    disk = tmp_path / "disk"
    done = run_on_small_disk(disk, 64, [ROOT / "tests/helpers/fill_disk.py", disk], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    reports = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["file"] for r in reports] == ["overlay.mp4", "masks.mkv"]
    for report in reports:
        assert report["failed"] in ("write", "close")  # the disk really was full
        assert not report["held"], report
        assert report["used_kb"] == 0, report           # deleting it freed the space


@pytest.mark.slow
def test_a_full_disk_fails_one_input_and_the_next_ones_still_fit(small_disk, tiny_weights,
                                                                 tmp_path):
    big, small = tmp_path / "big.mp4", [tmp_path / "small1.mp4", tmp_path / "small2.mp4"]
    write_video(big, [i / 30 for i in range(150)], 640, 480, phantom=True)
    for video in small:
        write_video(video, [i / 30 for i in range(20)], 160, 120, phantom=True)
    # room for both small inputs' outputs with a margin, far from enough for the big one's
    alone = tmp_path / "alone"
    done = run_cli("realtime", "annotate", *small, "--weights", tiny_weights, "--backend",
                   "cpu", "--out", alone, "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    pages = sum(-(-f.stat().st_size // 4096) * 4 for f in alone.rglob("*") if f.is_file())
    disk = tmp_path / "disk"
    done = run_on_small_disk(disk, pages + 64, ["-m", "realtime", "annotate", big, *small,
                                                "--weights", tiny_weights, "--backend", "cpu",
                                                "--out", disk, "--quiet"], cwd=tmp_path)
    assert done.returncode == 1
    assert f"error: {big}: [Errno 28] No space left on device" in done.stderr
    assert "2 of 3 inputs complete" in done.stdout
    assert done.entries == ["small1", "small2"]  # no partial folder of the failed input
    assert done.used_kb <= pages + 8, (done.used_kb, pages)  # and none of its space


def test_a_rotated_phone_video_is_segmented_upright(demo, tmp_path):
    times = [i / 30 for i in range(6)]
    write_video(tmp_path / "plain.mp4", times, 160, 120, phantom=True)
    write_video(tmp_path / "portrait.mp4", times, 160, 120, phantom=True, rotation=-90)
    summary = _annotate(tmp_path / "portrait.mp4", tmp_path / "out", demo)
    assert summary["rotation"] == 270 and (summary["width"], summary["height"]) == (120, 160)
    plain = [f.to_ndarray(format="rgb24") for f in decoded_frames(tmp_path / "plain.mp4")]
    upright = [np.rot90(image, -1) for image in plain]  # -90: a quarter turn clockwise
    masks, _ = read_masks(tmp_path / "out" / "portrait" / "masks.mkv")
    assert len(masks) == 6
    for mask, image in zip(masks, upright):
        expected = demo(np.ascontiguousarray(image)).masks.numpy()
        assert mask.shape == (160, 120) and expected.any()
        assert np.array_equal(mask > 0, expected)  # the model saw the upright picture
    overlay = decoded_frames(tmp_path / "out" / "portrait" / "overlay.mp4")
    assert (overlay[0].width, overlay[0].height) == (120, 160)


def test_a_file_that_ends_before_its_declared_frames_is_reported(tiny_weights, tmp_path):
    whole = tmp_path / "whole.mp4"
    write_video(whole, [i / 30 for i in range(60)], 160, 120, phantom=True,
                options={"movflags": "faststart"})  # index first: a cut copy still opens
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[:whole.stat().st_size // 2])
    done = run_cli("realtime", "annotate", whole, cut, "--weights", tiny_weights, "--backend",
                   "cpu", "--out", tmp_path / "out", "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    cut_summary = json.loads((tmp_path / "out" / "cut" / "summary.json").read_text())
    whole_summary = json.loads((tmp_path / "out" / "whole" / "summary.json").read_text())
    decoded = cut_summary["frames"]
    assert 10 < decoded < 60 and cut_summary["frames_declared"] == 60
    assert cut_summary["incomplete"].startswith(
        f"the file declares 60 frames; {decoded} could be decoded")
    assert f"{cut}: the file declares 60 frames; {decoded} could be decoded" in done.stderr
    assert done.stdout.strip().splitlines()[-1] == \
        f"2 of 2 inputs complete in {tmp_path / 'out'}; ended early: cut"
    assert whole_summary["frames"] == 60 and whole_summary["incomplete"] is None
