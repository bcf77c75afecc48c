"""The web app: annotate uploaded videos and watch a live stream with overlays in a browser.

    python -m realtime app [--host 127.0.0.1] [--port 7860] [--auth user:pass]

Gradio 6 pages (``ui``) mounted on a FastAPI app, which also serves the live overlay as an
MJPEG stream (``/live/<token>.mjpg``; the token is handed out only through the page, so the
stream is as private as the page). The work itself is in ``jobs``, the shared state in
``state``. Safe defaults: it listens on 127.0.0.1, uploads and results stay in the app's work
folder, uploads are size-limited, the model runs one job at a time, and Gradio's usage
analytics are off.
"""

from __future__ import annotations

import asyncio
import logging
import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # no telemetry, before gradio is imported

from starlette.requests import Request  # noqa: E402  (module level: FastAPI resolves it by name)

from realtime.app.state import AppConfig, AppState  # noqa: E402

log = logging.getLogger("realtime.app")

__all__ = ["AppConfig", "AppState", "build_app", "serve"]


def build_app(config: AppConfig):
    """The FastAPI application: Gradio at /, the MJPEG streams at /live/<token>.mjpg."""
    os.environ["GRADIO_TEMP_DIR"] = str(config.uploads.resolve())  # uploads stay in workdir
    import gradio as gr
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import StreamingResponse
    from starlette.routing import Mount

    state = AppState(config)
    from realtime.app.ui import build_blocks
    blocks = build_blocks(state)
    blocks.queue(default_concurrency_limit=1)
    api = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    mounted: dict = {}  # Gradio's own app, which knows who is logged in (filled in below)

    @api.get("/live/{key}.mjpg")
    async def mjpeg(key: str, request: Request):
        if config.auth and not _logged_in(mounted["gradio"], request):
            raise HTTPException(status_code=401, detail="log in first")
        session = state.live.get(key)
        if session is None:
            raise HTTPException(status_code=404, detail="no such live session")

        async def frames():
            seen = -1
            while key in state.live and session.running:
                if session.sink.sequence != seen and session.sink.jpeg is not None:
                    seen, jpeg = session.sink.sequence, session.sink.jpeg
                    yield (b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                           + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                await asyncio.sleep(0.005)

        return StreamingResponse(frames(), media_type="multipart/x-mixed-replace; boundary=frame")

    app = gr.mount_gradio_app(api, blocks, path="/", auth=config.auth,
                              allowed_paths=[str(config.outputs.resolve())],
                              max_file_size=config.max_upload, footer_links=["api"],
                              theme=gr.themes.Soft())
    mounted["gradio"] = next(r.app for r in app.routes if isinstance(r, Mount))
    app.state.m2snet = state
    return app


def _logged_in(gradio_app, request) -> bool:
    """Whether the request carries the session cookie of a user logged in to the page: with
    --auth the streams are as private as the page, not only as private as their token."""
    cookie = f"access-token-{gradio_app.cookie_id}"
    token = request.cookies.get(cookie) or request.cookies.get(f"access-token-unsecure-"
                                                               f"{gradio_app.cookie_id}")
    return token is not None and gradio_app.tokens.get(token) is not None


def _stop_live_sessions(state: AppState) -> None:
    """Live sessions end before the interpreter does: their threads are inside native code
    (decoders, OpenVINO) that aborts the process when torn down under it."""
    for token in list(state.live):
        session = state.live.pop(token, None)
        if session is not None:
            session.stop()


def serve(config: AppConfig, host: str, port: int) -> None:
    """Serve until Ctrl-C, which ends in KeyboardInterrupt (exit code 130) whenever it comes:
    uvicorn shuts down gracefully and re-raises the signal, and before it takes the signal
    over (or after) our own handler turns it into KeyboardInterrupt at once."""
    import signal

    import uvicorn
    app = build_app(config)
    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            # connections cut at the end of the grace period are expected, not errors
            logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
            super().handle_exit(sig, frame)

    # open pages keep connections (queue heartbeats, MJPEG): give them 5 s to end, then close
    server = Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                   timeout_graceful_shutdown=5))

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        print(f"M2SNet app: http://{host}:{port}/ (work folder {config.workdir}; "
              f"{'password required' if config.auth else 'no password'}); Ctrl-C stops it",
              flush=True)
        if host not in ("127.0.0.1", "localhost", "::1") and not config.auth:
            log.warning("listening on %s without --auth: anyone who can reach this machine "
                        "can use the app", host)
        server.run()
    except SystemExit:  # uvicorn's way of failing to start (it has logged why)
        pass
    finally:
        signal.signal(signal.SIGINT, previous)
        _stop_live_sessions(app.state.m2snet)
    if not server.started:
        raise OSError(f"the app could not listen on {host}:{port} (in use, or not an address "
                      f"of this machine)")
