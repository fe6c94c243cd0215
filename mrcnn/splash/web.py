"""A local web page for the color splash, and its JSON API (``mrcnn serve``).

The page (``mrcnn/splash/static/serve/``: plain HTML, CSS and JavaScript, nothing fetched from
elsewhere, so it works offline) takes a photo by drag and drop or a file chooser, shows the
detections and the color splash side by side, lets the user change the score threshold, the
classes and the effect, and downloads the splash. The model work is
:class:`mrcnn.splash.service.SplashService`'s; this module is the HTTP side:

=============================================  ================================================
``GET  /api/info``                             class names, effects, thresholds, upload limit
``POST /api/uploads`` (multipart ``image``)    detect once; 201 with ``id``, ``file_name``,
                                               ``width``, ``height`` and ``detections`` (COCO
                                               results down to the score floor)
``GET  /api/uploads/{id}/detections.json``     COCO results of that upload
``GET  /api/uploads/{id}/detections.jpg``      the detections drawn on the photo
``GET  /api/uploads/{id}/splash.png``          the color splash
``POST /api/detect`` (multipart ``image``)     COCO results of one photo, nothing kept
=============================================  ================================================

The three GET routes under an upload and ``/api/detect`` take ``min_score`` (default: the
model's DETECTION_MIN_CONFIDENCE) and ``classes`` (comma-separated class ids; absent: every
class; empty: none); ``splash.png`` also takes ``effect`` (gray, blur, dim or color). Errors are
JSON ``{"error": "..."}``: 400 (empty file, bad parameter, no ``image`` field), 404 (unknown or
expired upload), 411 (no Content-Length), 413 (over the upload limit), 415 (not an image).

``starlette``, ``uvicorn`` and ``python-multipart`` (the ``serve`` extra) are imported only when
an app is built, so that ``mrcnn serve`` can say how to install them.
"""

from __future__ import annotations

import importlib.util
import re
import socket
from pathlib import Path

from mrcnn.splash.service import SplashService, UploadError, too_large_message

__all__ = ["STATIC_DIR", "check_address", "create_app", "require_web_stack", "run_server"]

#: The page's files.
STATIC_DIR = Path(__file__).resolve().parent / "static" / "serve"
#: module -> pip package of the web stack (the ``serve`` extra).
WEB_STACK = {"starlette": "starlette", "uvicorn": "uvicorn", "multipart": "python-multipart"}
#: Room for the multipart envelope around the photo in a request's Content-Length.
MULTIPART_OVERHEAD = 64 * 1024


