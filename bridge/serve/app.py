"""The local web app and HTTP JSON API behind ``python infer.py --serve``.

Routes:
    ``GET /``               the page: a Live tab (camera and microphone) and a Files tab (uploads)
    ``POST /v1/predict``    multipart ``image``, ``audio``, ``video``, ``text`` -> the JSON of
                            ``infer.py --json`` (docs/infer-json.md)
    ``POST /v1/timeline``   multipart ``video`` (+ ``text``, ``window``, ``hop``, ``format``) -> the
                            timeline JSON of ``infer.py --window``, or its CSV
    ``GET /healthz``        liveness and what the model takes
    ``WS /v1/live``         the live stream (:mod:`bridge.serve.live`)
    ``GET /docs``           the OpenAPI page

Why FastAPI + uvicorn with a static page in plain JavaScript, not Gradio: the HTTP API is half the
product, and FastAPI gives typed endpoints, the OpenAPI page and an in-process test client with
nothing else; the live tab is a tight loop (one JPEG frame up, one small JSON answer down, over a
WebSocket, one frame in flight) with the face box drawn over the camera in the browser and a sound
buffer per connection, which Gradio's components would need custom JavaScript and its queue for
anyway; and the page is three small files served from the package (no CDN, no build step), so it
works offline and through an SSH tunnel. The model is loaded once by the caller and passed in
(:func:`create_app`), so tests serve a tiny model.

Safe by default: ``serve`` binds to loopback; a request body over ``max_upload_bytes`` is refused
(413) before it is parsed (by ``Content-Length``, or while it streams); audio and video longer than
``max_seconds`` are refused from their headers (413); every error is a 4xx with one line of JSON,
``{"error": "..."}``; uploads are written to a temporary folder per request that is removed when
the request ends, also on error; one lock serialises decoding and face detection (not every
detector is thread-safe) and another calls into the model, so concurrent requests never mix state
and one request's decoding overlaps another's model call.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, File, Form, Request, UploadFile, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from bridge.inference.predictor import InputError, Predictor, UnsupportedInput
from bridge.serve.live import FRAME, SOUND, LiveError, LiveSession
from bridge.version import __version__

STATIC = Path(__file__).resolve().parent / "static"
UPLOAD_FIELDS = ("image", "audio", "video", "text")


@dataclass(frozen=True)
class ServeLimits:
    """What one request may send.

    Args:
        max_upload_bytes: a request body (all its files and fields) larger than this is refused.
        max_seconds: audio or video longer than this is refused (None: no limit).
        max_text_chars: a longer ``text`` is refused.
        max_frame_bytes: a larger live JPEG frame is refused.
    """

    max_upload_bytes: int = 50 * 2**20
    max_seconds: float | None = 120.0
    max_text_chars: int = 10_000
    max_frame_bytes: int = 2 * 2**20


class ApiError(Exception):
    """A request the API refuses: its status code and one line saying why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = " ".join(message.split())


class BodyTooLarge(Exception):
    """Raised inside the body stream when a request without ``Content-Length`` runs over the limit."""


# --- response schemas (docs/infer-json.md), for the OpenAPI page and response validation -----------


class FaceFrames(BaseModel):
    searched: int = Field(description="frames searched for a face")
    with_face: int = Field(description="frames where one was found")


class Explanation(BaseModel):
    alone_label: str = Field(description="the class predicted from this modality alone")
    alone_probabilities: dict[str, float] = Field(description="the probabilities from this modality alone")
    top_change_without: float | None = Field(
        description="change in the probability of `label` when this modality is left out; null when it is the "
                    "only observed modality")


class PredictionOut(BaseModel):
    label: str = Field(description="the most probable class")
    probabilities: dict[str, float] = Field(description="every class, in the checkpoint's label order")
    observed: list[str] = Field(description="modalities given and used")
    reconstructed: list[str] = Field(description="the checkpoint's other modalities, rebuilt by translation")
    notes: list[str] = Field(description="what happened to inputs, e.g. 'no face found in the image'")
    face_frames: FaceFrames | None = Field(description="set when faces were detected")
    explanation: dict[str, Explanation] = Field(description="one entry per observed modality")


class TimelineRowOut(BaseModel):
    start: float
    end: float
    label: str | None
    probabilities: dict[str, float]
    observed: list[str]
    reconstructed: list[str]
    face_frames: FaceFrames | None
    notes: list[str] = Field(description="why an input of the window was not used, e.g. its sound is silent")


