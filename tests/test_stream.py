"""The Python streaming API, ``realtime.stream()``, on the same core as live and annotate:
one result per frame with exact timestamps and the Segmenter's own masks."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import realtime
from helpers.videos import decoded_frames, write_video
from realtime.errors import SourceError


@pytest.fixture(scope="module")
def demo():
    return realtime.Segmenter(backend="cpu")


def test_every_frame_in_order_with_exact_pts_and_the_segmenters_masks(demo, tmp_path):
    video = tmp_path / "vfr.mp4"
    write_video(video, [0.0, 0.04, 0.1, 0.3, 0.31, 0.7, 0.75], 192, 144, phantom=True)
    source = decoded_frames(video)
    results = list(realtime.stream(video, segmenter=demo))
    assert [r.index for r in results] == list(range(7))
    assert [r.pts for r in results] == [f.pts for f in source]
    assert [r.time for r in results] == pytest.approx([float(f.time) for f in source], abs=1e-12)
    assert all(r.time_base == source[0].time_base for r in results)
    assert any(r.polyp for r in results)
    for result, frame in zip(results, source):
        expected = demo(frame.to_ndarray(format="rgb24"))
        assert np.array_equal(result.mask, expected.masks.numpy())
        np.testing.assert_array_equal(result.probabilities, expected.probabilities.numpy())
        assert result.mask_index == result.index
        for region in result.regions:  # regions describe this frame's own mask
            x0, y0, x1, y1 = region.box
            assert result.mask[y0:y1, x0:x1].sum() >= region.area


def test_threshold_is_per_call_and_leaves_the_segmenter_alone(demo, tmp_path):
    video = tmp_path / "clip.mp4"
    write_video(video, [i / 30 for i in range(4)], 160, 120, phantom=True)
    strict = list(realtime.stream(video, segmenter=demo, threshold=0.9))
    default = list(realtime.stream(video, segmenter=demo))
    for a, b in zip(strict, default):
        assert np.array_equal(a.mask, a.probabilities > 0.9)
        assert np.array_equal(b.mask, b.probabilities > 0.5)
    assert demo.threshold == 0.5
    assert sum(a.mask.sum() for a in strict) < sum(b.mask.sum() for b in default)


def test_latest_policy_keeps_up_and_says_which_frame_each_mask_is_from(demo, tmp_path):
    video = tmp_path / "long.mp4"
    write_video(video, [i / 30 for i in range(60)], 160, 120)
    results = list(realtime.stream(video, segmenter=demo, policy="latest", pace=True))
    indices = [r.index for r in results]
    # source frames in order (a loop more than 3 frames behind would lose the oldest: latest
    # keeps up, it never queues); each carries the newest mask of a frame at or before it
    assert indices == sorted(set(indices)) and len(indices) > 40
    with_mask = [r for r in results if r.mask_index is not None]
    assert with_mask and all(r.mask_index <= r.index for r in with_mask)
    assert all(r.mask is None for r in results if r.mask_index is None)


def test_leaving_the_loop_early_stops_its_threads(demo, tmp_path):
    video = tmp_path / "clip.mp4"
    write_video(video, [i / 30 for i in range(60)], 160, 120)
    before = threading.active_count()
    for result in realtime.stream(video, segmenter=demo):
        if result.index == 3:
            break
    assert threading.active_count() == before


def test_a_bad_source_fails_before_any_model_loads(tmp_path):
    with pytest.raises(SourceError, match="absent.mp4: no such file"):
        next(realtime.stream(tmp_path / "absent.mp4", weights=tmp_path / "no-such-weights.pt"))


def test_image_folder_and_synthetic_sources(demo, tmp_path):
    import cv2
    for i in (1, 2, 10):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), np.full((64, 80, 3), i * 20, np.uint8))
    results = list(realtime.stream(str(tmp_path), segmenter=demo))
    assert [int(r.image[0, 0, 0]) for r in results] == [20, 40, 200]
    assert [r.time for r in results] == [0.0, pytest.approx(1 / 30, abs=1e-3),
                                         pytest.approx(2 / 30, abs=1e-3)]
    synthetic = realtime.stream("synthetic:3", segmenter=demo)
    first = [next(synthetic) for _ in range(3)]
    synthetic.close()
    assert [r.time for r in first] == pytest.approx([0, 1 / 30, 2 / 30])
