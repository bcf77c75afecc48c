"""The alert filter (K of the last N masks raise it, M masks without a polyp lower it) and
what it writes: frames.jsonl states, events.jsonl, the border in the overlay, the live HUD."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import run_cli
from helpers.videos import decoded_frames, write_video
from realtime.io.overlay import ALERT_COLOUR
from realtime.pipeline.alerts import AlertFilter, AlertSettings


def _run(flags: str, settings: AlertSettings) -> tuple[list[str], list[dict]]:
    alerts = AlertFilter(settings)
    states = [alerts.update(flag == "x", 0.5 + 0.01 * i, i, i / 10, pts=3000 * i,
                            tracks=[1 if i < 7 else 2] if flag == "x" else []).status
              for i, flag in enumerate(flags)]
    return states, [e.as_dict() for e in alerts.close()]


def test_a_one_frame_flash_never_raises_the_alert():
    states, events = _run("..x....x..", AlertSettings(3, 5, 4))
    assert "raised" not in states and events == []
    assert states[2] == "suppressed"  # seen, held back


def test_raised_after_k_of_n_held_through_gaps_and_lowered_after_m_misses():
    #              0123456789012345678
    states, events = _run("xx.x.x..xx.....x...", AlertSettings(3, 5, 4))
    assert states[:4] == ["suppressed", "suppressed", "off", "raised"]  # 3 of the last 5
    assert states[4:10] == ["holding", "raised", "holding", "holding", "raised", "raised"]
    assert states[10:14] == ["holding"] * 3 + ["off"]  # the 4th miss in a row lowers it
    assert states[15] == "suppressed"  # a lone frame after it does not raise it again
    assert events == [{"start_index": 3, "start_pts": 9000, "start_time": 0.3,
                       "end_index": 9, "end_pts": 27000, "end_time": 0.9,
                       "duration": pytest.approx(0.6), "peak_score": 0.59,
                       "masks_with_polyp": 4, "tracks": [1, 2]}]


def test_an_alert_still_on_at_the_end_is_reported():
    _, events = _run("..xxx", AlertSettings(2, 3, 10))
    assert [(e["start_index"], e["end_index"]) for e in events] == [(3, 4)]


def _scored(scores: list[float | None], settings: AlertSettings) -> list[str]:
    """None: a mask without a polyp; a number: its best region's mean probability."""
    alerts = AlertFilter(settings)
    return [alerts.update(score is not None, score or 0.0, i, i / 30).status
            for i, score in enumerate(scores)]


def test_masks_that_are_sure_twice_running_raise_at_once():
    settings = AlertSettings(6, 8, 3, sure_score=0.9, sure_masks=2)
    assert _scored([0.95, 0.92], settings) == ["suppressed", "raised"]
    # one sure mask between unsure ones, or sure ones apart, wait for 6 of 8
    assert _scored([0.95, 0.6, 0.95, None, 0.95, 0.7, 0.6], settings) == \
        ["suppressed"] * 3 + ["off"] + ["suppressed"] * 2 + ["raised"]
    assert _scored([0.95, 0.95], AlertSettings(6, 8, 3, sure_score=None)) == ["suppressed"] * 2
    assert _scored([0.95, 0.95], AlertSettings.parse("6/8", 3, "off")) == ["suppressed"] * 2
    assert _scored([0.8, 0.8, 0.8], AlertSettings.parse("6/8", 3, "0.75/3")) == \
        ["suppressed", "suppressed", "raised"]


@pytest.mark.parametrize("text, hold, sure, message", [
    ("3", 10, "off", "--alert takes K/N"), ("6/5", 10, "0.9/2", "1 <= raise_after <= window"),
    ("3/5", 0, "0.9/2", "hold must be at least 1"), ("3/5", 3, "0.9", "--alert-sure takes P/M"),
    ("3/5", 3, "1.5/2", r"score in \(0, 1\]"), ("3/5", 3, "0.9/0", "at least 1 mask")])
def test_bad_settings_are_refused(text, hold, sure, message):
    with pytest.raises(ValueError, match=message):
        AlertSettings.parse(text, hold, sure)


def test_annotate_writes_alert_states_events_and_the_border(tmp_path):
    video = tmp_path / "clip.mp4"
    write_video(video, [i / 30 for i in range(12)], 192, 144, phantom=True)
    done = run_cli("realtime", "annotate", video, "--backend", "cpu", "--out", tmp_path / "out",
                   "--alert", "2/3", "--alert-hold", "2", "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    folder = tmp_path / "out" / "clip"
    frames = [json.loads(line) for line in (folder / "frames.jsonl").read_text().splitlines()]
    replay = AlertFilter(AlertSettings(2, 3, 2))
    for frame in frames:  # the file's states are the filter's over the file's own decisions
        score = max((r["score"] for r in frame["regions"]), default=0.0)
        tracks = [r["track"] for r in frame["regions"] if r["track"] is not None]
        state = replay.update(frame["polyp"], score, frame["index"], frame["time"],
                              frame["pts"], tracks)
        assert (frame["alert"], frame["alert_status"]) == (state.on, state.status)
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    assert events == [e.as_dict() for e in replay.close()] and events  # polyps: an alert
    summary = json.loads((folder / "summary.json").read_text())
    defaults = AlertSettings()  # --alert-sure left out: the default sure raise
    assert summary["alerts"] == {"count": len(events), "raise_after": 2, "window": 3, "hold": 2,
                                 "sure_score": defaults.sure_score,
                                 "sure_masks": defaults.sure_masks}
    overlay = [f.to_ndarray(format="rgb24") for f in decoded_frames(folder / "overlay.mp4")]
    for frame, image in zip(frames, overlay):  # the border marks exactly the alert frames
        corner = image[1, 1].astype(int)
        bordered = np.abs(corner - ALERT_COLOUR).max() < 40
        assert bordered == frame["alert"], frame["index"]


def test_live_shows_the_alert_in_the_status_line_and_the_border(tmp_path):
    from realtime.engine.segmenter import Segmenter
    from realtime.io.sinks import NullSink
    from realtime.io.sources import open_source
    from realtime.pipeline.live import LiveOptions, LivePipeline
    video = tmp_path / "clip.mp4"
    write_video(video, [i / 30 for i in range(10)], 192, 144, phantom=True)
    shown = []

    class Keep(NullSink):
        def write(self, view):
            shown.append((view.alert, view.hud, view.polyp, view.composite[-2, 1].copy()))

    settings = AlertSettings(2, 3, 2)
    LivePipeline(open_source(str(video)), Segmenter(backend="cpu"), [Keep()],
                 LiveOptions(sync=True, alerts=settings)).run()  # sync: one mask per frame
    replay = AlertFilter(settings)
    assert any(alert.on for alert, *_ in shown)
    for i, (alert, hud, polyp, corner) in enumerate(shown):
        expected = replay.update(polyp, 0.0, i, 0.0)
        assert (alert.on, alert.status) == (expected.on, expected.status)
        assert ("| ALERT" in hud) == alert.on
        assert (np.abs(corner.astype(int) - ALERT_COLOUR).max() < 40) == alert.on