class TimelineOut(BaseModel):
    labels: list[str]
    window: float
    hop: float
    timeline: list[TimelineRowOut]


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    labels: list[str]
    modalities: list[str] = Field(description="the checkpoint's modalities")
    inputs: list[str] = Field(description="the multipart fields /v1/predict accepts for this checkpoint")


class ErrorOut(BaseModel):
    error: str = Field(description="one line naming the problem")


ERRORS = {code: {"model": ErrorOut, "description": why} for code, why in (
    (400, "no input, an unknown or repeated field, an image with a video, empty text, a bad window"),
    (413, "the request, the text or the media's duration is over the server's limits"),
    (422, "a file that cannot be decoded, or a modality the checkpoint lacks"))}


# --- the app -----------------------------------------------------------------------------------


@dataclass
class _Server:
    """What every route shares: the predictor, the limits, where uploads go, and two locks.

    Decoding with face detection (not every detector is thread-safe) takes ``decode``, the model
    takes ``model``. ``/v1/predict`` holds them one after the other, so one request decodes while
    another predicts; calls that interleave both (a timeline, a live frame) take both, always in
    this order."""

    predictor: Predictor
    limits: ServeLimits
    temp_dir: str | Path | None
    decode: threading.Lock = field(default_factory=threading.Lock)
    model: threading.Lock = field(default_factory=threading.Lock)


def create_app(predictor: Predictor, limits: ServeLimits = ServeLimits(), temp_dir: str | Path | None = None) -> FastAPI:
    """The FastAPI app serving ``predictor``.

    Args:
        predictor: a loaded predictor (loaded once; every request shares it under a lock).
        limits: what one request may send.
        temp_dir: where each request's temporary folder is made (None: the system's).
    """
    app = FastAPI(title="bridge", version=__version__,
                  description="Emotion from any subset of a face, a voice and a text. The JSON of `POST /v1/predict` "
                              "is that of `infer.py --json` (docs/infer-json.md).")
    server = _Server(predictor, limits, temp_dir)
    if predictor.detect_faces and "image" in _raw_inputs(predictor):
        predictor.detector  # made once, now: a missing detector package fails at start, not at a request
    app.add_middleware(_BodyLimit, max_bytes=limits.max_upload_bytes)
    _error_handlers(app, limits)
    _page_and_health(app, predictor)
    _file_routes(app, server)
    _live_route(app, server)
    return app


def _error_handlers(app: FastAPI, limits: ServeLimits) -> None:
    """Every error is one line of JSON, ``{"error": ...}``, with a 4xx (500 for a bug)."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid')}".replace("\n", " ")}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, BodyTooLarge):
            return _too_large(limits.max_upload_bytes)
        return JSONResponse({"error": " ".join(str(exc.detail).split())}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception) -> JSONResponse:  # a bug: still one line of JSON
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); see the server's log"}, status_code=500)


def _page_and_health(app: FastAPI, predictor: Predictor) -> None:
    """``GET /``, the static files and ``GET /healthz``."""
    config = predictor.config
    modalities = [m.value for m in config.modalities]
    raw_inputs = _raw_inputs(predictor)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz", response_model=Health)
    def healthz() -> dict:
        """The server is up; the model's labels, modalities and the inputs it takes."""
        return {"status": "ok", "version": __version__, "labels": list(config.labels), "modalities": modalities,
                "inputs": raw_inputs}


