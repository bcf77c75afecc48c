"""Polyp tracks (ByteTrack from Roboflow's trackers package, real, not mocked): stable ids
while a polyp stays in view, through a short miss, a new id after it has left; ids in the
offline outputs, the overlay and the live status line."""

import json

import numpy as np
import pytest

from m2snet.phantom_procedure import Procedure
from realtime.io.overlay import Region, analyze
from realtime.pipeline.tracks import PolypTracker
from tests.helpers import run_cli


def moving_box(i: int, x: int = 40, speed: int = 3, size: int = 40) -> Region:
    x0 = x + speed * i
    return Region((x0, 60, x0 + size, 60 + size), size * size, 0.9)


def test_one_id_while_the_polyp_stays_through_a_short_miss_and_a_new_one_after_it_left():
    tracker = PolypTracker(fps=30, lost_after=1.0)
    ids = []
    for i in range(60):
        regions = [] if 20 <= i < 32 else [moving_box(i)]  # missed for 0.4 s, still moving
        tracker.update(regions, i, i / 30)
        ids.append(regions[0].track if regions else "-")
    assert ids[0] is None  # one mask is not a track yet
    assert set(ids[1:20]) == {1} and set(ids[32:]) == {1}
    first = tracker.tracks[1]
    assert (first.first_index, first.last_index, first.masks) == (1, 59, 47)
    for i in range(60, 100):  # gone for 1.3 s, longer than lost_after
        tracker.update([], i, i / 30)
    again = []
    for i in range(100, 110):
        regions = [moving_box(0, x=200, speed=0)]
        tracker.update(regions, i, i / 30)
        again.append(regions[0].track)
    assert again == [None] + [2] * 9
    assert tracker.tracks[2].first_index == 101  # the mask that confirmed it
    assert tracker.tracks[2].dwell(110 / 30) == pytest.approx(9 / 30)


def test_two_polyps_in_view_keep_apart_and_a_restarted_clock_does_not_reuse_ids():
    tracker = PolypTracker(fps=30)
    for i in range(15):
        pair = [moving_box(i, x=10), moving_box(i, x=200, speed=-2)]
        tracker.update(pair, i, i / 30)
    assert [r.track for r in pair] == [1, 2]
    restarted = [moving_box(0, x=10)]
    for i in range(3):  # a stream reconnects: its clock starts again
        tracker.update(restarted, i, i / 30)
    assert restarted[0].track == 3


def test_ids_follow_a_real_phantom_polyp_that_enters_and_leaves():
    """The ground-truth masks of a phantom procedure's polyp stretch, analysed as the pipeline
    analyses masks: every frame on which the lesion is one region carries one id."""
    procedure = Procedure(seed=7001, seconds=40, fps=30, size=352)
    stretch = next(s for s in procedure.stretches if s.kind == "polyp")
    tracker = PolypTracker(fps=30)
    ids = []
    for index, _, lesions in procedure.frames():
        if not stretch.first_frame <= index < stretch.first_frame + stretch.frames:
            continue
        mask = np.zeros((352, 352), bool)
        for lesion in lesions.values():
            mask |= lesion
        regions = analyze(mask, mask.astype(np.float32), min_area=64).regions
        tracker.update(regions, index, index / 30)
        if len(regions) == 1:
            ids.append(regions[0].track)
    assert len(ids) > 30, "the stretch shows its polyp"
    assert set(ids[1:]) == {1}


def test_annotate_writes_track_ids_in_frames_events_and_the_summary(tmp_path):
    run = run_cli("m2snet", "phantom", "--procedure", "8", "--seed", "7001", "--size", "192",
                  "--out", tmp_path, "--quiet")
    assert run.returncode == 0, run.stderr
    done = run_cli("realtime", "annotate", tmp_path / "procedure7001.mp4", "--backend", "cpu",
                   "--out", tmp_path / "out", "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    folder = tmp_path / "out" / "procedure7001"
    frames = [json.loads(line) for line in (folder / "frames.jsonl").read_text().splitlines()]
    tracked = [r for f in frames for r in f["regions"] if r["track"] is not None]
    assert tracked, "the polyp is tracked"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["tracks"] == max(r["track"] for r in tracked)
    for frame in frames:
        for region in frame["regions"]:
            assert (region["dwell"] is None) == (region["track"] is None)
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    by_index = {f["index"]: f for f in frames}
    for event in events:
        assert event["start_pts"] == by_index[event["start_index"]]["pts"]
        assert event["end_pts"] == by_index[event["end_index"]]["pts"]
        inside = [r["track"] for i in range(event["start_index"], event["end_index"] + 1)
                  for r in by_index[i]["regions"] if r["track"] is not None]
        assert event["tracks"] == list(dict.fromkeys(inside))
    import realtime  # the Python API links the same tracks
    streamed = [[r.track for r in result.regions]
                for result in realtime.stream(tmp_path / "procedure7001.mp4", backend="cpu")]
    assert streamed == [[r["track"] for r in f["regions"]] for f in frames]
