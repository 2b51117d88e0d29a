"""The voice → face web page (`s2f serve`): give a voice clip, see the face each registered family's champion draws.

Why a small page on FastAPI rather than a UI library: FastAPI and uvicorn are already in the lock (Prefect's server
pins fastapi 0.150.0), while Gradio needs a newer FastAPI than Prefect's server accepts; one HTML file with a few
lines of script needs no build step, no CDN and works offline.

Routes:
- `GET /`: the page (`page.html`): a file picker (audio or video) and a 6 s recorder (the browser's MediaRecorder);
- `GET /api/models`: the families served, with their versions and what they were trained on;
- `POST /api/faces`: the clip's bytes as the body → every family's face as a base64 PNG, or HTTP 4xx with the
  reason (`s2f.inference.REASONS`) when the clip is refused. The body is read at most `MAX_BYTES` + 1 bytes far, so
  the cost of a request is bounded by what it decodes to (`s2f.inference.decode_audio`), never by what is sent.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from importlib.resources import files
from urllib.parse import unquote

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse

from s2f.inference import MAX_BYTES, AudioInputError, decode_audio, png_bytes

STATUS = {"too_large": 413}   # every other refusal is 400: the clip, not the server, is at fault


@dataclass(frozen=True)
class ServedModel:
    """A family's champion as the page shows it."""

    name: str
    version: str
    model: object                 # s2f.inference.Speech2Face or GanFaces: `.faces(waves)` → (N, S, S, 3) uint8
    note: str | None = None       # e.g. trained on the synthetic demo corpus (s2f.registry.trained_on_note)

    def describe(self) -> dict:
        return {"name": self.name, "version": self.version, "note": self.note}


def faces_for(models: list[ServedModel], data: bytes, name: str) -> dict:
    """Every model's face for one clip (raises AudioInputError when the clip is refused)."""
    wave = decode_audio(data, name)
    out = []
    for served in models:
        started = time.perf_counter()
        face = served.model.faces([wave])[0]
        out.append(served.describe() | {"png": base64.b64encode(png_bytes(face)).decode(),
                                        "size": int(face.shape[0]),
                                        "seconds": round(time.perf_counter() - started, 3)})
    return {"input": name, "voice_seconds": round(len(wave) / 16_000, 2), "faces": out}


def create_app(models: list[ServedModel]) -> FastAPI:
    """The FastAPI app serving the page and its two API routes for `models`. (FastAPI reads the routes' annotations
    from this module's globals: `Request` must be imported at the top, not here.)"""
    page = files("s2f.serving").joinpath("page.html").read_text(encoding="utf-8")
    app = FastAPI(title="speech2face", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/api/models")
    def served_models() -> dict:
        return {"models": [m.describe() for m in models]}

    @app.post("/api/faces")
    async def faces(request: Request) -> JSONResponse:
        name = unquote(request.headers.get("x-file-name", ""))[:200] or "upload"  # the page URL-encodes it
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BYTES:
                err = AudioInputError(name, "too_large", f"more than {MAX_BYTES >> 20} MiB")
                return JSONResponse(_refusal(err), status_code=413)
        try:
            return JSONResponse(await run_in_threadpool(faces_for, models, bytes(body), name))
        except AudioInputError as err:
            return JSONResponse(_refusal(err), status_code=STATUS.get(err.reason, 400))

    return app


def _refusal(err: AudioInputError) -> dict:
    return {"reason": err.reason, "message": str(err)}