def _file_routes(app: FastAPI, server: _Server) -> None:
    """``POST /v1/predict`` and ``POST /v1/timeline``: uploads in a temporary folder per request."""
    predictor, limits, temp_dir = server.predictor, server.limits, server.temp_dir

    @app.post("/v1/predict", response_model=PredictionOut, responses=ERRORS)
    async def predict(
        request: Request,
        image: UploadFile | None = File(None, description="a photo with a face (the largest face is used)"),
        audio: UploadFile | None = File(None, description="speech (wav, flac, mp3, ogg, m4a, ...)"),
        video: UploadFile | None = File(None, description="face frames, and its sound track unless audio is given"),
        text: str | None = Form(None, description="a transcript or message"),
    ) -> dict:
        """The emotion from any subset of image, audio, video and text, with a per-modality explanation."""
        await _check_form(request, limits)
        uploads = {name: f for name, f in (("image", image), ("audio", audio), ("video", video)) if _given(f)}

        def work() -> dict:
            with _request_folder(temp_dir) as folder:
                paths = {name: _save(upload, folder, name) for name, upload in uploads.items()}
                with _as_api_errors(paths, uploads):
                    _check_durations(paths, limits.max_seconds)
                    notes: list[str] = []
                    with server.decode:  # decoding and face detection overlap another request's model call
                        sample, faces = predictor.sample(image=paths.get("image"), audio=paths.get("audio"),
                                                         video=paths.get("video"), text=text, notes=notes)
                    with server.model:
                        result = predictor.predict_sample(sample, notes, faces)
            return result.to_dict()

        return await run_in_threadpool(work)

    @app.post("/v1/timeline", response_model=TimelineOut, responses={
        **ERRORS, 200: {"content": {"text/csv": {}}, "description": "the timeline (CSV with format=csv)"}})
    async def timeline(
        request: Request,
        video: UploadFile = File(description="the video"),
        text: str | None = Form(None, description="a transcript used in every window"),
        window: float = Form(2.0, description="window length in seconds"),
        hop: float | None = Form(None, description="seconds between windows (default: half the window)"),
        format: Literal["json", "csv"] = Form("json", description="json (docs/infer-json.md) or csv"),
    ):
        """Emotion over time: one prediction per sliding window of a video, as ``infer.py --window``."""
        from bridge.inference.timeline import timeline_csv, timeline_json

        await _check_form(request, limits, allowed=("video", "text", "window", "hop", "format"))
        if not _given(video):
            raise ApiError(400, "no video given")
        step = window / 2 if hop is None else hop
        labels = predictor.config.labels

        def work() -> str:
            with _request_folder(temp_dir) as folder:
                paths = {"video": _save(video, folder, "video")}
                with _as_api_errors(paths, {"video": video}):
                    _check_durations(paths, limits.max_seconds)
                    with server.decode, server.model:  # decodes and detects as it goes
                        rows = predictor.timeline(paths["video"], window, step, text=text)
            return timeline_csv(rows, labels) if format == "csv" else timeline_json(rows, labels, window, step)

        body = await run_in_threadpool(work)
        if format == "csv":
            return Response(body, media_type="text/csv",
                            headers={"Content-Disposition": 'attachment; filename="timeline.csv"'})
        return Response(body, media_type="application/json")


def _live_route(app: FastAPI, server: _Server) -> None:
    """``WS /v1/live``: one :class:`~bridge.serve.live.LiveSession` per connection."""

    @app.websocket("/v1/live")
    async def live(ws: WebSocket) -> None:
        """Binary ``F`` + uint32 seq + JPEG -> one JSON update; ``A`` + int16 PCM -> buffered sound;
        text ``{"text": ..., "sample_rate": ...}`` -> settings. A bad message gets ``{"error": ...}``."""
        if not _same_origin(ws):
            await ws.close(code=1008, reason="cross-origin live connections are refused")
            return
        await ws.accept()
        try:
            session = LiveSession(server.predictor, server.limits.max_frame_bytes, server.limits.max_text_chars)
        except InputError as e:
            await ws.send_json({"error": str(e)})
            await ws.close(code=1003)
            return
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                try:
                    if message.get("text") is not None:
                        session.control(message["text"])
                        continue
                    data = message.get("bytes") or b""
                    if data[:1] == bytes([SOUND]):
                        session.add_sound(data[1:])
                    elif data[:1] == bytes([FRAME]):
                        seq, rgb = session.decode_frame(data[1:])

                        def work(rgb=rgb):
                            with server.decode, server.model:  # detects, then predicts
                                return session.predict(rgb)

                        update = await run_in_threadpool(work)
                        await ws.send_json({"seq": seq, **update})
                    else:
                        raise LiveError("a binary message starts with b'F' (frame) or b'A' (sound)")
                except LiveError as e:
                    await ws.send_json({"error": str(e)})
        except WebSocketDisconnect:
            pass


def _raw_inputs(predictor: Predictor) -> list[str]:
    from bridge.config import AudioConfig, FaceConfig, TextConfig

    c = predictor.config
    return ([*(["image", "video"] if isinstance(c.face, FaceConfig) else [])]
            + (["audio"] if isinstance(c.audio, AudioConfig) else [])
            + (["text"] if isinstance(c.text, TextConfig) else []))


def _given(upload: UploadFile | None) -> bool:
    """An upload with content or a name (a browser form's empty file input sends neither)."""
    return upload is not None and bool(upload.filename or upload.size)


