"""The web app, running for real: driven through its API with gradio_client, through a real
browser (Debian's chromium via Playwright), and its MJPEG live stream read over HTTP."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest

from helpers import ROOT, missing_tools, require
from helpers.servers import free_port
from helpers.videos import decoded_frames, write_video

ARTIFACTS = ROOT / "runs" / "test-artifacts"

pytestmark = pytest.mark.slow


def _chromium() -> str:
    require(missing_tools("chromium", install="apt-get install chromium"))
    return shutil.which("chromium")


def start_app(workdir: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(workdir)}
    # its output goes to a file: a pipe nobody reads fills up (progress bars, logs) and then
    # blocks the app mid-request
    log = workdir / "app.log"
    proc = subprocess.Popen([sys.executable, "-m", "realtime", "app", "--port", str(port),
                             "--workdir", str(workdir / "app"), *extra], env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(240):
        time.sleep(0.25)
        if proc.poll() is not None:
            raise AssertionError(f"app exited: {log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url + "config", timeout=2)
            return proc, url
        except urllib.error.HTTPError:
            return proc, url  # up (and asking for a password)
        except OSError:
            continue
    proc.kill()
    raise AssertionError("app did not start within 60 s")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("app")
    proc, url = start_app(workdir)
    yield url, workdir
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "procedure.mp4"
    write_video(path, [i / 25 for i in range(30)], 320, 240, phantom=True)
    return path


def test_annotate_api_returns_every_frame(app, clip):
    from gradio_client import Client, handle_file
    url, workdir = app
    client = Client(url, verbose=False)
    # the README's call: the video alone, every other input has a default
    overlay, downloads, report = client.predict(handle_file(str(clip)), api_name="/annotate")
    returns = client.view_api(return_format="dict", print_info=False)[
        "named_endpoints"]["/annotate"]["returns"]
    assert [r["label"] for r in returns][::2] == ["Overlay", "report"]
    frames = decoded_frames(Path(overlay))
    assert len(frames) == len(decoded_frames(clip)) == 30
    assert [f.time for f in frames] == [f.time for f in decoded_frames(clip)]
    names = sorted(Path(d).name for d in downloads)
    assert names == ["annotations.zip", "frames.jsonl", "masks.mkv", "overlay.mp4", "summary.json"]
    assert "| procedure.mp4 | 30 |" in report
    # results and uploads stay in the app's work folder
    assert list((workdir / "app" / "outputs").glob("*/01_procedure/overlay.mp4"))


def test_live_stream_is_served_as_mjpeg_to_the_token_holder_only(app):
    from gradio_client import Client
    url, _ = app
    client = Client(url, verbose=False)
    html, *_ = client.predict("synthetic", api_name="/live_start")
    path = html.split('src="', 1)[1].split('"', 1)[0]
    assert path.startswith("/live/") and path.endswith(".mjpg")
    with urllib.request.urlopen(url.rstrip("/") + path, timeout=30) as stream:
        assert stream.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        data = b""
        while data.count(b"\xff\xd8") < 3 and len(data) < 5_000_000:
            data += stream.read(4096)
    assert data.count(b"Content-Type: image/jpeg") >= 3
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url + "live/not-a-token.mjpg", timeout=10)
    assert refused.value.code == 404
    client.predict(api_name="/live_stop")


def test_live_refuses_local_paths(app):
    from gradio_client import Client
    client = Client(app[0], verbose=False)
    with pytest.raises(Exception, match="stream URL"):
        client.predict("/etc/passwd", api_name="/live_start")


def test_a_failed_upload_is_named_without_the_servers_paths(app, clip, tmp_path):
    from gradio_client import Client, handle_file
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(os.urandom(3000))
    client = Client(app[0], verbose=False)
    _, _, report = client.predict(handle_file(str(clip)), more=[handle_file(str(garbage))],
                                  api_name="/annotate")
    assert "| garbage.mp4 | failed: garbage.mp4: cannot open as video" in report
    assert str(app[1]) not in report and "/uploads/" not in report


def test_live_start_does_not_tell_the_browser_what_the_server_can_reach(app):
    from gradio_client import Client
    client = Client(app[0], verbose=False)
    with pytest.raises(Exception) as refused:
        client.predict(f"tcp://127.0.0.1:{free_port()}", api_name="/live_start")
    message = str(refused.value)
    assert "could not be opened" in message
    assert "refused" not in message.lower() and "127.0.0.1" not in message


@pytest.mark.parametrize("password", [False, True])
def test_listening_beyond_this_machine_without_a_password_is_warned(tmp_path, password):
    proc, _ = start_app(tmp_path, "--host", "0.0.0.0", *(["--auth", "a:b"] if password else []))
    proc.terminate()
    proc.wait(timeout=20)
    warned = "listening on 0.0.0.0 without --auth: anyone who can reach this machine can " \
        "use the app" in (tmp_path / "app.log").read_text()
    assert warned != password


def test_uploads_above_the_limit_are_refused(tmp_path):
    import httpx
    proc, url = start_app(tmp_path, "--max-upload", "10kb")
    try:
        small = httpx.post(url + "gradio_api/upload", files={"files": ("a.mp4", b"0" * 5000)})
        large = httpx.post(url + "gradio_api/upload", files={"files": ("b.mp4", b"0" * 20000)})
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert small.status_code == 200
    assert large.status_code == 413 and "maximum allowed size of 10240 bytes" in large.text


def test_the_model_runs_one_job_at_a_time(app, clip):
    """Two users annotate at once: the second waits in the queue while the first runs."""
    from gradio_client import Client, handle_file
    from gradio_client.utils import Status
    first = Client(app[0], verbose=False).submit(handle_file(str(clip)), api_name="/annotate")
    second = Client(app[0], verbose=False).submit(handle_file(str(clip)), api_name="/annotate")
    running = {Status.PROCESSING, Status.PROGRESS, Status.ITERATING}
    queued = {Status.IN_QUEUE, Status.JOINING_QUEUE}
    waited = False
    while not (first.done() and second.done()):
        a, b = first.status().code, second.status().code
        # either may reach the server first
        waited |= bool({a, b} & running and {a, b} & queued)
        time.sleep(0.05)
    assert waited, "never saw one job queued while the other ran"
    # the client's view of a status lags the server (a job that has ended can still read as
    # running for a moment), so whether they overlapped is read from the server's own times
    spans = sorted(_annotate_span(job.result()) for job in (first, second))
    assert spans[0][1] <= spans[1][0], spans


def _annotate_span(result) -> tuple[datetime, datetime]:
    overlay, downloads, _ = result
    assert overlay  # finished with an overlay
    summary = json.loads(Path(next(d for d in downloads if d.endswith("summary.json"))).read_text())
    return datetime.fromisoformat(summary["started"]), datetime.fromisoformat(summary["finished"])


def test_password_is_required_when_set(tmp_path):
    proc, url = start_app(tmp_path, "--auth", "alice:secret")
    try:
        from gradio_client import Client
        from gradio_client.exceptions import AuthenticationError
        with pytest.raises(urllib.error.HTTPError) as anonymous:
            urllib.request.urlopen(url + "config", timeout=30)
        assert anonymous.value.code == 401
        with pytest.raises(AuthenticationError, match="credentials were not provided"):
            Client(url, verbose=False)
        with pytest.raises(urllib.error.HTTPError) as wrong:
            urllib.request.urlopen(url + "login", data=b"username=alice&password=wrong",
                                   timeout=30)
        assert wrong.value.code == 400 and b"Incorrect credentials" in wrong.value.read()
        with pytest.raises(ValueError, match="Could not login"):
            Client(url, auth=("alice", "wrong"), verbose=False)
        client = Client(url, auth=("alice", "secret"), verbose=False)
        # the live stream needs the login too, not only its token
        html, *_ = client.predict("synthetic", api_name="/live_start")
        stream = url.rstrip("/") + html.split('src="', 1)[1].split('"', 1)[0]
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(stream, timeout=30)
        assert refused.value.code == 401
        cookies = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
        with urllib.request.urlopen(urllib.request.Request(stream, headers={"Cookie": cookies}),
                                    timeout=30) as logged_in:
            assert logged_in.headers["Content-Type"].startswith("multipart/x-mixed-replace")
            assert b"\xff\xd8" in logged_in.read(20_000)
        client.predict(api_name="/live_stop")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.browser
def test_browser_uploads_a_video_and_sees_the_overlay(app, clip):
    """Debian's chromium, headless, through Playwright: the user's path through the page.
    The screenshot is kept in runs/test-artifacts/app_annotate.png."""
    from playwright.sync_api import sync_playwright
    chromium = _chromium()
    url, _ = app
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url, wait_until="load")  # Gradio keeps a connection open: never idle
        page.get_by_role("button", name="Annotate", exact=True).wait_for(timeout=60_000)
        assert "M2SNet" in page.title() + page.content()
        page.locator("input[type=file]").first.set_input_files(str(clip))
        page.get_by_role("button", name="Annotate", exact=True).click()
        result = page.locator("video[src*='overlay']")
        result.first.wait_for(state="attached", timeout=180_000)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(ARTIFACTS / "app_annotate.png"), full_page=True)
        duration = page.evaluate("() => new Promise(done => { const v = [...document."
                                 "querySelectorAll('video')].find(v => v.src.includes('overlay'));"
                                 " if (v.readyState >= 1) done(v.duration); else "
                                 "v.addEventListener('loadedmetadata', () => done(v.duration)); })")
        browser.close()
    assert duration == pytest.approx(30 / 25, abs=0.1)  # the whole video plays in the browser
    assert os.path.getsize(ARTIFACTS / "app_annotate.png") > 20_000


def test_backend_choices_are_those_this_machine_can_run(tmp_path, monkeypatch):
    import torch
    from realtime.app import AppConfig, AppState
    state = AppState(AppConfig(workdir=tmp_path))
    expected = ["auto", "cpu"] + [name for name in ("onnxruntime", "openvino")
                                  if importlib.util.find_spec(name)]
    assert state.backends()[:len(expected) + 1] == expected + ["compile"]
    assert ("cuda" in state.backends()) == torch.cuda.is_available()
    monkeypatch.setattr("realtime.engine.backends.openvino.openvino_module", lambda: None)
    assert "openvino" not in state.backends()


def test_benchmark_tab_runs_the_quick_benchmark(app):
    from gradio_client import Client
    text, plot = Client(app[0], verbose=False).predict(api_name="/benchmark")
    assert "| demo | cpu | fp32 | 1 | 256 | reference |" in text and "| live |" in text
    if importlib.util.find_spec("openvino"):
        assert "| demo | openvino | fp32 | 1 | 256 | factored |" in text
    assert Path(plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.browser
def test_browser_live_tab_shows_the_stream_and_the_camera_overlay(app):
    """The Live tab in chromium: the synthetic stream plays as MJPEG with its fps line, and
    chromium's fake camera streams frames that come back overlaid. Screenshot kept in
    runs/test-artifacts/app_live.png."""
    from playwright.sync_api import sync_playwright
    chromium = _chromium()
    url, _ = app
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"])
        context = browser.new_context(viewport={"width": 1280, "height": 1000},
                                      permissions=["camera"])
        page = context.new_page()
        stream = _start_live_in(page, url)
        # the status line, once its rates span a second: "source 30 fps" (the synthetic
        # stream's rate), shown, model, latency and mask age
        pattern = (r"source (\d+) fps \S shown \d+ \S model [\d.]+ \S latency [\d.]+ ms "
                   r"\S mask age [\d.]+ ms")
        try:
            page.wait_for_function("pattern => new RegExp(pattern).test(document.body."
                                   "innerText)", arg=pattern, timeout=60_000)
        except Exception:  # noqa: BLE001  (the assertion below shows what the page said)
            pass
        status = re.search(pattern, page.inner_text("body"))
        assert status, re.findall(r".*source.*", page.inner_text("body"))
        assert 20 <= int(status.group(1)) <= 31
        with urllib.request.urlopen(stream, timeout=30) as mjpeg:  # the picture itself
            assert b"\xff\xd8" in mjpeg.read(50_000)
        page.get_by_text("Click to Access Webcam").click()
        page.get_by_role("button", name="capture photo").click()
        # the camera's frames share two cores with the live session still running beside it
        overlaid = page.wait_for_function(
            "() => { const i = [...document.images].find(i => i.src.includes("
            "'gradio_api/file=') && i.naturalWidth > 0); "
            "return i ? [i.naturalWidth, i.naturalHeight] : null; }", timeout=120_000
        ).json_value()
        camera = page.evaluate("() => [...document.querySelectorAll('video')].map(v => "
                               "[v.videoWidth, v.videoHeight])")
        page.wait_for_timeout(1000)
        page.screenshot(path=str(ARTIFACTS / "app_live.png"), full_page=True)
        page.get_by_role("button", name="Stop", exact=True).first.click()
        gone = None
        for _ in range(60):  # Stop ends the session: its stream address is gone
            try:
                urllib.request.urlopen(stream, timeout=10).close()
            except urllib.error.HTTPError as error:
                gone = error.code
                break
            time.sleep(0.5)
        browser.close()
    # the camera's own frames came back, at the camera's size (Chromium's fake device)
    assert overlaid in camera, (overlaid, camera)
    assert gone == 404


def test_ctrl_c_with_a_live_session_and_an_open_client_exits_130(tmp_path):
    """Sessions are stopped in order and connections that stay open (a page, a script's
    client) get a short grace period: the app neither hangs nor aborts."""
    import signal
    from gradio_client import Client
    proc, url = start_app(tmp_path)
    try:
        client = Client(url, verbose=False)
        client.predict("synthetic", api_name="/live_start")
        time.sleep(2)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = (tmp_path / "app.log").read_text()
    assert code == 130, log[-3000:]
    assert "Traceback" not in log and "terminate called" not in log


def _start_live_in(page, url: str) -> str:
    """Open the page's Live tab, start the default stream, wait for its first frame; returns
    the stream's MJPEG address."""
    page.goto(url, wait_until="load")
    page.get_by_role("tab", name="Live").click()
    page.get_by_role("button", name="Start", exact=True).click()
    page.wait_for_function("() => [...document.images].some(i => i.src.includes('/live/')"
                           " && i.naturalWidth > 0)", timeout=60_000)
    return page.evaluate("() => [...document.images].find(i => i.src.includes('/live/')).src")


@pytest.mark.browser
def test_closing_the_page_stops_its_live_stream(app):
    """A live stream started from a page that is then closed does not run on unseen."""
    from playwright.sync_api import sync_playwright
    chromium = _chromium()
    url, _ = app
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        stream = _start_live_in(page, url)
        with urllib.request.urlopen(stream, timeout=30) as running:
            assert running.status == 200
        page.close()
        browser.close()
    for _ in range(60):  # the server learns of the closed page from its heartbeat
        time.sleep(0.5)
        try:
            urllib.request.urlopen(stream, timeout=10).close()
        except urllib.error.HTTPError as gone:
            assert gone.code == 404
            break
    else:
        raise AssertionError("the live stream kept running after its page was closed")
