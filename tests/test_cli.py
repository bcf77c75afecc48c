"""The command lines as a user meets them: arguments checked before the model loads, flags
that mean the same everywhere, overrides after options, numbered output folders, and a lost
stream that is reported."""

from __future__ import annotations

import os

import pytest

from helpers import run_cli
from helpers import unprivileged
from helpers.servers import tcp_stream
from helpers.videos import write_video


def test_overrides_may_follow_the_options():
    from m2snet.cli import build_parser, parse
    args = parse(build_parser(), ["train", "configs/train/phantom.yaml", "--out", "RUN",
                                  "data.train=DIR", "epochs=2"])
    assert args.config == "configs/train/phantom.yaml" and args.out == "RUN"
    assert args.overrides == ["data.train=DIR", "epochs=2"]
    with pytest.raises(SystemExit) as usage:
        parse(build_parser(), ["inspect", "w.pt", "x=1"])  # inspect takes no overrides
    assert usage.value.code == 2


def test_the_same_flags_in_every_command():
    from m2snet.cli import build_parser as model_parser
    from realtime.cli import build_parser
    bench = build_parser().parse_args(["bench", "--weights", "w.pt", "--backend", "cpu",
                                       "--size", "64", "--precision", "fp32", "--batch", "2"])
    assert (bench.models, bench.backends, bench.sizes, bench.precisions, bench.batches) == \
        ("w.pt", "cpu", "64", "fp32", "2")
    assert model_parser().parse_args(["eval", "--backend", "cuda"]).device == "cuda"
    for command in ("live", "annotate"):
        text = " ".join(run_cli("realtime", command, "--help").stdout.split())
        for flag in ("--alpha ALPHA", "--min-area MIN_AREA", "--threshold THRESHOLD"):
            described = text.rsplit(flag, 1)[1].split(" --")[0]
            assert "default" in described, (command, flag, described)


@pytest.mark.parametrize("extra, message", [
    (["--size", "100"], "size must be a positive multiple of 32, got 100"),
    (["--record", "out.avi"], "out.avi: recordings are MP4 (name the file .mp4)"),
    (["--record", "/nonexistent_dir/x.mp4"],
     "/nonexistent_dir/x.mp4: the folder /nonexistent_dir does not exist"),
    (["--masks", "m.mp4"], "m.mp4: raw masks are stored as Matroska (name the file .mkv)"),
    (["--alert-sure", "0.9"], "--alert-sure takes P/M (raise at once when M masks in a row "
                              "show a region of mean probability >= P) or off, got '0.9'"),
])
def test_live_refuses_bad_arguments_before_the_model_loads(tmp_path, extra, message):
    video = tmp_path / "clip.mp4"
    write_video(video, [i / 30 for i in range(3)])
    done = run_cli("realtime", "live", video, "--no-display", *extra, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == f"error: {message}"
    assert "backend auto" not in done.stderr and "segmenter:" not in done.stderr  # no model
    assert not os.path.exists("/nonexistent_dir")  # nothing was created on the way


@pytest.mark.parametrize("command, extra, message", [
    ("live", ["--record", "{ro}/x.mp4"], "{ro}/x.mp4: the folder {ro} is not writable"),
    ("live", ["--masks", "{ro}/x.mkv"], "{ro}/x.mkv: the folder {ro} is not writable"),
    ("live", ["--stats", "{ro}/s.json"], "{ro}/s.json: the folder {ro} is not writable"),
    ("annotate", ["--out", "{ro}"], "{ro}: the folder {ro} is not writable"),
    ("annotate", ["--out", "{ro}/new/run"],
     "{ro}/new/run: cannot be created: the folder {ro} is not writable"),
])
def test_unwritable_outputs_are_refused_before_the_model_loads(tmp_path, command, extra,
                                                               message):
    """Run without root's override of file modes (as a hospital workstation's user is)."""
    video = tmp_path / "clip.mp4"
    write_video(video, [i / 30 for i in range(3)])
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    read_only.chmod(0o555)
    fill = {"ro": read_only}
    arguments = [video, *(a.format(**fill) for a in extra)]
    if command == "live":
        arguments.append("--no-display")
    done = run_cli("realtime", command, *arguments, cwd=tmp_path, prefix=unprivileged())
    assert done.returncode == 1, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == f"error: {message.format(**fill)}"
    assert "segmenter:" not in done.stderr  # refused before loading the model
    assert list(read_only.iterdir()) == []


def test_annotate_refuses_bad_inputs_before_the_model_loads(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("a text file\n" * 40)
    ts = tmp_path / "clip.ts"
    write_video(ts, [i / 30 for i in range(5)], fmt="mpegts")
    playlist = tmp_path / "list.m3u8"  # names a video elsewhere on the machine
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n{ts}\n#EXT-X-ENDLIST\n")
    done = run_cli("realtime", "annotate", notes, tmp_path / "missing.mp4", playlist, "--out",
                   tmp_path / "out", "--quiet")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {notes}: not a video file (FFmpeg reads it as text, not video)",
                      f"error: {tmp_path / 'missing.mp4'}: no such file",
                      f"error: {playlist}: not a video file (FFmpeg reads it as a playlist of "
                      f"other files)"]
    assert "backend auto" not in done.stderr  # no model was loaded for nothing
    assert "0 of 3 inputs complete" in done.stdout


def test_results_go_to_new_numbered_folders_and_files(tiny_weights, tmp_path):
    from realtime.cli.common import next_free
    (tmp_path / "demo.mp4").write_bytes(b"")
    (tmp_path / "demo2.mp4").write_bytes(b"")
    assert next_free(tmp_path / "demo.mp4") == tmp_path / "demo3.mp4"
    assert next_free(tmp_path / "fresh.mp4") == tmp_path / "fresh.mp4"
    video = tmp_path / "clip.mp4"
    write_video(video, [i / 30 for i in range(3)])
    for _ in range(2):
        done = run_cli("realtime", "annotate", video, "--weights", tiny_weights, "--backend",
                       "cpu", "--quiet", cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["annotate", "annotate2"]
    assert (tmp_path / "runs" / "annotate2" / "clip" / "summary.json").is_file()


def test_a_lost_stream_is_printed_and_exits_1(tiny_weights):
    with tcp_stream(frames=30) as url:
        done = run_cli("realtime", "live", url, "--weights", tiny_weights, "--backend", "cpu",
                       "--no-display", "--reconnect", "1", "--timeout", "2")
    assert done.returncode == 1, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1].startswith(
        f"error: the source was lost: {url}: unreachable after 1 attempts")
    assert "frames: 30 captured" in done.stdout  # what was received is still summarized


def test_rates_wait_for_a_second_of_frames():
    from realtime.pipeline.stats import Rate
    rate = Rate()
    for i in range(7):  # 0.2 s of a 30 fps source with jitter: no estimate yet
        rate.tick(i / 30 + (0.004 if i % 2 else 0))
    assert rate.value(6 / 30) is None
    for i in range(7, 60):
        rate.tick(i / 30)
    assert rate.value(59 / 30) == pytest.approx(30, abs=0.01)


def test_bench_records_the_openvino_version():
    openvino = pytest.importorskip("openvino")
    from importlib.metadata import version
    from realtime.bench.environment import describe_environment
    assert describe_environment()["openvino"] == version("openvino")
    assert openvino.__version__.startswith(version("openvino"))
