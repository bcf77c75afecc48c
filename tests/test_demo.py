"""The live demo on the synthetic stream: stays live, records a playable video, fails clearly."""

from __future__ import annotations

import subprocess
import sys

import cv2  # noqa: F401  (before av)
import av
import pytest
import torch

import m2snet
from realtime.demo import LatestSlot, Stamped, run_demo
from realtime.segmenter import Segmenter


def test_latest_slot_keeps_the_newest_and_counts_drops():
    slot = LatestSlot()
    for i in range(3):
        slot.put(Stamped(i, 0.0, None))
    assert slot.take().index == 2 and slot.dropped == 2
    assert slot.take(timeout=0.01) is None
    slot.close()
    assert slot.take() is None and slot.closed


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    model = m2snet.create_model("m2snet", backbone="resnet18", width=8)
    path = m2snet.save_checkpoint(model, tmp_path_factory.mktemp("w") / "tiny.pt", input_size=64)
    return Segmenter(path, backend="cpu")


def test_headless_demo_records_every_shown_frame_with_real_timestamps(tiny, tmp_path):
    video = tmp_path / "demo.mp4"
    stats = run_demo(tiny, seconds=2.0, fps=30, size=128, record=video, show=False)
    assert stats["shown"] > 5 and stats["produced"] >= stats["shown"]
    assert stats["shown"] + stats["dropped"] <= stats["produced"] + 1
    with av.open(str(video)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == stats["shown"]
    assert frames[0].width == 128 and frames[0].height == 128
    times = [f.time for f in frames]
    assert times == sorted(times) and 1.0 < times[-1] <= 4.0  # wall-clock, not frame count


def test_demo_with_missing_weights_fails_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "realtime", "demo", "--weights",
                           str(tmp_path / "absent.pt"), "--seconds", "1"],
                          capture_output=True, text=True, timeout=120, cwd=_root())
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == f"error: {tmp_path / 'absent.pt'}: no such file"
    assert "Traceback" not in done.stderr


def test_demo_command_records_when_headless(tiny, tmp_path):
    video = tmp_path / "out.mp4"
    done = subprocess.run([sys.executable, "-m", "realtime", "demo", "--weights",
                           str(tiny.weights), "--backend", "cpu", "--seconds", "2",
                           "--record", str(video)],
                          capture_output=True, text=True, timeout=180,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(_root())})
    assert done.returncode == 0, done.stderr[-1500:]
    assert "fps" in done.stdout and video.stat().st_size > 0


def _root():
    from pathlib import Path
    return Path(__file__).resolve().parents[1]


def test_bundled_demo_model_finds_polyps_in_unseen_phantoms():
    """The shipped weights (phantom-trained) on frames from a seed it never saw."""
    import numpy as np

    from m2snet.phantom import phantom_image
    seg = Segmenter(backend="cpu")  # the default: the bundled demo model
    scores = []
    for i in range(30):
        image, mask = phantom_image(5000 * 100_003 + i, 352)
        pred, truth = seg(image).masks.numpy(), mask > 0
        total = pred.sum() + truth.sum()
        scores.append(1.0 if total == 0 else 2 * (pred & truth).sum() / total)
    assert np.mean(scores) > 0.75  # 0.85 over 100 such frames when it was trained


def test_demo_window_on_a_virtual_screen(tmp_path):
    """A real X server (Xvfb), the real OpenCV window, and a screenshot of what it shows."""
    import shutil
    import time

    import numpy as np
    from PIL import ImageGrab

    xvfb = shutil.which("Xvfb")
    assert xvfb, "Xvfb is missing: .ci/run installs it (apt-get install xvfb)"
    display = f":{70 + (int(time.time()) % 20)}"
    server = subprocess.Popen([xvfb, display, "-screen", "0", "800x600x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(_root()), "DISPLAY": display}
        demo = subprocess.Popen([sys.executable, "-m", "realtime", "demo", "--backend", "cpu",
                                 "--seconds", "8"], env=env, cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        shot = None
        for _ in range(40):  # wait until the window shows a frame (model load, warm-up)
            time.sleep(0.5)
            shot = np.asarray(ImageGrab.grab(xdisplay=display).convert("RGB"))
            if (shot.sum(axis=2) > 60).mean() > 0.1 and demo.poll() is None:
                break
        out, err = demo.communicate(timeout=120)
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert demo.returncode == 0, err[-1500:]
    assert "shown" in out and not (tmp_path / "runs").exists()  # shown, not recorded
    reddish = (shot[..., 0].astype(int) - shot[..., 2]) > 30  # mucosa on screen
    assert reddish.mean() > 0.05
