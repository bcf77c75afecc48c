"""The web app's page (Gradio 6): layout and wiring only; the work is in ``jobs``."""

from __future__ import annotations

import gradio as gr  # module level: Gradio resolves ``gr.Request`` annotations by name

from realtime.app import jobs
from realtime.app.state import BUNDLED, AppState


def _shown(error: Exception):
    return gr.Error(str(error))


def build_blocks(state: AppState):

    choices = list(state.weights)
    with gr.Blocks(title="M2SNet polyp segmentation") as blocks:
        gr.Markdown("## M2SNet polyp segmentation\nAnnotate recorded colonoscopy videos or "
                    "watch a live stream with the masks drawn over it. The bundled model is a "
                    "demonstration trained on synthetic frames, **not a clinical model**.")
        with gr.Row():
            model = (gr.Dropdown(choices, value=choices[0], label="Weights"),
                     gr.Dropdown(state.backends(), value="auto", label="Backend"),
                     gr.Slider(0.05, 0.95, value=0.5, step=0.05, label="Threshold"))
        with gr.Tab("Annotate"):
            _annotate_tab(state, model)
        with gr.Tab("Live"):
            _live_tab(state, model)
        with gr.Tab("Benchmark"):
            _benchmark_tab(state)

        def page_closed(request: gr.Request):
            # a closed or reloaded page stops its live stream (it would run on unseen)
            jobs.stop_owned_by(state, request.session_hash)

        blocks.unload(page_closed)
    return blocks


def _annotate_tab(state: AppState, model: tuple) -> None:
    with gr.Row():
        with gr.Column():
            video = gr.Video(label="Video", sources=["upload"])
            more = gr.File(label="More videos (optional)", file_count="multiple",
                           file_types=["video"])
            with gr.Row():
                alpha = gr.Slider(0, 1, value=0.35, step=0.05, label="Overlay opacity")
                boxes = gr.Checkbox(value=True, label="Boxes and confidence")
            run = gr.Button("Annotate", variant="primary")
        with gr.Column():
            result = gr.Video(label="Overlay", interactive=False)
            files = gr.File(label="Downloads: masks (lossless), per-frame log, "
                                  "summary, everything as .zip", interactive=False)
            report = gr.Markdown(label="report")

    def annotate(video, more=None, weights=BUNDLED, backend="auto", threshold=0.5, alpha=0.35,
                 boxes=True, progress=gr.Progress(track_tqdm=True)):
        # Defaults make every input but the video optional in the API (Gradio reads them);
        # ``progress`` (tracking tqdm) must be a parameter for Gradio to show it
        paths = [p for p in [video, *(more or [])] if p]
        try:
            return jobs.annotate_videos(state, paths, weights, backend, threshold, alpha, boxes)
        except jobs.JobError as error:
            raise _shown(error) from None

    run.click(annotate, [video, more, *model, alpha, boxes], [result, files, report],
              api_name="annotate", concurrency_id="model", concurrency_limit=1)


def _live_tab(state: AppState, model: tuple) -> None:
    token = gr.State(None)
    with gr.Row():
        url = gr.Textbox(label="Stream", placeholder="rtsp://camera.local/stream, "
                         "http://…, udp://…, or synthetic", value="synthetic", scale=4)
        start = gr.Button("Start", variant="primary", scale=1)
        stop = gr.Button("Stop", scale=1)
    view = gr.HTML("<p>Press Start to watch the stream with its overlay.</p>")
    stats = gr.Markdown()
    timer = gr.Timer(1.0, active=False)

    def started(source, weights, backend, threshold, old, request: gr.Request):
        jobs.stop_live(state, old)
        try:
            key = jobs.start_live(state, source, weights, backend, threshold,
                                  owner=request.session_hash)
        except jobs.JobError as error:
            raise _shown(error) from None
        html = (f'<img src="/live/{key}.mjpg" alt="live overlay" '
                f'style="max-width:100%;max-height:70vh;background:#000">')
        return html, key, gr.Timer(active=True)

    def stopped(key):
        jobs.stop_live(state, key)
        return "<p>Stopped.</p>", None, gr.Timer(active=False)

    start.click(started, [url, *model, token], [view, token, timer], api_name="live_start")
    stop.click(stopped, [token], [view, token, timer], api_name="live_stop")
    timer.tick(lambda key: jobs.live_status(state, key), [token], [stats],
               api_visibility="private")

    gr.Markdown("Or the browser's camera (frames go to the server and come back overlaid):")
    with gr.Row():
        camera = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Camera")
        overlaid = gr.Image(label="Overlay", interactive=False)
    camera.stream(lambda frame, *m: jobs.camera_frame(state, frame, *m), [camera, *model],
                  [overlaid], stream_every=0.1, concurrency_id="camera", concurrency_limit=1,
                  api_visibility="private")


def _benchmark_tab(state: AppState) -> None:
    gr.Markdown("The quick benchmark: the bundled model on this machine's default backends "
                "with the three subtraction units, and a short end-to-end run (about a minute "
                "on a CPU).")
    bench = gr.Button("Run the quick benchmark", variant="primary")
    table = gr.Markdown()
    chart = gr.Image(label="frames per second", interactive=False)

    def benchmark(progress=gr.Progress(track_tqdm=True)):
        return jobs.quick_benchmark(state)

    bench.click(benchmark, None, [table, chart], api_name="benchmark", concurrency_id="model",
                concurrency_limit=1)
