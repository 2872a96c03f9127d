"""``ganforge serve``: trained runs behind an HTTP API (FastAPI on uvicorn) and a web page.

Endpoints dispatch on the capabilities a family declares, never on its name. Safe by default:
127.0.0.1 unless told otherwise (a non-loopback host needs a token, checked by the command),
Bearer-token auth on every /api call when a token is set, limits on images per request, upload
bytes, pixels and seconds of audio (413/422 with a JSON error that names the limit), images and
audio decoded only after their header passed the limit (PIL's decompression-bomb guard stays on
as well), no request value used as a path, CORS off unless an origin is given.
"""
from __future__ import annotations

import asyncio
import contextlib
import hmac
import io
import json
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Callable, Literal

import numpy as np
import torch
from fastapi import Body, Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Match

from ..data.audio import wav_bytes
from ..errors import GanforgeError
from ..labels import grid_columns, listing
from ..registry import closest
from ..objectives import AUDIO_CAPABILITIES
from ..report.plots import points_png
from .batching import ModelWorker, to_pixels
from .metrics import Metrics

STATIC = ("index.html", "app.js", "style.css")
MEDIA = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".png": "image/png"}
# Swagger UI's files for /docs, served from the swagger-ui-bundle-v2 package instead of FastAPI's
# default CDN, so the docs work offline (FastAPI's "self-hosting" recipe)
DOCS_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")


@dataclass
class Settings:
    token: str | None = None
    max_n: int = 64  # images per request
    max_upload_mb: float = 8.0
    max_pixels: int = 4_000_000  # of an uploaded image
    max_audio_seconds: float = 60.0  # of an uploaded recording
    max_batch: int = 32  # images per forward pass (1: no batching)
    batch_wait_ms: float = 0.0  # 0: batch what queued while the last pass ran, never wait
    cors: str | None = None

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class SampleRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")
    model: str | None = Field(None, description="model name (GET /api/models); default: the first")
    # strict: true is not n=1, nor "5" five (as class)
    n: int = Field(16, ge=1, strict=True, description="number of images (at most the server's --max-n)")
    seed: int = Field(0, ge=0, lt=2**63, strict=True)
    class_: StrictInt | StrictStr | None = Field(None, alias="class", description="conditional models: index or name")
    truncation: float | None = Field(None, strict=True, description="models with the truncation capability, "
                                     "within its range (GET /api/models)")
    format: Literal["png", "npz"] = "png"


class InterpolateRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")
    model: str | None = None
    seed_a: int = Field(0, ge=0, lt=2**63, strict=True)
    seed_b: int = Field(1, ge=0, lt=2**63, strict=True)
    steps: int = Field(8, ge=2, strict=True, description="images along the walk (at most --max-n)")
    class_: StrictInt | StrictStr | None = Field(None, alias="class")  # true is not class 1
    truncation: float | None = Field(None, strict=True)


def describe(name: str, run) -> dict[str, Any]:
    """What GET /api/models says of a model: enough for a client to build its requests."""
    cfg, caps = run.config, run.capabilities
    info: dict[str, Any] = {"name": name, "family": cfg.objective, "capabilities": sorted(caps),
                            "classes": run.class_names, "resolution": cfg.data.resolution,
                            "channels": cfg.data.channels, "step": run.step}
    if "translate" in caps:
        directions = []
        for d in ("AtoB", "BtoA"):
            try:
                directions.append({"direction": d, "channels": run.objective.input_channels(d)})
                run.translate(torch.zeros(1, directions[-1]["channels"], 8, 8), direction=d)
            except GanforgeError:
                directions.pop()
        info["directions"] = directions
    if "upscale" in caps:
        info["scale"] = int(getattr(run.objective, "scale", 1))
    if "truncation" in caps:  # the page's slider: the family's range (BigGAN: thresholds, none above 3)
        lo, hi, default = run.objective.truncation_range
        info["truncation"] = {"min": lo, "max": hi, "step": 0.05, "default": default}
    if run.point_dim is not None:  # samples are points: a scatter plot, or `points` in the npz
        info.update(resolution=None, channels=None, points=run.point_dim)
    if caps & AUDIO_CAPABILITIES:  # the front end (ganforge.metrics.audio.FRONT_END), not images
        from ..metrics.audio import FRONT_END

        info.update(resolution=None, channels=None,
                    audio={key: getattr(cfg.audio, key) for key in FRONT_END})
    if "convert" in caps:
        voices = (cfg.vc.voice_a, cfg.vc.voice_b)
        info["directions"] = [{"direction": "AtoB", "from": voices[0], "to": voices[1]},
                              {"direction": "BtoA", "from": voices[1], "to": voices[0]}]
    return info