async def _check_form(request: Request, limits: ServeLimits, allowed: tuple[str, ...] = UPLOAD_FIELDS) -> None:
    """Refuse unknown or repeated fields and an over-long text (FastAPI has already refused a file
    sent as ``text``, with 422)."""
    form = await request.form()
    for key in form.keys():
        if key not in allowed:
            raise ApiError(400, f"unknown field {key!r} (expected {', '.join(allowed)})")
        if len(form.getlist(key)) > 1:
            raise ApiError(400, f"field {key!r} given more than once")
    text = form.get("text")
    if isinstance(text, str) and len(text) > limits.max_text_chars:
        raise ApiError(413, f"text too long: {len(text)} characters > {limits.max_text_chars}")


@contextlib.contextmanager
def _request_folder(temp_dir: str | Path | None) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bridge-serve-", dir=temp_dir) as folder:
        yield Path(folder)


def _save(upload: UploadFile, folder: Path, name: str) -> Path:
    """Copy an upload into ``folder`` as ``name`` plus its file's suffix (decoders look at it)."""
    import shutil

    suffix = Path(upload.filename or "").suffix.lower()
    suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""
    path = folder / f"{name}{suffix}"
    upload.file.seek(0)
    with path.open("wb") as out:
        shutil.copyfileobj(upload.file, out)
    return path


def _check_durations(paths: dict[str, Path], max_seconds: float | None) -> None:
    """Refuse audio or video longer than ``max_seconds`` from their headers, before decoding."""
    from bridge.media import audio_info, video_info
    from bridge.media.errors import MediaTooLarge

    if max_seconds is None:
        return
    for name, info in (("audio", audio_info), ("video", video_info)):
        if name in paths:
            duration = info(paths[name]).duration
            if duration is not None and duration > max_seconds:
                raise MediaTooLarge(paths[name],
                                    f"too long: {duration:.1f} s > the server's limit of {max_seconds:g} s")


@contextlib.contextmanager
def _as_api_errors(paths: dict[str, Path], uploads: dict[str, UploadFile]) -> Iterator[None]:
    """Predictor and media errors as 4xx :class:`ApiError`, naming the upload field, not the temp file."""
    from bridge.media import MediaError
    from bridge.media.errors import MediaTooLarge

    try:
        yield
    except MediaError as e:
        field = next((n for n, p in paths.items() if p == e.path), None)
        where = f"{field} ({uploads[field].filename})" if field and uploads[field].filename else field or "upload"
        raise ApiError(413 if isinstance(e, MediaTooLarge) else 422, f"{where}: {e.problem}") from None
    except InputError as e:
        status = 422 if isinstance(e, UnsupportedInput) else 400
        raise ApiError(status, _scrub(str(e), paths)) from None
    except ValueError as e:  # a bad window or hop, an unreadable frame, ...
        raise ApiError(400, _scrub(str(e), paths) or type(e).__name__) from None


def _scrub(message: str, paths: dict[str, Path]) -> str:
    for name, path in paths.items():
        message = message.replace(str(path), name)
    return message


def _too_large(max_bytes: int) -> JSONResponse:
    return JSONResponse({"error": f"request too large: over the server's limit of {max_bytes / 2**20:g} MB"},
                        status_code=413)


class _BodyLimit:
    """ASGI middleware: refuse HTTP request bodies over ``max_bytes`` (by header, else while streaming)."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await _too_large(self.max_bytes)(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge()
            return message

        async def tracked_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except BodyTooLarge:
            if not started:
                await _too_large(self.max_bytes)(scope, receive, send)


def _same_origin(ws: WebSocket) -> bool:
    """A browser's WebSocket from another site carries its Origin: only the page's own is let in."""
    origin = ws.headers.get("origin")
    if origin is None:  # not a browser (a script, the benchmark)
        return True
    host = ws.headers.get("host", "")
    return re.sub(r"^https?://", "", origin.rstrip("/")) == host


def serve(predictor: Predictor, host: str = "127.0.0.1", port: int = 8000, limits: ServeLimits = ServeLimits(),
          log_level: str = "info") -> None:
    """Run the app with uvicorn until interrupted.

    Frozen encoders memoise only in training (:mod:`bridge.freeze`): outside it nothing holds
    memory for inputs that rarely repeat, and a benchmark repeating one file times the model.
    """
    import uvicorn

    app = create_app(predictor, limits)
    uvicorn.run(app, host=host, port=port, log_level=log_level, ws_max_size=limits.max_frame_bytes + 64)


__all__ = ["ServeLimits", "create_app", "serve"]
