"""``annotate --ray`` on a real Ray cluster started here on loopback (2 CPUs, two workers):
outputs equal to a single process's, a worker killed mid-chunk, a garbage input among good
ones, Ctrl-C, resume and an unreachable cluster.

The single-process reference runs with one thread (OMP_NUM_THREADS=1), as each worker does:
the CPU backends' float sums differ in the last bits between thread counts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import ROOT, cli_env, run_cli
from helpers.servers import free_port
from helpers.videos import decoded_frames, write_video
from realtime.io.chunks import ChunkSource, plan_chunks
from realtime.io.sources import FileSource
from realtime.io.outputs import is_complete
from realtime.io.writers import read_masks

pytestmark = pytest.mark.slow

RAY = Path(sys.executable).parent / "ray"
# Ray 2.60 clusters authenticate with a token: the cluster and every driver share this one
AUTH = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": os.urandom(32).hex()}
WORKER_BUSY = "ray::SegmentWorker.segment"  # a worker's process title while it runs a chunk
LONG_FRAMES, CHUNK = 240, 60
FLAGS = ["--backend", "cpu", "--quiet"]


def _long_video(path: Path) -> Path:
    """A phantom procedure with a keyframe every 30 frames and B-frames (reordered pts)."""
    write_video(path, [i / 30 for i in range(LONG_FRAMES)], 256, 256, phantom=True,
                codec_options={"g": "30", "bf": "2", "preset": "veryfast"})
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    from m2snet.phantom import PhantomScene
    images = folder / "stills"
    images.mkdir()
    scene = PhantomScene(11, 160, max_polyps=2, polyp_probability=1.0)
    for i in range(10):
        cv2.imwrite(str(images / f"frame{i}.png"), cv2.cvtColor(scene.frame(i / 5)[0],
                                                                 cv2.COLOR_RGB2BGR))
    short = folder / "short.mp4"
    write_video(short, [0.0, 0.033, 0.067, 0.2, 0.21, 0.5, 0.533, 0.9, 1.0, 1.5], phantom=True)
    garbage = folder / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).bytes(50_000))
    return {"long": _long_video(folder / "long.mp4"), "short": short, "stills": images,
            "garbage": garbage}


@pytest.fixture(scope="module")
def cluster():
    """A Ray head on loopback with 2 CPUs; its workers import this checkout."""
    port, temp = free_port(), tempfile.mkdtemp(prefix="ray")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0", **AUTH}
    started = subprocess.run([str(RAY), "start", "--head", f"--port={port}", "--num-cpus=2",
                              "--num-gpus=0", "--node-ip-address=127.0.0.1",
                              "--include-dashboard=false", f"--temp-dir={temp}"],
                             capture_output=True, text=True, env=env, timeout=180)
    assert started.returncode == 0, started.stderr[-2000:]
    yield f"127.0.0.1:{port}"
    subprocess.run([str(RAY), "stop", "--force"], capture_output=True, timeout=120)
    shutil.rmtree(temp, ignore_errors=True)


def _annotate(*args, ray: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    extra = ["--ray", ray, "--workers", "2", "--chunk-frames", str(CHUNK)] if ray else []
    return run_cli("realtime", "annotate", *args, *FLAGS, *extra, timeout=timeout,
                   env_extra={"OMP_NUM_THREADS": "1", **AUTH})


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("single") / "out"
    done = _annotate(inputs["long"], inputs["short"], inputs["stills"], "--out", out)
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def _assert_same_outputs(out: Path, reference: Path, stems: list[str]) -> None:
    for stem in stems:
        ours, theirs = out / stem, reference / stem
        for name in ("frames.jsonl", "events.jsonl"):
            assert (ours / name).read_bytes() == (theirs / name).read_bytes(), f"{stem}/{name}"
        masks, times = read_masks(ours / "masks.mkv")
        masks_ref, times_ref = read_masks(theirs / "masks.mkv")
        assert times == times_ref and len(masks) == len(masks_ref)
        assert all(np.array_equal(a, b) for a, b in zip(masks, masks_ref)), f"{stem} masks"
        frames = decoded_frames(ours / "overlay.mp4")
        frames_ref = decoded_frames(theirs / "overlay.mp4")
        assert [f.pts for f in frames] == [f.pts for f in frames_ref]
        assert all(np.array_equal(a.to_ndarray(format="rgb24"), b.to_ndarray(format="rgb24"))
                   for a, b in zip(frames, frames_ref)), f"{stem} overlay"
        summary, summary_ref = (json.loads((f / "summary.json").read_text())
                                for f in (ours, theirs))
        for varying in ("timings", "started", "finished", "output", "distributed"):
            summary.pop(varying, None)
            summary_ref.pop(varying, None)
        assert summary == summary_ref


def test_chunks_cut_at_keyframes_decode_exactly_the_single_pass(inputs):
    chunks = plan_chunks(str(inputs["long"]), CHUNK)
    assert len(chunks) == LONG_FRAMES // CHUNK
    assert sum(c.frames for c in chunks) == LONG_FRAMES
    assert chunks[0].start is None and chunks[-1].end is None
    assert all(a.end == b.start for a, b in zip(chunks, chunks[1:]))
    whole = [(f.pts, f.image.tobytes()) for f in FileSource(str(inputs["long"]))]
    parts = [(f.pts, f.image.tobytes()) for c in chunks
             for f in ChunkSource(str(inputs["long"]), c)]
    assert parts == whole
    assert plan_chunks(str(inputs["long"]), 0) == [chunks[0].__class__(0, None, None,
                                                                      LONG_FRAMES)]


def test_outputs_equal_a_single_process_and_a_garbage_input_fails_alone(
        cluster, inputs, reference, tmp_path):
    """Two inputs written at once (--writers 2) while the workers share all chunks."""
    out = tmp_path / "out"
    done = _annotate(inputs["long"], inputs["garbage"], inputs["short"], inputs["stills"],
                     "--out", out, "--writers", "2", ray=cluster)
    assert done.returncode == 1, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(inputs["garbage"]) in errors[0]
    assert "3 of 4 inputs complete" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["long", "short", "stills"]  # no partials
    _assert_same_outputs(out, reference, ["long", "short", "stills"])
    summary = json.loads((out / "long" / "summary.json").read_text())
    assert summary["distributed"]["chunks"] == LONG_FRAMES // CHUNK
    workers = [line for line in done.stdout.splitlines() if line.startswith("worker ")]
    assert len(workers) == 2
    assert sum(int(line.split(": ")[1].split()[0]) for line in workers) == LONG_FRAMES + 20
    # resume: everything is complete, so no worker is started at all
    again = _annotate(inputs["long"], inputs["short"], "--out", out, "--resume", ray=cluster)
    assert again.returncode == 0 and again.stdout.count("already complete, skipped") == 2
    assert "worker " not in again.stdout


def _busy_worker(deadline: float) -> int | None:
    """The PID of a worker process that is segmenting a chunk right now."""
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if (entry / "cmdline").read_bytes().startswith(WORKER_BUSY.encode()):
                        return int(entry.name)
                except OSError:
                    continue
        time.sleep(0.05)
    return None


def _start(args: list, cluster: str) -> subprocess.Popen:
    env = cli_env({"OMP_NUM_THREADS": "1", **AUTH})
    return subprocess.Popen([sys.executable, "-m", "realtime", "annotate", *map(str, args),
                             *FLAGS, "--ray", cluster, "--workers", "2", "--chunk-frames",
                             str(CHUNK)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_a_worker_killed_mid_chunk_is_restarted_and_nothing_is_lost(
        cluster, inputs, reference, tmp_path):
    out = tmp_path / "out"
    run = _start([inputs["long"], "--out", out], cluster)
    victim = _busy_worker(time.monotonic() + 120)
    assert victim is not None, "no worker started a chunk"
    time.sleep(0.3)  # well into its chunk
    os.kill(victim, signal.SIGKILL)
    stdout, stderr = run.communicate(timeout=600)
    assert run.returncode == 0, stderr[-2000:]
    _assert_same_outputs(out, reference, ["long"])
    workers = [line for line in stdout.splitlines() if line.startswith("worker ")]
    assert all(f":{victim}:" not in line for line in workers)  # its chunk was redone elsewhere
    assert sum(int(line.split(": ")[1].split()[0]) for line in workers) == LONG_FRAMES


@pytest.mark.parametrize("writers", [1, 2])
def test_ctrl_c_stops_the_workers_and_keeps_nothing_half_written(cluster, inputs, tmp_path,
                                                                 writers):
    out = tmp_path / "out"
    names = [inputs["long"], *([inputs["stills"]] if writers == 2 else [])]
    run = _start([*names, "--out", out, "--writers", writers], cluster)
    assert _busy_worker(time.monotonic() + 120) is not None
    time.sleep(1.0)  # the writers are at work
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 130, stderr[-2000:]
    assert "interrupted during" in stderr and str(inputs["long"]) in stderr
    assert "was kept" in stderr
    # what is there is whole (the stills may have finished before Ctrl-C), the rest absent
    kept = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert kept in ([], ["stills"]) and all(is_complete(out / name) for name in kept)
    assert _busy_worker(time.monotonic() + 5) is None  # the cluster's work stopped too


def test_setup_failures_are_one_line(cluster, inputs, tmp_path):
    """An unreachable cluster, unreadable weights (refused before any cluster is joined), a
    model the workers cannot build, and cluster flags without --ray."""
    def last_line(done: subprocess.CompletedProcess) -> str:
        assert done.returncode == 1, done.stderr[-2000:]
        assert not (tmp_path / "out").exists()
        return done.stderr.strip().splitlines()[-1]

    assert last_line(_annotate(inputs["short"], "--out", tmp_path / "out",
                               ray=f"127.0.0.1:{free_port()}")).startswith(
        "error: cannot reach the Ray cluster at 127.0.0.1:")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert last_line(_annotate(inputs["short"], "--out", tmp_path / "out", "--weights", junk,
                               ray=cluster)).startswith(f"error: {junk}: not a PyTorch checkpoint")
    assert last_line(_annotate(inputs["short"], "--out", tmp_path / "out", "--size", "100",
                               ray=cluster)) == ("error: a worker could not load the model: "
                                                 "ValueError: size must be a positive multiple "
                                                 "of 32, got 100")
    flags = run_cli("realtime", "annotate", inputs["short"], "--workers", "2")
    assert flags.returncode != 0 and "--workers needs --ray" in flags.stderr


def test_a_frame_whose_pixels_are_not_the_workers_fails_the_input(cluster, inputs, tmp_path,
                                                                   monkeypatch):
    """The stitcher pairs frames by pts and proves the pixels by checksum: here the workers
    segment one video while the stitcher decodes another with the same timestamps (what a
    damaged keyframe at a chunk's start would do), and the input fails, keeping nothing."""
    for name, value in AUTH.items():  # (before Ray is imported: it reads them then)
        monkeypatch.setenv(name, value)
    import ray
    from realtime.distributed.annotate import RayAnnotator, StitchError
    from realtime.distributed.cluster import ClusterSettings
    from realtime.io.inputs import InputSpec
    from realtime.pipeline.offline import AnnotateOptions
    other = tmp_path / "other.mp4"
    write_video(other, [i / 30 for i in range(LONG_FRAMES)], 256, 256,
                codec_options={"g": "30", "bf": "2", "preset": "veryfast"})
    annotator = RayAnnotator(ClusterSettings(cluster, workers=1, chunk_frames=CHUNK),
                             {"backend": "cpu"}, AnnotateOptions(progress=False),
                             [InputSpec(str(inputs["long"]), "long", "video")])
    try:
        with pytest.raises(StitchError, match="frame 0 has pixels that differ from the "
                                              "worker's.*--chunk-frames 0"):
            annotator.annotate(InputSpec(str(other), "long", "video"), tmp_path / "out")
    finally:
        annotator.close()
        ray.shutdown()
    out = tmp_path / "out"
    assert not out.exists() or list(out.iterdir()) == []  # not even a partial folder