def image_values(run) -> int:
    """Pixel values of one generated image (a point sample: its coordinates)."""
    c = run.config.data
    return run.point_dim or c.channels * c.resolution ** 2


def same_front_end(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two described audio models analyze audio alike (a vocoder can voice the other's mels)."""
    return a.get("audio") is not None and a.get("audio") == b.get("audio")


def pixels_png(pixels: torch.Tensor, columns: int, compress_level: int = 1) -> bytes:
    """The PNG of uint8 images [N, C, H, W] laid out as ``make_grid(nrow=columns)`` lays them
    out (2-pixel black padding, grey as RGB), encoded by libpng through torchvision at zlib
    level 1: for a 28x28 image about half of PIL's time (its per-image overhead is mostly
    Python), and level 6 would take about twice as long for a few percent fewer bytes."""
    from torchvision.io import encode_png
    from torchvision.utils import make_grid

    if len(pixels) == 1:  # make_grid of one image is that image, grey as RGB, without its overhead
        grid = pixels[0].expand(3, -1, -1) if pixels.shape[1] == 1 else pixels[0]
    else:
        grid = make_grid(pixels, nrow=columns)
    return encode_png(grid.contiguous(), compression_level=compress_level).numpy().tobytes()


def png_bytes(images: torch.Tensor, columns: int, compress_level: int = 1) -> bytes:
    """The PNG of torchvision's ``save_image(images, nrow=columns, normalize=True,
    value_range=(-1, 1))``, pixel for pixel (``images``: float in [-1, 1], or uint8 pixels that
    ``to_pixels`` gave)."""
    return pixels_png(images if images.dtype == torch.uint8 else to_pixels(images), columns, compress_level)


# How often a long job's request looks for its client having gone away
DISCONNECT_POLL_S = 0.25

# Up to this many values the PNG is encoded on the event loop: for a small image that is cheaper
# than the hand-off to a worker thread and back (28x28: about 0.05 ms against 0.2-0.5 ms under load)
INLINE_PNG_VALUES = 3 * 64 * 64


async def encode_png(images: torch.Tensor, columns: int) -> bytes:
    if images.numel() <= INLINE_PNG_VALUES:
        return png_bytes(images, columns)
    return await run_in_threadpool(png_bytes, images, columns)


def uint8_png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(buf, format="png")
    return buf.getvalue()


def is_small_image(data: bytes) -> bool:
    """Whether the upload's header says it has at most INLINE_PNG_VALUES / 3 pixels (the file
    is not decoded; anything unreadable answers False and is left to decode_upload)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size[0] * img.size[1] <= INLINE_PNG_VALUES // 3
    except Exception:
        return False


async def decode(data: bytes, settings: Settings, mode: str) -> np.ndarray:
    """decode_upload on the event loop for a small image, else on a worker thread."""
    if is_small_image(data):
        return decode_upload(data, settings, mode)
    return await run_in_threadpool(decode_upload, data, settings, mode)


def decode_upload(data: bytes, settings: Settings, mode: str) -> np.ndarray:
    """uint8 [H, W, C] of an uploaded image; 413 over the pixel limit (checked on the header,
    before decoding), 400 when it is not an image."""
    from PIL import Image, UnidentifiedImageError

    from ..data.imageio import normalize

    try:
        with Image.open(io.BytesIO(data)) as img:
            w, h = img.size
            if w * h > settings.max_pixels:
                raise ApiError(413, f"image of {w}x{h} = {w * h} pixels is over the server's limit "
                                    f"--max-pixels {settings.max_pixels}; send a smaller image")
            img = normalize(img, mode)  # upright, 8-bit, transparency on white
            return np.asarray(img).reshape(img.size[1], img.size[0], -1).copy()
    except Image.DecompressionBombError as exc:
        raise ApiError(413, f"image refused by the decompression-bomb guard ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ApiError(400, f"the upload is not a readable image ({type(exc).__name__}); send a PNG, "
                            f"JPEG, WebP or BMP file") from None


async def decode_recording(data: bytes, settings: Settings, rate: int) -> np.ndarray:
    """A mono float32 waveform at ``rate`` of an uploaded recording, decoded on a worker thread
    (ganforge.data.audio.decode_audio, as ``ganforge vocode`` reads a file): 413 past
    --max-audio-seconds (on the header, and while decoding, whatever the header says), 400 when it
    is not audio, 422 when it is empty, silent, not finite or at a sample rate out of range."""
    from ..data.audio import NotAudio, TooLong, decode_audio
    from ..errors import DataError

    try:
        return await run_in_threadpool(decode_audio, data, rate, max_seconds=settings.max_audio_seconds,
                                       limit_name="the server's limit --max-audio-seconds")
    except NotAudio as exc:
        raise ApiError(400, str(exc)) from None
    except TooLong as exc:
        raise ApiError(413, str(exc)) from None
    except DataError as exc:
        raise ApiError(422, str(exc)) from None


class BodyLimit:
    """Refuses request bodies over ``limit`` bytes with 413 before they are read into memory: by
    Content-Length, or, for a streamed (chunked) body, by reading it here up to the limit and
    handing the app what was read (counting inside the app's own reads had let FastAPI turn the
    refusal into a 400 "error parsing the body")."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit():
            if int(length) > self.limit:
                return await self._refuse(send)
            return await self.app(scope, receive, send)  # the server delivers no more than it says
        messages, seen = [], 0
        while True:
            message = await receive()
            messages.append(message)
            seen += len(message.get("body", b""))
            if seen > self.limit:
                return await self._refuse(send)
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        replay = iter(messages)

        async def replayed():
            return next(replay, None) or await receive()

        await self.app(scope, replayed, send)

    async def _refuse(self, send):
        mb = self.limit / 1024 / 1024
        response = JSONResponse({"error": f"request body over the server's limit (--max-upload-mb, "
                                          f"{mb:.3g} MiB with the form); send a smaller file"},
                                status_code=413)
        await response({"type": "http"}, None, send)


class CountRequests:
    """Request count and latency by route and status (plain ASGI: Starlette's BaseHTTPMiddleware
    runs each request through an extra task and memory stream, which cost about a tenth of the
    event loop's time per small request). A request refused before the router saw it (413 of
    BodyLimit, 401 of RequireToken) is counted under the route its path names.

    The outermost layer, it also ends a request that the server's shutdown cancels (a Ctrl-C's
    grace ran out, or a second Ctrl-C): a 503 where no answer had started, and ``on_drop()``,
    instead of a CancelledError that uvicorn logs as an application error with its traceback."""

    def __init__(self, app, metrics: Metrics, routes: list, on_drop: Callable[[], None]):
        self.app, self.metrics, self.routes, self.on_drop = app, metrics, routes, on_drop

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status, started = time.perf_counter(), 500, False

        async def send_status(message):
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except asyncio.CancelledError:  # the server is stopping: the request is dropped, quietly
            self.on_drop()
            status = 503
            if not started:
                with contextlib.suppress(Exception):
                    await JSONResponse({"error": "the server is shutting down; send the request again "
                                                 "once it is back"}, status_code=503)(scope, receive, send)
        finally:
            self.metrics.observe_request(self._route(scope), status, time.perf_counter() - start)

    def _route(self, scope) -> str:
        route = scope.get("route")  # set by the router on this same scope
        if route is None:  # refused before routing: the route the path would have reached
            route = next((r for r in self.routes if isinstance(r, BaseRoute)
                          and r.matches(scope)[0] != Match.NONE), None)
        return getattr(route, "path", "other")


class RequireToken:
    """With --token, every /api/ request without 'Authorization: Bearer <token>' is a 401 before
    anything else happens to it (its body is not read, so a bad body is not a 422 first, and a
    path that does not exist is not a 404). A CORS preflight (OPTIONS) carries no token by design
    and passes on to the CORS layer outside this one."""

    def __init__(self, app, token: str):
        self.app, self.token = app, token.encode()

    async def __call__(self, scope, receive, send):
        if (scope["type"] == "http" and scope["path"].startswith("/api/") and scope["method"] != "OPTIONS"
                and not self.authorized(dict(scope["headers"]).get(b"authorization", b""))):
            return await JSONResponse({"error": UNAUTHORIZED}, status_code=401,
                                      headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
        return await self.app(scope, receive, send)

    def authorized(self, header: bytes) -> bool:
        scheme, _, given = header.strip().partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.token)


UNAUTHORIZED = "missing or wrong token; send the header 'Authorization: Bearer <token>' with the server's --token"

# What an error echoes of a name the request gave (a model, class or vocoder): a 5 MB name is not
# sent back in full
ECHO_CHARS = 60


def echo(name: str) -> str:
    """``'name'`` for an error message, cut to ECHO_CHARS characters."""
    return f"'{name[:ECHO_CHARS]}...'" if len(name) > ECHO_CHARS else f"'{name}'"


def body_message(error: dict[str, Any], example: str) -> str | None:
    """The message for a JSON body that is not a JSON object at all (None for a field's error):
    FastAPI's own names no field ("body: Field required", "6: JSON decode error")."""
    loc, kind, given = tuple(error.get("loc", ())), error.get("type"), error.get("input")
    if kind == "json_invalid":
        at = f" at character {loc[1]}" if len(loc) > 1 else ""
        reason = (error.get("ctx") or {}).get("error", "JSON decode error")
        return f"the request body is not valid JSON ({reason}{at}); send a JSON object, e.g. {example}"
    if loc != ("body",):
        return None
    if kind == "missing":
        return f"the request body is empty; send a JSON object, e.g. {example}"
    if isinstance(given, (bytes, bytearray)):  # not parsed: no JSON content type
        return (f"the request body was not read as JSON; send the header Content-Type: application/json "
                f"with a JSON object, e.g. {example}")
    what = {list: "an array", str: "a string", bool: "true or false", type(None): "null"}.get(type(given), "a number")
    return f"the request body must be a JSON object, not {what}, e.g. {example}"


def create_app(runs: dict[str, Any], settings: Settings | None = None) -> FastAPI:
    """The app for loaded runs (name -> LoadedRun). Its workers start now; ``app.state.close()``
    stops them (uvicorn's shutdown does it)."""
    settings = settings or Settings()
    if not runs:
        raise ValueError("create_app needs at least one model")
    metrics = Metrics()
    workers = {name: ModelWorker(name, run, max_batch=settings.max_batch, wait_ms=settings.batch_wait_ms,
                                 on_batch=metrics.observe_batch)
               for name, run in runs.items()}
    models = {name: describe(name, run) for name, run in runs.items()}
    for info in models.values():  # the served vocoders that can voice a conversion model's mels
        if "convert" in info["capabilities"]:
            info["vocoders"] = [n for n, other in models.items()
                                if "vocode" in other["capabilities"] and same_front_end(info, other)]

    def close():
        for w in workers.values():
            w.close()

    app = FastAPI(title="ganforge", description="Sample, interpolate, translate and upscale with "
                                                "trained ganforge models.",
                  on_shutdown=[close], docs_url=None, redoc_url=None)  # /docs below, assets local
    app.state.close, app.state.workers, app.state.metrics = close, workers, metrics
    app.state.dropped = 0  # requests the server's shutdown cancelled (CountRequests)

    def dropped() -> None:
        app.state.dropped += 1

    # the last added is the outermost: count, then CORS (a 401 or 413 a page can read), the
    # token (before the body is read), the body limit
    # multipart overhead on top of the file itself; the file's own size is checked exactly below
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes + 64 * 1024)
    if settings.token is not None:
        app.add_middleware(RequireToken, token=settings.token)
    if settings.cors:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=[settings.cors], allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"], expose_headers=["X-Ganforge-Waveform"])
    app.add_middleware(CountRequests, metrics=metrics, routes=app.router.routes, on_drop=dropped)

    @app.exception_handler(ApiError)
    async def api_error(request, exc: ApiError):
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(GanforgeError)
    async def ganforge_error(request, exc: GanforgeError):
        return JSONResponse({"error": str(exc)}, status_code=422)

    def example_body(path: str) -> str:
        """A JSON body that works on ``path``, for an error that says what a body should be."""
        capability = path.rsplit("/", 1)[-1]
        fields = {"steps": 8} if capability == "interpolate" else {"n": 4}
        name = next((n for n, r in runs.items() if capability in r.capabilities), None)
        return json.dumps({"model": name, **fields} if name else fields)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc: RequestValidationError):
        first = exc.errors()[0]
        body = body_message(first, example_body(request.url.path))
        if body is not None:
            return JSONResponse({"error": body}, status_code=422)
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        if tuple(first.get("loc", ())) == ("body", "file") and first.get("type") == "missing":
            # a JSON body, or a form without the upload: say how an upload is sent
            return JSONResponse({"error": "file: Field required; send the upload as multipart/form-data, e.g. "
                                          "curl -F model=NAME -F file=@INPUT"}, status_code=422)
        return JSONResponse({"error": f"{where}: {first.get('msg')}"}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request, exc: Exception):  # a bug: still JSON, and the server goes on
        import logging

        logging.getLogger("ganforge.serve").exception("error in %s", request.url.path)
        return JSONResponse({"error": f"internal error ({type(exc).__name__}: {str(exc)[:200]}); the "
                                      f"server log has the traceback"}, status_code=500)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc: StarletteHTTPException):
        if isinstance(exc.__cause__, ClientDisconnect):  # not a bad body: the client left mid-upload
            return JSONResponse({"error": "the client closed the connection during the upload"}, status_code=499)
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    # with a token, OpenAPI declares the Bearer scheme: /docs gets its Authorize button. The token
    # itself is checked by RequireToken, before any body is read; this is its declaration
    bearer = HTTPBearer(auto_error=False, scheme_name="token", description="the server's --token")

    async def no_auth() -> None:
        return None

    async def token_auth(given: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:  # noqa: B008
        return None

    auth = no_auth if settings.token is None else token_auth

    def pick(name: str | None, capability: str):
        # no model named: the first that can do it (the first served may only sample)
        name = name or next((n for n, r in runs.items() if capability in r.capabilities), next(iter(runs)))
        if name not in runs:
            raise ApiError(404, f"unknown model {echo(name)}; this server has: {', '.join(runs)}")
        if capability not in runs[name].capabilities:
            can = ", ".join(sorted(runs[name].capabilities))
            raise ApiError(422, f"model '{name}' cannot {capability}; it can: {can}")
        return name, runs[name]

    def check_count(value: int, what: str) -> None:
        if value > settings.max_n:
            raise ApiError(422, f"{what}={value} is over the server's limit --max-n {settings.max_n}; "
                                f"ask for fewer images")

    def check_options(name: str, class_, truncation) -> None:
        """A class or truncation the model has no use for, said in the API's terms (the run's own
        error names the server's paths and CLI commands)."""
        info = models[name]
        if class_ is not None and not info["classes"]:
            raise ApiError(422, f"model '{name}' is unconditional; leave out 'class'")
        if isinstance(class_, str) and len(class_.strip()) > max(20, *map(len, info["classes"])):
            # no name nor index is this long: the run's error would echo all of it
            raise ApiError(422, f"unknown class {echo(class_)}; valid classes (index or name): "
                                f"{listing(info['classes'])}")
        if truncation is not None and "truncation" not in info:
            raise ApiError(422, f"model '{name}' has no truncation; leave out 'truncation'")
        if truncation is not None:  # the advertised range: past it, every value costs BigGAN a recompute
            lo, hi = info["truncation"]["min"], info["truncation"]["max"]
            if not lo <= truncation <= hi:
                raise ApiError(422, f"truncation {truncation:g} is outside model '{name}''s range {lo:g} to "
                                    f"{hi:g} (GET /api/models); leave it out for untruncated samples")

    async def wait(name: str, kind: str, request: Request | None = None, **params):
        """The model's answer to one request. With ``request`` (a job that costs more than a few
        small images: see ``costly``), a client that goes away meanwhile gives its job up: not yet
        started, the model's thread skips it, so a burst of abandoned requests costs no compute."""
        future = workers[name].submit_async(kind, **params)
        if request is None:
            return await future  # a cancelled request (the server stopping) cancels the future too
        try:
            while True:
                done, _ = await asyncio.wait({future}, timeout=DISCONNECT_POLL_S)
                if done:
                    return future.result()
                if await request.is_disconnected():
                    future.cancel()
                    raise ApiError(499, "the client closed the connection before the answer was ready")
        except asyncio.CancelledError:  # the server is stopping: the model's thread skips the job
            future.cancel()
            raise

    def costly(request: Request, values: int, truncation: float | None = None) -> Request | None:
        """``request`` when the job is worth watching for a client that leaves (``values``: the
        answer's pixel values; a truncation can cost BigGAN a recompute of its statistics); None
        for small ones, whose watch would cost more than their forward pass."""
        return request if values > INLINE_PNG_VALUES or truncation is not None else None

    async def only_fields(request: Request, allowed: tuple[str, ...]) -> None:
        """A form field this endpoint does not take is refused (as JSON bodies refuse unknown keys):
        a misspelt `directon=BtoA` had been ignored, translating AtoB."""
        unknown = sorted(set((await request.form()).keys()) - set(allowed))
        if unknown:
            raise ApiError(422, f"unknown form field {echo(unknown[0])}{closest(unknown[0], allowed)}; this "
                                f"endpoint takes {', '.join(allowed)}")

    async def read_upload(file: UploadFile) -> bytes:
        data = await file.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            raise ApiError(413, f"upload over the server's limit --max-upload-mb {settings.max_upload_mb:g}; "
                                f"send a smaller file")
        return data

    @app.get("/healthz")
    async def healthz():
        alive = all(w.thread.is_alive() for w in workers.values())
        return JSONResponse({"status": "ok" if alive else "degraded", "models": len(runs)},
                            status_code=200 if alive else 503)

    @app.get("/metrics", response_class=PlainTextResponse)  # Prometheus' text format
    async def prometheus():
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/api/models", dependencies=[Depends(auth)])
    async def list_models():
        return {"models": list(models.values()),
                "limits": {"max_n": settings.max_n, "max_upload_mb": settings.max_upload_mb,
                           "max_pixels": settings.max_pixels, "max_audio_seconds": settings.max_audio_seconds}}

    def example(capability: str, **fields) -> dict | None:
        """/docs' example body: this server's first model that can do it (not Swagger's "string")."""
        name = next((n for n, r in runs.items() if capability in r.capabilities), None)
        return None if name is None else {name: {"summary": f"model {name}", "value": {"model": name, **fields}}}

    @app.post("/api/sample", dependencies=[Depends(auth)],
              responses={200: {"content": {"image/png": {}, "application/octet-stream": {}}}})
    async def sample(request: Request,
                     req: SampleRequest = Body(openapi_examples=example("sample", n=4, seed=0))):  # noqa: B008
        name, run = pick(req.model, "sample")
        check_count(req.n, "n")
        check_options(name, req.class_, req.truncation)
        images = await wait(name, "sample", costly(request, req.n * image_values(run), req.truncation),
                            n=req.n, seed=req.seed, labels=req.class_,
                            truncation=req.truncation, pixels=req.format == "png" and run.point_dim is None)
        if req.format == "npz":
            labels = run.sample_labels(req.n, req.class_)
            return Response(await run_in_threadpool(npz_bytes, images, labels, run.point_dim is not None),
                            media_type="application/octet-stream",
                            headers={"Content-Disposition": 'attachment; filename="samples.npz"'})
        if run.point_dim is not None:
            png = await run_in_threadpool(points_png, images, data=run.config.data.name, step=run.step)
            return Response(png, media_type="image/png")
        return Response(await encode_png(images, grid_columns(req.n)), media_type="image/png")

    @app.post("/api/interpolate", dependencies=[Depends(auth)],
              responses={200: {"content": {"image/png": {}}}})
    async def interpolate(request: Request, req: InterpolateRequest = Body(openapi_examples=example(  # noqa: B008
            "interpolate", seed_a=0, seed_b=1, steps=8))):
        name, run = pick(req.model, "interpolate")
        check_count(req.steps, "steps")
        check_options(name, req.class_, req.truncation)
        images = await wait(name, "interpolate", costly(request, req.steps * image_values(run), req.truncation),
                            seed_a=req.seed_a, seed_b=req.seed_b, steps=req.steps,
                            labels=req.class_, truncation=req.truncation, pixels=True)
        return Response(await encode_png(images, req.steps), media_type="image/png")

    @app.post("/api/translate", dependencies=[Depends(auth)], responses={200: {"content": {"image/png": {}}}})
    async def translate(request: Request, file: Annotated[UploadFile, File()],
                        model: Annotated[str | None, Form()] = None,
                        direction: Annotated[Literal["AtoB", "BtoA"], Form()] = "AtoB"):
        await only_fields(request, ('file', 'model', 'direction'))
        name, run = pick(model, "translate")
        ok = {d["direction"]: d["channels"] for d in models[name]["directions"]}
        if direction not in ok:
            raise ApiError(422, f"model '{name}' translates {', '.join(ok)} only, not {direction}")
        data = await read_upload(file)
        array = await decode(data, settings, "L" if ok[direction] == 1 else "RGB")
        x = torch.from_numpy(array).permute(2, 0, 1)[None].float() / 127.5 - 1
        out = await wait(name, "translate", costly(request, x.numel()), image=x, direction=direction,
                         pixels=True)
        return Response(await encode_png(out, 1), media_type="image/png")

    @app.post("/api/upscale", dependencies=[Depends(auth)], responses={200: {"content": {"image/png": {}}}})
    async def upscale(request: Request, file: Annotated[UploadFile, File()],
                      model: Annotated[str | None, Form()] = None):
        await only_fields(request, ('file', 'model'))
        name, run = pick(model, "upscale")
        data = await read_upload(file)
        array = await decode(data, settings, "RGB")
        scale = int(models[name].get("scale", 1))
        h, w = array.shape[:2]
        if h * w * scale * scale > settings.max_pixels:  # the output is what costs: scale^2 the work
            raise ApiError(413, f"upscaling {w}x{h} by {scale} gives {w * scale}x{h * scale} = "
                                f"{w * h * scale * scale} pixels, over the server's limit --max-pixels "
                                f"{settings.max_pixels}; send an image of at most "
                                f"{settings.max_pixels // (scale * scale)} pixels")
        out = await wait(name, "upscale", request, image=array)
        return Response(await run_in_threadpool(uint8_png, out), media_type="image/png")

    async def recording(file: UploadFile, run) -> torch.Tensor:
        return torch.from_numpy(await decode_recording(await read_upload(file), settings, run.config.audio.rate))

    @app.post("/api/vocode", dependencies=[Depends(auth)], responses={200: {"content": {"audio/wav": {}}}})
    async def vocode(request: Request, file: Annotated[UploadFile, File()],
                     model: Annotated[str | None, Form()] = None):
        """A recording analyzed to the model's log-mel and voiced again by the vocoder: a WAV at the
        model's rate, as long as the recording (``ganforge vocode``)."""
        await only_fields(request, ('file', 'model'))
        name, run = pick(model, "vocode")
        wave = await recording(file, run)
        out = await wait(name, "vocode", request, wave=wave)
        return Response(await run_in_threadpool(wav_bytes, out, run.config.audio.rate), media_type="audio/wav")

    @app.post("/api/convert", dependencies=[Depends(auth)], responses={200: {"content": {"audio/wav": {}}}})
    async def convert(request: Request, file: Annotated[UploadFile, File()],
                      model: Annotated[str | None, Form()] = None,
                      direction: Annotated[Literal["AtoB", "BtoA"], Form()] = "AtoB",
                      vocoder: Annotated[str | None, Form(description="a served vocoder model (GET "
                                                          "/api/models: the model's vocoders); "
                                                          "default Griffin-Lim")] = None):
        """A recording of one voice in the other voice (``ganforge convert``): a WAV at the model's
        rate, as long as the recording; the header X-Ganforge-Waveform says what made the waveform."""
        await only_fields(request, ('file', 'model', 'direction', 'vocoder'))
        name, run = pick(model, "convert")
        if vocoder and vocoder not in models[name]["vocoders"]:
            can = ", ".join(models[name]["vocoders"]) or "none (Griffin-Lim only)"
            raise ApiError(422, f"vocoder {echo(vocoder)} is not a served vocoder with the front end of model "
                                f"'{name}'; the ones that are: {can}")
        wave = await recording(file, run)
        if vocoder:  # the converted mel, then the vocoder's own worker voices it
            mel = await wait(name, "convert", request, wave=wave, direction=direction)
            out = await wait(vocoder, "vocode", request, mel=mel, length=len(wave))
        else:  # Griffin-Lim on the conversion model's worker: one recording at a time
            out = await wait(name, "convert", request, wave=wave, direction=direction, griffin_lim=True)
        return Response(await run_in_threadpool(wav_bytes, out, run.config.audio.rate), media_type="audio/wav",
                        headers={"X-Ganforge-Waveform": f"vocoder {vocoder}" if vocoder else "griffin-lim"})

    def static(filename: str):
        body = resources.files("ganforge.serve").joinpath("static", filename).read_bytes()
        return Response(body, media_type=MEDIA["." + filename.rsplit(".", 1)[1]])

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon():  # none: an empty answer, not a 404 in the browser's console on every load
        return Response(status_code=204)

    @app.get("/", include_in_schema=False)
    async def index():
        return static("index.html")

    for fname in STATIC[1:]:  # a fixed list: no request value names a file
        app.add_api_route(f"/static/{fname}", lambda f=fname: static(f), include_in_schema=False)
    add_docs(app)
    return app


def add_docs(app: FastAPI) -> None:
    """Swagger UI at /docs with its script, style and icon under /docs-assets/ (a fixed list)."""
    from fastapi.openapi.docs import get_swagger_ui_html

    try:
        import swagger_ui_bundle
    except ImportError:
        swagger_ui_bundle = None

    @app.get("/docs", include_in_schema=False)
    async def docs():
        if swagger_ui_bundle is None:
            raise ApiError(404, "API docs need the swagger-ui-bundle-v2 package: pip install "
                                "'ganforge[serve]'; /openapi.json has the same description")
        return get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} API",
                                   swagger_js_url=f"/docs-assets/{DOCS_ASSETS[0]}",
                                   swagger_css_url=f"/docs-assets/{DOCS_ASSETS[1]}",
                                   swagger_favicon_url=f"/docs-assets/{DOCS_ASSETS[2]}",
                                   swagger_ui_parameters={"validatorUrl": None})  # no external badge

    def asset(filename: str):
        if swagger_ui_bundle is None:
            raise ApiError(404, "API docs need the swagger-ui-bundle-v2 package")
        body = (Path(swagger_ui_bundle.swagger_ui_path) / filename).read_bytes()
        return Response(body, media_type=MEDIA["." + filename.rsplit(".", 1)[1]],
                        headers={"Cache-Control": "public, max-age=86400"})

    for fname in DOCS_ASSETS:
        app.add_api_route(f"/docs-assets/{fname}", lambda f=fname: asset(f), include_in_schema=False)


def npz_bytes(images: torch.Tensor, labels, points: bool = False) -> bytes:
    """``images`` uint8 [N, H, W, C] (and ``labels``), or for a point model ``points`` float32 [N, D],
    as ``ganforge sample --out x.npz`` writes them."""
    from ..api import to_uint8_hwc

    buf = io.BytesIO()
    extra = {} if labels is None else {"labels": labels.numpy()}
    if points:
        np.savez_compressed(buf, points=images.numpy().astype(np.float32), **extra)
    else:
        np.savez_compressed(buf, images=to_uint8_hwc(images), **extra)
    return buf.getvalue()
