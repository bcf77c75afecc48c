"""The live demo on the synthetic stream: stays live, records a playable video, fails clearly."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import run_cli
from helpers.videos import decoded_frames
from realtime.engine.segmenter import Segmenter


def test_headless_demo_records_every_shown_frame_with_real_timestamps(tiny_weights, tmp_path):
    """No display: the demo records under runs/demo/, in a new file (an earlier recording is
    kept), and prints where."""
    earlier = tmp_path / "runs" / "demo" / "demo.mp4"
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"an earlier recording")
    done = run_cli("realtime", "demo", "--weights", tiny_weights, "--backend", "cpu",
                   "--seconds", "3", "--stats", tmp_path / "s.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-1500:]
    video = tmp_path / "runs" / "demo" / "demo2.mp4"
    assert "recording: runs/demo/demo2.mp4" in done.stdout
    assert earlier.read_bytes() == b"an earlier recording"
    stats = json.loads((tmp_path / "s.json").read_text())
    frames = decoded_frames(video)
    assert len(frames) == stats["frames_displayed"] > 30
    assert stats["frames_captured"] >= stats["frames_displayed"]
    assert frames[0].width == 352 and frames[0].height == 352
    times = [f.time for f in frames]
    assert times == sorted(times) and 2.0 < times[-1] <= 3.5  # capture times, 30 fps


def test_demo_with_missing_weights_fails_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "realtime", "demo", "--weights",
                           str(tmp_path / "absent.pt"), "--seconds", "1"],
                          capture_output=True, text=True, timeout=120, cwd=_root())
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == f"error: {tmp_path / 'absent.pt'}: no such file"
    assert "Traceback" not in done.stderr


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
        for _ in range(40):  # wait until the window shows the colon (model load, warm-up)
            time.sleep(0.5)
            shot = np.asarray(ImageGrab.grab(xdisplay=display).convert("RGB"))
            if _reddish(shot).mean() > 0.05 or demo.poll() is not None:
                break
        out, err = demo.communicate(timeout=120)
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert demo.returncode == 0, err[-1500:]
    assert "displayed" in out and not (tmp_path / "runs").exists()  # shown, not recorded
    assert _reddish(shot).mean() > 0.05  # the mucosa is on screen


def _reddish(shot):
    return (shot[..., 0].astype(int) - shot[..., 2]) > 30
