"""The synthetic colonoscopy generator: exact, reproducible masks and coherent video."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from helpers import run_cli

from m2snet.phantom import VISIBLE_FRACTION, PhantomScene, phantom_image, phantom_still
from m2snet.phantom_dataset import write_phantoms


def test_same_seed_same_frame_and_masks_are_binary():
    a_img, a_mask = phantom_image(11, 128)
    b_img, b_mask = phantom_image(11, 128)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_mask, b_mask)
    assert a_img.shape == (128, 128, 3) and a_img.dtype == np.uint8
    assert set(np.unique(a_mask)) <= {0, 255}
    assert not np.array_equal(a_img, phantom_image(12, 128)[0])


def test_masks_mark_polyps_that_look_different_from_the_wall():
    found = 0
    for seed in range(12):
        scene = PhantomScene(seed, 160)
        image, mask = scene.frame(0.0)
        if mask.any():
            found += 1
            inside = image[mask > 0].astype(float).mean(0)
            ring = cv2.dilate(mask, np.ones((15, 15), np.uint8)) - mask
            outside = image[ring > 0].astype(float).mean(0)
            assert np.abs(inside - outside).max() > 6  # a visible, learnable difference
        # nothing outside the endoscope's circular field of view
        yy, xx = np.mgrid[0:160, 0:160]
        far = np.hypot(xx - 80, yy - 80) > 80
        assert not mask[far].any() and image[far].max() == 0
    assert 3 <= found <= 12  # most scenes have polyps, not necessarily all


def test_sequences_move_smoothly_and_polyps_come_and_go():
    scene = PhantomScene(4, 128)
    frames = [scene.frame(i / 15) for i in range(0, 15 * 40, 3)]
    steps = [np.abs(a[0].astype(int) - b[0].astype(int)).mean()
             for a, b in zip(frames, frames[1:])]
    other = np.abs(frames[0][0].astype(int) - PhantomScene(5, 128).frame(0)[0].astype(int)).mean()
    assert np.median(steps) < other / 2  # consecutive frames are alike, other scenes are not
    areas = [int((m > 0).sum()) for _, m in frames]
    assert max(areas) > 0 and min(areas) < max(areas)


def test_cli_writes_matching_pairs(tmp_path):
    done = subprocess.run([sys.executable, "-m", "m2snet", "phantom", "--out", str(tmp_path),
                           "--n", "4", "--seed", "2", "--size", "96", "--quiet"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    images = sorted(p.name for p in (tmp_path / "images").iterdir())
    assert images == sorted(p.name for p in (tmp_path / "masks").iterdir())
    assert images == [f"{i:05d}.png" for i in range(4)]
    mask = cv2.imread(str(tmp_path / "masks" / images[0]), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (96, 96) and set(np.unique(mask)) <= {0, 255}
    assert not list(tmp_path.rglob("*.partial"))


def test_visibility_accounts_for_every_mask_pixel():
    slivers = 0
    for seed in range(40):
        scene = PhantomScene(seed, 128)
        for t in (0.0, 7.5):
            _, mask = scene.frame(t)
            shown = scene.visibility(t)
            assert len(shown) == len(scene.polyps) and all(0 <= v <= 1 for v in shown)
            zoom2 = abs(np.linalg.det(scene.camera(t)[:, :2]))
            world = [int((scene.world_labels == i + 1).sum()) for i in range(len(shown))]
            visible_pixels = sum(v * w * zoom2 for v, w in zip(shown, world))
            # rasterizing the warped polyp gains or loses a few pixels; 1.0 caps a full one
            assert visible_pixels == pytest.approx(int((mask > 0).sum()), rel=0.03, abs=2)
            slivers += any(0 < v < 0.1 for v in shown)
    assert slivers > 0  # edges of the view cut polyps: what --positive-only leaves out


def test_positive_only_stills_show_a_polyp_at_least_half_in_view(tmp_path):
    write_phantoms(tmp_path, 6, seed=3, size=96, progress=False, positive_only=True)
    for i in range(6):
        mask = cv2.imread(str(tmp_path / "masks" / f"{i:05d}.png"), cv2.IMREAD_UNCHANGED)
        assert (mask > 0).sum() > 0.005 * mask.size  # no frame of edge slivers only
    shown = [max(phantom_still(3 * 100_003 + c, 96)[2], default=0) for c in range(30)]
    kept = [v for v in shown if v >= VISIBLE_FRACTION]
    assert 0 < len(kept) < len(shown)


def test_a_sequence_without_polyps_is_reported_and_positive_only_finds_one(tmp_path):
    # seed 2's scene has one polyp that its camera never passes in the first 4 s
    plain = run_cli("m2snet", "phantom", "--out", tmp_path / "plain", "--n", "120",
                    "--seed", "2", "--sequence", "30", "--size", "96", "--quiet")
    assert plain.returncode == 0, plain.stderr
    assert "(0 show a polyp)" in plain.stdout
    assert plain.stderr.strip().startswith("warning: no frame shows a polyp")
    assert "--positive-only" in plain.stderr
    assert not any(cv2.imread(str(m), cv2.IMREAD_UNCHANGED).any()
                   for m in (tmp_path / "plain" / "masks").iterdir())

    asked = run_cli("m2snet", "phantom", "--out", tmp_path / "asked", "--n", "120",
                    "--seed", "2", "--sequence", "30", "--size", "96", "--quiet",
                    "--positive-only")
    assert asked.returncode == 0, asked.stderr
    assert "used seed 3" in asked.stdout and not asked.stderr
    showing = sum(cv2.imread(str(m), cv2.IMREAD_UNCHANGED).any()
                  for m in (tmp_path / "asked" / "masks").iterdir())
    assert f"({showing} show a polyp)" in asked.stdout and showing > 0
    scene = PhantomScene(3, 96)
    assert max(max(scene.visibility(i / 30)) for i in range(120)) >= VISIBLE_FRACTION


def test_procedure_cli_writes_video_truth_and_training_pairs_or_refuses_in_one_line(tmp_path):
    done = run_cli("m2snet", "phantom", "--procedure", "8", "--seed", "11", "--size", "96",
                   "--out", tmp_path, "--frames-every", "20", "--quiet")
    assert done.returncode == 0, done.stderr
    truth = json.loads((tmp_path / "procedure11.truth.json").read_text())
    lesion_frames = sorted({a["image_id"] - 1 for a in truth["annotations"]})
    assert f"({len({a['unique_id'] for a in truth['annotations']})} lesions on " \
           f"{len(lesion_frames)} frames)" in done.stdout
    expected = sorted({i for i in range(240) if i % 20 == 0} |
                      {i for i in lesion_frames if i % 5 == 0})
    written = sorted(int(p.stem.rsplit("_", 1)[1]) for p in (tmp_path / "images").iterdir())
    assert written == expected
    for index in expected:  # a pair's mask is that frame's ground truth
        name = f"procedure11_{index:06d}.png"
        mask = cv2.imread(str(tmp_path / "masks" / name), cv2.IMREAD_UNCHANGED) > 0
        assert mask.any() == (index in lesion_frames)
    short = run_cli("m2snet", "phantom", "--procedure", "3", "--out", tmp_path / "short")
    assert short.returncode == 1 and "a procedure needs at least 7 s" in short.stderr
    assert len(short.stderr.strip().splitlines()) == 1 and not (tmp_path / "short").exists()


def test_entering_frames_adds_every_frame_of_a_polyp_coming_into_view(tmp_path):
    done = run_cli("m2snet", "phantom", "--procedure", "8", "--seed", "11", "--size", "96",
                   "--out", tmp_path, "--frames-every", "20", "--entering-frames", "6", "--quiet")
    assert done.returncode == 0, done.stderr
    truth = json.loads((tmp_path / "procedure11.truth.json").read_text())
    first: dict[str, int] = {}
    for a in sorted(truth["annotations"], key=lambda a: a["image_id"]):
        first.setdefault(a["unique_id"], a["image_id"] - 1)
    lesion_frames = {a["image_id"] - 1 for a in truth["annotations"]}
    entering = {f + k for f in first.values() for k in range(6)}
    assert entering <= lesion_frames  # each lesion stays annotated for its first 6 frames here
    expected = sorted({i for i in range(240) if i % 20 == 0} |
                      {i for i in lesion_frames if i % 5 == 0} | entering)
    written = sorted(int(p.stem.rsplit("_", 1)[1]) for p in (tmp_path / "images").iterdir())
    assert written == expected and f"wrote {len(expected)} image/mask pairs" in done.stdout

    alone = run_cli("m2snet", "phantom", "--procedure", "8", "--seed", "11", "--size", "96",
                    "--out", tmp_path / "alone", "--entering-frames", "6")
    assert alone.returncode == 1 and not (tmp_path / "alone").exists()
    assert alone.stderr.strip() == "error: --entering-frames adds training pairs: give --frames-every too"