def require_web_stack() -> None:
    """Raise RuntimeError saying what to install when a package of the web stack is missing."""
    missing = [pip for module, pip in WEB_STACK.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise RuntimeError(
            f"the web page needs {', '.join(missing)}: pip install 'mrcnn[serve]' "
            f"(or pip install {' '.join(WEB_STACK.values())})"
        )


def create_app(service: SplashService):
    """A Starlette app serving the page at ``/`` and the API under ``/api`` (module doc)."""
    require_web_stack()
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    routes = [
        *_photo_routes(service),
        *_upload_file_routes(service),
        # Last, so that it does not shadow the API.
        Mount("/", StaticFiles(directory=STATIC_DIR, html=True)),
    ]
    handlers = {UploadError: _upload_error, HTTPException: _http_error}
    return Starlette(routes=routes, exception_handlers=handlers)


def _photo_routes(service: SplashService) -> list:
    """The routes that take a photo or describe the service: /api/info, /api/uploads and
    /api/detect. The model work runs in the thread pool, off the event loop."""
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def info(request):
        return JSONResponse(service.info())

    async def new_upload(request):
        data, name = await _read_photo(request, service.max_upload_bytes)
        upload_id, upload = await run_in_threadpool(service.analyze, data, name)
        height, width = upload.image.shape[:2]
        body = {
            "id": upload_id,
            "file_name": name,
            "width": width,
            "height": height,
            "detections": upload.detections,
        }
        return JSONResponse(body, status_code=201)

    async def detect(request):
        data, name = await _read_photo(request, service.max_upload_bytes)
        min_score, classes = _filters(request)
        upload = await run_in_threadpool(service.detect, data, name)
        return JSONResponse(service.results(upload, service.select(upload, min_score, classes)))

    return [
        Route("/api/info", info),
        Route("/api/uploads", new_upload, methods=["POST"]),
        Route("/api/detect", detect, methods=["POST"]),
    ]


def _upload_file_routes(service: SplashService) -> list:
    """The GET routes of a kept upload: its detections as JSON, drawn as a JPEG, and its
    splash as a PNG, each for the request's ``min_score`` and ``classes``."""
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    # Plain functions: Starlette runs them in its thread pool, off the event loop.
    def detections_json(request):
        upload, keep = _selected(request)
        return JSONResponse(service.results(upload, keep))

    def detections_jpg(request):
        upload, keep = _selected(request)
        return _picture(service.drawing(upload, keep), upload.file_name, "detections.jpg")

    def splash_png(request):
        upload, keep = _selected(request)
        effect = request.query_params.get("effect", "gray")
        return _picture(service.splash(upload, keep, effect), upload.file_name, "splash.png")

    def _selected(request):
        upload = service.get(request.path_params["upload_id"])
        return upload, service.select(upload, *_filters(request))

    upload_path = "/api/uploads/{upload_id:str}"
    return [
        Route(f"{upload_path}/detections.json", detections_json),
        Route(f"{upload_path}/detections.jpg", detections_jpg),
        Route(f"{upload_path}/splash.png", splash_png),
    ]


def _picture(data: bytes, file_name: str, suffix: str):
    """A PNG or JPEG response (by ``suffix``) named after the photo, shown inline and not
    cached."""
    from starlette.responses import Response

    name = f"{_safe_stem(file_name)}_{suffix}"
    headers = {"Content-Disposition": f'inline; filename="{name}"', "Cache-Control": "no-store"}
    media_type = "image/png" if suffix.endswith(".png") else "image/jpeg"
    return Response(data, media_type=media_type, headers=headers)


async def _upload_error(request, error: UploadError):
    from starlette.responses import JSONResponse

    return JSONResponse({"error": str(error)}, status_code=error.status)


async def _http_error(request, error):
    """Starlette's own errors (unknown route, wrong method) as JSON, like the API's."""
    from starlette.responses import JSONResponse

    return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)


async def _read_photo(request, limit: int) -> tuple[bytes, str]:
    """The bytes and file name of the multipart field ``image`` of a request.

    The Content-Length is checked before anything is read, so an oversized upload is refused
    without being stored.
    """
    length = request.headers.get("content-length")
    if length is None:
        raise UploadError("send the photo with a Content-Length header (not chunked)", 411)
    if not length.isdigit():
        raise UploadError(f"Content-Length {length!r} is not a byte count", 400)
    if int(length) > limit + MULTIPART_OVERHEAD:
        raise UploadError(too_large_message("the upload", int(length), limit), 413)
    form = await request.form(max_files=1, max_fields=8)
    try:
        photo = form.get("image")
        if photo is None or isinstance(photo, str):
            raise UploadError(
                "send the photo as the multipart/form-data file field 'image' "
                "(curl -F image=@photo.jpg ...)",
                400,
            )
        return await photo.read(), photo.filename or "upload"
    finally:
        await form.close()


def _filters(request) -> tuple[float | None, list[int] | None]:
    """``min_score`` and ``classes`` of a request's query (None where absent)."""
    query = request.query_params
    min_score = query.get("min_score")
    if min_score is not None:
        try:
            min_score = float(min_score)
        except ValueError:
            raise UploadError(f"min_score={min_score!r} is not a number", 400) from None
    classes = query.get("classes")
    if classes is not None:
        items = [c.strip() for c in classes.split(",") if c.strip()]
        if not all(c.isdigit() for c in items):
            raise UploadError(f"classes={classes!r}: give class ids, e.g. classes=1,3", 400)
        classes = [int(c) for c in items]
    return min_score, classes


def _safe_stem(file_name: str) -> str:
    """The file name's stem with anything but letters, digits, '.', '-' and '_' replaced."""
    return re.sub(r"[^\w.-]", "_", Path(file_name).stem, flags=re.ASCII) or "photo"


def check_address(host: str, port: int) -> None:
    """Raise RuntimeError when ``host:port`` cannot be listened on (in use, unknown host)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as error:
        raise RuntimeError(
            f"cannot listen on {host}:{port} ({error.strerror or error}); "
            "is another server using it? choose another with --port"
        ) from error


def run_server(app, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Serve ``app`` with uvicorn, one worker process, until interrupted."""
    require_web_stack()
    import uvicorn

    uvicorn.run(app, host=host, port=port, workers=1, log_level=log_level)
