"""The live pipeline on real inputs: files, loopback network streams, the synthetic source,
folders; bounded latency, reconnection, interruption, and clear failures."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest

from helpers import ROOT, require, run_cli
from helpers.servers import RtspServer, free_port, rtsp_server_missing, tcp_stream
from helpers.videos import decoded_frames, write_video
from realtime.pipeline.handoff import DropOldestQueue, LatestSlot
from realtime.pipeline.live import LiveOptions, LivePipeline
from realtime.io.overlay import analyze, draw
from realtime.engine.segmenter import Segmenter
from realtime.io.sinks import MaskSink, NullSink, RecordSink, SinkError, WindowSink
from realtime.io.sources import SourceError, SourceOptions, open_source
from realtime.io.writers import read_masks


@pytest.fixture(scope="module")
def tiny(tiny_weights):
    return Segmenter(tiny_weights, backend="cpu")


# -- buffers and overlay -------------------------------------------------------------------

def test_latest_slot_keeps_the_newest_and_counts_drops():
    slot = LatestSlot()
    for i in range(3):
        slot.put(i)
    assert slot.take() == 2 and slot.dropped == 2
    assert slot.take(timeout=0.01) is None
    slot.close()
    assert slot.take() is None and slot.closed


def test_drop_oldest_queue_is_bounded_and_keeps_order():
    queue = DropOldestQueue(3)
    for i in range(5):
        queue.put(i)
    assert len(queue) == 3 and queue.dropped == 2
    assert [queue.take(), queue.take(), queue.take()] == [2, 3, 4]
    queue.close()
    assert queue.take() is None


def test_regions_have_boxes_areas_and_mean_probability():
    mask = np.zeros((40, 60), bool)
    mask[5:15, 10:30] = True          # 10 x 20 = 200 px
    mask[30:35, 50:52] = True         # 10 px
    probabilities = np.where(mask, 0.8, 0.1).astype(np.float32)
    probabilities[5:15, 10:20] = 0.6  # half of the first region
    layer = analyze(mask, probabilities, min_area=20)
    assert [(r.box, r.area) for r in layer.regions] == [((10, 5, 30, 15), 200)]
    assert layer.regions[0].score == pytest.approx(0.7)
    # the 10-pixel region is under min_area: not listed, not drawn
    assert layer.box == (10, 5, 30, 15) and len(layer.contours) == 1
    frame = np.full((40, 60, 3), 100, np.uint8)
    out = draw(frame, layer)
    assert (out[10, 20] != 100).any() and (out[25, 5] == 100).all()  # tinted inside only
    assert (out[29:36, 49:53] == 100).all()
    assert (frame == 100).all()  # the input frame is left alone


def _whole_frame_analysis(labels, probabilities):
    """Regions and contours found over the whole frame (analyze works inside the mask's box)."""
    regions, contours = [], []
    for label in np.unique(labels[labels > 0]):
        component = (labels == label).astype(np.uint8)
        count, ids, stats, _ = cv2.connectedComponentsWithStats(component, connectivity=8)
        sums = np.bincount(ids.ravel(), weights=probabilities.ravel(), minlength=count)
        for i in range(1, count):
            x, y, w, h, area = (int(v) for v in stats[i])
            regions.append(((x, y, x + w, y + h), area, float(sums[i] / area), int(label)))
        found, _ = cv2.findContours(component, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        contours += [(int(label), c.tobytes()) for c in found]
    return sorted(regions), sorted(contours)


@pytest.mark.parametrize("seed", range(12))
def test_regions_and_contours_equal_a_whole_frame_analysis(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(20, 200, size=2)
    labels = np.zeros((h, w), np.uint8)
    for _ in range(rng.integers(1, 6)):  # blobs of 1..3 classes, some cut by the frame's edge
        cy, cx = rng.integers(-5, h + 5), rng.integers(-5, w + 5)
        ry, rx = rng.integers(1, 25, size=2)
        yy, xx = np.ogrid[:h, :w]
        labels[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = rng.integers(1, 4)
    probabilities = rng.random((h, w), dtype=np.float32)
    layer = analyze(labels, probabilities)
    regions = sorted((r.box, r.area, r.score, r.label) for r in layer.regions)
    contours = sorted((label, c.tobytes()) for label, c in layer.contours)
    assert (regions, contours) == _whole_frame_analysis(labels, probabilities)
    if labels.any():
        ys, xs = np.nonzero(labels)
        assert layer.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    else:
        assert layer.box is None and not layer.regions


def test_regions_under_the_minimum_area_are_neither_listed_nor_drawn():
    """What is drawn is what is exported: a 9-pixel speck under min_area is left out of the
    regions, the contours and the overlay, exactly as if the mask had not had it."""
    mask = np.zeros((60, 80), bool)
    mask[10:30, 20:45] = True    # 500 pixels
    mask[50:53, 70:73] = True    # 9 pixels
    probabilities = np.where(mask, 0.9, 0.1).astype(np.float32)
    frame = np.full((60, 80, 3), 120, np.uint8)
    layer = analyze(mask, probabilities, min_area=64)
    big_only = mask.copy()
    big_only[50:53, 70:73] = False
    reference = analyze(big_only, probabilities, min_area=64)
    assert [r.area for r in layer.regions] == [500] and layer.box == (20, 10, 45, 30)
    assert np.array_equal(draw(frame, layer), draw(frame, reference))
    assert mask[50:53, 70:73].all()  # the caller's mask is left as it was
    assert [r.area for r in analyze(mask, probabilities, min_area=0).regions] == [500, 9]


def test_recordings_keep_the_overlays_colours(tmp_path):
    """The H.264 writer converts RGB to YUV itself (OpenCV, BT.601 limited range): decoded by
    FFmpeg, flat colours come back within the codec's rounding."""
    from realtime.io.writers import VideoWriter

    colours = [(255, 255, 255), (0, 0, 0), (128, 128, 128), (230, 60, 40), (40, 230, 90),
               (60, 80, 220), (240, 170, 150), (120, 40, 60)]
    frame = np.zeros((96, 128, 3), np.uint8)
    for i, colour in enumerate(colours):  # 32 x 48 patches: flat inside every 2x2 block
        frame[(i // 4) * 48:(i // 4 + 1) * 48, (i % 4) * 32:(i % 4 + 1) * 32] = colour
    path = tmp_path / "colours.mp4"
    with VideoWriter(path, 128, 96, fragmented=True) as writer:
        for i in range(3):
            writer.write(frame, seconds=i / 30)
    decoded = [f.to_ndarray(format="rgb24") for f in decoded_frames(path)]
    assert len(decoded) == 3
    for image in decoded:
        for i, colour in enumerate(colours):  # patch centres, away from the codec's edges
            y, x = (i // 4) * 48 + 24, (i % 4) * 32 + 16
            patch = image[y - 8:y + 8, x - 8:x + 8].reshape(-1, 3).astype(int)
            assert np.abs(patch.mean(axis=0) - colour).max() < 4, (colour, patch.mean(axis=0))


# -- sources --------------------------------------------------------------------------------

def test_file_source_is_played_at_its_frame_rate_and_every_frame_is_shown(tiny, tmp_path):
    video = tmp_path / "clip.mp4"
    times = write_video(video, [i / 20 for i in range(30)])  # 1.5 s at 20 fps
    record, masks = tmp_path / "rec.mp4", tmp_path / "masks.mkv"
    source = open_source(str(video))
    pipeline = LivePipeline(source, tiny, [RecordSink(record)], LiveOptions(),
                            MaskSink(masks))
    began = time.perf_counter()
    summary = pipeline.run()
    took = time.perf_counter() - began
    assert summary["frames_captured"] == 30 and summary["frames_displayed"] == 30
    assert summary["frames_processed"] >= 1
    # paced to the file's 1.45 s, not decoded flat out (a lower bound: load cannot break it)
    assert took > 1.3
    shown = decoded_frames(record)
    assert len(shown) == 30 and (shown[0].width, shown[0].height) == (160, 120)
    # the recording keeps capture times: frames 50 ms apart (within scheduling jitter)
    gaps = np.diff([f.time for f in shown])
    assert np.median(gaps) == pytest.approx(times[1] - times[0], abs=0.012)
    stored, _ = read_masks(masks)
    assert len(stored) == summary["frames_processed"] and stored[0].shape == (120, 160)


def test_no_pace_reads_as_fast_as_it_decodes_and_latency_stays_bounded(tiny, tmp_path):
    video = tmp_path / "long.mp4"
    write_video(video, [i / 30 for i in range(300)])  # 10 s of video
    pipeline = LivePipeline(open_source(str(video)), tiny, [NullSink()],
                            LiveOptions(pace=False))
    summary = pipeline.run()
    # paced, it would take the video's own 10 s; unpaced, decoding 300 frames of 160x120
    # takes a fraction of that even on a loaded machine
    assert summary["seconds"] < 10
    assert summary["frames_captured"] == 300
    # a 64-px model takes milliseconds a frame, decoding 160x120 well under one: some frames
    # are dropped instead of queueing up, so no frame waits for the frames before it (queued,
    # the last one's latency would be most of the run)
    assert summary["frames_dropped"] > 0
    assert summary["latency_ms"]["max"] < summary["seconds"] * 1000 / 2


def test_sync_mode_shows_each_segmented_frame_with_its_own_mask(tiny, tmp_path):
    video = tmp_path / "clip.mp4"
    write_video(video, [i / 30 for i in range(30)])
    shown = []

    class Keep(NullSink):
        def write(self, view):
            shown.append(view)

    pipeline = LivePipeline(open_source(str(video)), tiny, [Keep()], LiveOptions(sync=True))
    summary = pipeline.run()
    assert summary["frames_displayed"] == len(shown) == summary["frames_processed"] > 0
    for view in shown:  # each shown frame carries the mask computed on that very frame
        assert view.mask_index == view.index
        assert np.array_equal(view.mask, tiny(view.raw).masks.numpy())
    assert summary["mask_age_ms"]["p99"] == 0.0
    assert summary["mode"] == "sync"


def test_synthetic_source_with_the_demo_model_finds_polyps(tmp_path):
    source = open_source("synthetic:1", SourceOptions(fps=30))
    seg = Segmenter(backend="cpu")
    seen = []

    class Keep(NullSink):
        def write(self, view):
            seen.append(view)

    LivePipeline(source, seg, [Keep()], LiveOptions(duration=4.0)).run()
    assert len(seen) > 60
    # overlay pixels (the green tint) appear on frames once polyps come into view
    tinted = [((v.overlay.astype(int) - v.raw).any(axis=2)).mean() for v in seen]
    assert max(tinted) > 0.01


def test_image_folder_is_played_in_natural_order(tiny, tmp_path):
    for i in (1, 2, 10):
        cv2.imwrite(str(tmp_path / f"frame{i}.png"), np.full((48, 64, 3), i * 20, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    source = open_source(str(tmp_path), SourceOptions(fps=50))
    values = [int(source.read().image[0, 0, 0]) for _ in range(3)]
    assert values == [20, 40, 200] and source.read() is None


def test_an_odd_first_image_does_not_drop_the_sequence(tmp_path):
    cv2.imwrite(str(tmp_path / "a0.png"), np.zeros((1, 1, 3), np.uint8))  # a stray thumbnail
    for i in range(1, 4):
        cv2.imwrite(str(tmp_path / f"a{i}.png"), np.full((48, 64, 3), i * 50, np.uint8))
    source = open_source(str(tmp_path), SourceOptions(fps=10))
    frames = list(source)
    assert [int(f.image[0, 0, 0]) for f in frames] == [50, 100, 150]
    assert (source.width, source.height) == (64, 48) and source.damaged == 1


def test_frames_larger_than_8k_are_refused_before_decoding(tmp_path):
    wide = tmp_path / "wide.mp4"
    write_video(wide, [0.0, 1 / 30], width=8320, height=16)
    with pytest.raises(SourceError, match=r"wide.mp4: frames of 8320x16 exceed the largest this "
                                          r"tool takes \(8192 pixels a side"):
        open_source(str(wide))
    folder = tmp_path / "huge"
    folder.mkdir()
    cv2.imwrite(str(folder / "0.png"), np.zeros((8, 8300, 3), np.uint8))
    with pytest.raises(SourceError, match="frames of 8300x8 exceed"):
        open_source(str(folder))


def test_tcp_stream_cut_midway_reconnects_and_keeps_going(tiny):
    with tcp_stream(frames=40, sessions=2) as url:
        source = open_source(url, SourceOptions(reconnect_attempts=3, read_timeout=3))
        summary = LivePipeline(source, tiny, [NullSink()], LiveOptions()).run()
    assert summary["reconnects"] >= 1
    assert summary["frames_captured"] == 80  # both sessions, every frame
    assert "unreachable" in summary["source_lost"]


@pytest.fixture
def rtsp_server():
    require(rtsp_server_missing())
    with RtspServer() as server:
        yield server


def _wait_for(condition, what: str, limit: float = 60.0) -> None:
    """Poll until ``condition()`` holds; the limit only keeps a broken run from hanging."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def test_rtsp_stream_from_a_real_server_survives_the_server_restarting(tiny, rtsp_server):
    """An RTSP camera gateway (GStreamer's gst-rtsp-server, H.264 over RTP/TCP) goes away
    mid-procedure and comes back on the same address: the run reconnects and keeps going."""
    source = open_source(rtsp_server.url, SourceOptions(reconnect_attempts=10, read_timeout=3))
    assert (source.width, source.height) == (320, 240)
    pipeline = LivePipeline(source, tiny, [NullSink()], LiveOptions())
    summary = {}
    runner = threading.Thread(target=lambda: summary.update(pipeline.run()))
    runner.start()
    try:
        _wait_for(lambda: source.received >= 25, "the first 25 frames")
        rtsp_server.stop()
        rtsp_server.start()
        _wait_for(lambda: source.reconnects >= 1, "the reconnection")
        after = source.received
        _wait_for(lambda: source.received >= after + 25, "25 frames after reconnecting")
    finally:
        pipeline.stop.set()
        runner.join(30)
    assert not runner.is_alive()
    assert summary["reconnects"] == 1 and summary["source_lost"] is None
    assert summary["frames_captured"] >= 50
    assert summary["frames_processed"] >= 1


@pytest.mark.slow
def test_live_command_records_an_rtsp_stream_and_fails_when_it_is_gone(tiny_weights,
                                                                      rtsp_server, tmp_path):
    done = run_cli("realtime", "live", rtsp_server.url, "--weights", tiny_weights,
                   "--backend", "cpu", "--no-display", "--duration", "3",
                   "--record", tmp_path / "rtsp.mp4", "--stats", tmp_path / "s.json")
    assert done.returncode == 0, done.stderr[-2000:]
    recorded = decoded_frames(tmp_path / "rtsp.mp4")
    stats = json.loads((tmp_path / "s.json").read_text())
    assert len(recorded) == stats["frames_displayed"] >= 10
    assert (recorded[0].width, recorded[0].height) == (320, 240)
    rtsp_server.stop()
    done = run_cli("realtime", "live", rtsp_server.url, "--weights", tiny_weights,
                   "--backend", "cpu", "--no-display", "--reconnect", "2")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith(
        f"error: {rtsp_server.url}: unreachable after 2 attempts")


def test_udp_stream_on_loopback(tiny):
    """MPEG-TS over UDP from an encoder process: the receiver binds first, then frames flow;
    when they stop, the source waits out its timeout and ends."""
    port = free_port()
    server = subprocess.Popen([sys.executable, str(ROOT / "tests/helpers/stream_server.py"),
                               "udp", str(port), "--frames", "60", "--delay", "1.5"])
    try:
        source = open_source(f"udp://127.0.0.1:{port}",
                             SourceOptions(reconnect_attempts=1, read_timeout=2, open_timeout=4))
        summary = LivePipeline(source, tiny, [NullSink()], LiveOptions()).run()
    finally:
        server.kill()
        server.wait()
    assert summary["frames_captured"] >= 50  # UDP may lose a packet or two on a busy host
    # shown and segmented (how many of them depends on the machine's load), then the
    # stream's silence ended the run
    assert summary["frames_displayed"] >= 1 and summary["frames_processed"] >= 1
    assert "unreachable after 1 attempts" in summary["source_lost"]


def test_http_stream_on_loopback(tiny, tmp_path):
    clip = tmp_path / "clip.ts"
    write_video(clip, [i / 30 for i in range(45)], fmt="mpegts")
    handler = partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/clip.ts"
        source = open_source(url, SourceOptions(reconnect_attempts=1))
        first = source.read()
        summary = LivePipeline(source, tiny, [NullSink()], LiveOptions(duration=3)).run()
    finally:
        server.shutdown()
    assert first.image.shape == (120, 160, 3)
    assert summary["frames_captured"] >= 44  # the rest of the first pass, then reconnects


def test_unreachable_stream_fails_after_its_attempts(caplog):
    port = free_port()
    with pytest.raises(SourceError, match=rf"tcp://127.0.0.1:{port}: unreachable after 3 attempts"):
        open_source(f"tcp://127.0.0.1:{port}", SourceOptions(reconnect_attempts=3))
    retries = [r.message.split("; ", 1)[1] for r in caplog.records if "retrying" in r.message]
    # pauses that grow between attempts, and no attempt past the last
    assert retries == ["retrying in 0.5 s (attempt 2 of 3)", "retrying in 1.0 s (attempt 3 of 3)"]


@pytest.mark.parametrize("spec, message", [
    ("absent.mp4", "absent.mp4: no such file, folder or device"),
    ("ftp://example.org/x", "unsupported stream type 'ftp'"),
    ("synthetic:abc", "takes an integer seed"),
    ("/dev/video93", "/dev/video93: no such capture device"),
])
def test_bad_sources_are_named_in_one_line(spec, message):
    with pytest.raises(SourceError, match=message):
        open_source(spec)


def test_garbage_file_is_not_a_video(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(os.urandom(5000))
    with pytest.raises(SourceError, match="bad.mp4: cannot open as video"):
        open_source(str(bad))


def test_window_without_display_refuses_clearly(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(SinkError, match="no display"):
        WindowSink()


# -- the command ------------------------------------------------------------------------------

def test_live_command_names_a_missing_source_before_loading_the_model(tmp_path):
    done = run_cli("realtime", "live", tmp_path / "absent.mp4", "--no-display")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].endswith(
        "absent.mp4: no such file, folder or device (a source is a video file, an image folder "
        "or glob, a stream URL, /dev/videoN or a camera index, or 'synthetic')")
    assert "segmenter:" not in done.stderr + done.stdout  # no model was loaded first


def test_live_help_lists_every_backend():
    from realtime.cli.common import backend_names
    done = run_cli("realtime", "live", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())  # argparse wraps the help text
    described = re.findall(r"--backend BACKEND (.*?) --precision", text)[-1]
    assert set(re.findall(r"\w+", described)) >= set(backend_names()), described


def test_live_command_writes_recording_masks_and_stats(tiny_weights, tmp_path):
    video = tmp_path / "in.mp4"
    write_video(video, [i / 25 for i in range(25)], width=161, height=99)  # odd width
    done = run_cli("realtime", "live", video, "--weights", tiny_weights, "--backend", "cpu",
                   "--no-display", "--record", tmp_path / "out.mp4", "--masks",
                   tmp_path / "m.mkv", "--probabilities", "--stats", tmp_path / "s.json")
    assert done.returncode == 0, done.stderr[-2000:]
    stats = json.loads((tmp_path / "s.json").read_text())
    for key in ("frames_captured", "frames_processed", "frames_dropped"):
        assert isinstance(stats[key], int)
    assert set(stats["fps"]) == {"capture", "processed", "displayed"}
    assert set(stats["latency_ms"]) == {"p50", "p95", "p99", "max"}
    assert set(stats["mask_age_ms"]) == {"p50", "p99"}
    assert stats["frames_captured"] == 25
    shown = decoded_frames(tmp_path / "out.mp4")
    assert len(shown) == 25 and (shown[0].width, shown[0].height) == (162, 100)  # padded
    masks, _ = read_masks(tmp_path / "m.mkv")
    assert masks[0].shape == (99, 161) and len(set(np.unique(masks[0]))) > 2  # probabilities
    assert "latency capture->sink" in done.stdout


def test_run_that_never_gets_a_frame_exits_1_with_the_reason(tiny_weights, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    done = run_cli("realtime", "live", empty, "--weights", tiny_weights, "--no-display")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == f"error: {empty}: no images " \
        "(.bmp, .jpeg, .jpg, .png, .tif, .tiff, .webp) found"


def _recording_live_run(weights, record, min_bytes: int, *extra, **popen) -> subprocess.Popen:
    """A live run of the synthetic source recording to ``record``, returned once the file
    has grown past ``min_bytes`` (or after 30 s)."""
    proc = subprocess.Popen([sys.executable, "-m", "realtime", "live", "synthetic",
                             "--synthetic-size", "128", "--weights", str(weights),
                             "--backend", "cpu", "--no-display", "--record", str(record),
                             *map(str, extra)],
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}, **popen)
    for _ in range(120):
        time.sleep(0.25)
        if record.exists() and record.stat().st_size > min_bytes:
            break
    return proc


def test_sigint_leaves_a_playable_recording(tiny_weights, tmp_path):
    record = tmp_path / "live.mp4"
    proc = _recording_live_run(tiny_weights, record, 20_000, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in out
    frames = decoded_frames(record)
    assert len(frames) > 10 and f"recording: {record} ({len(frames)} frames)" in out


def test_killed_process_still_leaves_a_playable_recording(tiny_weights, tmp_path):
    record, masks = tmp_path / "live.mp4", tmp_path / "masks.mkv"
    proc = _recording_live_run(tiny_weights, record, 60_000, "--masks", masks,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc.kill()
    proc.wait()
    assert len(decoded_frames(record)) > 10  # fragments written before the kill play
    stored, times = read_masks(masks)  # and so do the masks' clusters
    assert len(stored) > 10 and stored[0].shape == (128, 128) and times == sorted(times)


@pytest.mark.slow
def test_memory_stays_flat_over_a_long_accelerated_run(tiny, tmp_path):
    """Thousands of frames through every stage (a looped file, unpaced): resident memory
    after warm-up does not grow. benchmarks/live_soak.py runs the one-hour equivalent."""
    import resource  # noqa: F401  (Linux: /proc gives the current, not the peak, size)
    video = tmp_path / "loop.mp4"
    write_video(video, [i / 30 for i in range(60)], width=96, height=64)
    source = open_source(str(video), SourceOptions(loop=True))
    rss = []

    class Watch(NullSink):
        def write(self, view):
            if len(rss) == 0 or time.perf_counter() - rss[-1][0] > 0.5:
                rss.append((time.perf_counter(), _rss_mb()))

    summary = LivePipeline(source, tiny, [Watch()], LiveOptions(pace=False, duration=25)).run()
    assert summary["frames_captured"] > 3000
    settled = [m for _, m in rss[len(rss) // 5:]]
    assert max(settled) - settled[0] < 25, settled


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_a_stream_that_changes_size_keeps_being_recorded(tiny, tmp_path):
    """A camera or reconnected stream may come back at another resolution: the recording
    and the masks keep their first size instead of failing."""
    from fractions import Fraction

    from realtime.io.sources import Source

    class Changing(Source):
        description, fps, time_base = "size-changing source", 30.0, Fraction(1, 30)

        def __init__(self):
            super().__init__()
            self.index = 0

        def _next(self):
            if self.index == 20:
                return None
            self.index += 1
            height, width = (120, 160) if self.index <= 10 else (90, 130)
            return np.full((height, width, 3), 90, np.uint8), self.index, None

    record, masks = tmp_path / "rec.mp4", tmp_path / "m.mkv"
    summary = LivePipeline(Changing(), tiny, [RecordSink(record)], LiveOptions(),
                           MaskSink(masks)).run()
    frames = decoded_frames(record)
    assert len(frames) == summary["frames_displayed"] == 20
    assert {(f.width, f.height) for f in frames} == {(160, 120)}
    stored, _ = read_masks(masks)
    assert {m.shape for m in stored} == {(120, 160)}


def test_ctrl_c_during_a_write_still_flushes_the_frames_the_encoder_holds(tmp_path):
    """A KeyboardInterrupt inside the encoder call marked the writer failed, so closing it
    skipped the flush and lost x264's held-back frames (about 10: the recording said 66
    frames, the file had 55). Only real errors (a full disk) skip the flush now."""
    import numpy as np

    from realtime.io.writers import VideoWriter
    writer = VideoWriter(tmp_path / "rec.mp4", 128, 128, rate=30)
    for i in range(30):
        writer.write(np.full((128, 128, 3), i * 8, np.uint8), seconds=i / 30)

    class Interrupted:  # the real stream, but Ctrl-C arrives during the next encode
        def __init__(self, stream):
            self.__dict__["stream"] = stream

        def __getattr__(self, name):
            return getattr(self.stream, name)

        def encode(self, frame):
            raise KeyboardInterrupt

    real, writer.stream = writer.stream, Interrupted(writer.stream)
    with pytest.raises(KeyboardInterrupt):
        writer.write(np.zeros((128, 128, 3), np.uint8), seconds=1.0)
    writer.stream = real
    writer.close()
    assert writer.frames == len(decoded_frames(tmp_path / "rec.mp4")) == 30
