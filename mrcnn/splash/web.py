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
``GET  /api/uploads/{id}/annotations.json``    the detections as a VIA 2 project or a LabelMe
                                               file (``format=via`` or ``labelme``), to edit
``POST /api/detect`` (multipart ``image``)     COCO results of one photo, nothing kept
=============================================  ================================================

The GET routes under an upload and ``/api/detect`` take ``min_score`` (default: the model's
DETECTION_MIN_CONFIDENCE) and ``classes`` (comma-separated class ids; absent: every class;
empty: none); ``splash.png`` also takes ``effect`` (gray, blur, dim or color), and
``annotations.json`` ``format`` (required). Parameters are parsed strictly: a parameter a route
does not take, one given twice, a score that is not a plain decimal number and a class id that
is not ASCII digits are refused. Errors are JSON ``{"error": "..."}``: 400 (empty file, bad
parameter, no ``image`` field), 403 (a foreign Host or a cross-origin API request, below), 404
(unknown or expired upload), 411 (no Content-Length), 413 (over the upload or pixel limit, the
latter read from the file's header before decoding), 415 (not an image).

Every request must name this server in its Host header (:class:`HostPolicy`), so that a web
page whose name resolves to this computer (DNS rebinding) gets 403. API requests must also come
from the page itself: an ``Origin`` header, when present, must be the page's own origin, and a
``Sec-Fetch-Site`` header, when present, must be ``same-origin`` or ``none``; so another site
cannot post photos from a visitor's browser (CSRF), while ``curl`` (which sends neither) and the
page's own requests pass.

``starlette``, ``uvicorn`` and ``python-multipart`` (the ``serve`` extra) are imported only when
an app is built, so that ``mrcnn serve`` can say how to install them.
"""

from __future__ import annotations

import errno
import importlib.util
import ipaddress
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from mrcnn.splash.service import (
    ANNOTATION_FORMATS,
    SplashService,
    UploadError,
    photo_file_name,
)

__all__ = [
    "LOOPBACK_NAMES",
    "STATIC_DIR",
    "WILDCARD_HOSTS",
    "HostPolicy",
    "RequestGuard",
    "check_address",
    "create_app",
    "request_refusal",
    "require_web_stack",
    "run_server",
]

#: The page's files.
STATIC_DIR = Path(__file__).resolve().parent / "static" / "serve"
#: module -> pip package of the web stack (the ``serve`` extra).
WEB_STACK = {"starlette": "starlette", "uvicorn": "uvicorn", "multipart": "python-multipart"}
#: Room for the multipart envelope around the photo in a request's Content-Length.
MULTIPART_OVERHEAD = 64 * 1024
#: Host names of this computer's loopback interface, always accepted.
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
#: --host values that listen on every interface.
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
#: A Host header: a name or IPv4 address, or a bracketed IPv6 address; then an optional port.
_HOST_HEADER = re.compile(r"(?:\[(?P<ip6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9._-]+))(?::[0-9]{1,5})?")
#: Sec-Fetch-Site values of requests the API answers: the page's own, and typed URLs.
SAME_ORIGIN_FETCHES = ("same-origin", "none")
#: A min_score: a plain decimal number (no sign, exponent, spaces, nan or inf).
_DECIMAL = re.compile(r"[0-9]{1,8}(?:\.[0-9]{0,16})?|\.[0-9]{1,16}")
#: A class id: ASCII digits.
_CLASS_ID = re.compile(r"[0-9]{1,9}")
#: The query parameters of the routes that filter detections.
FILTER_PARAMETERS = ("min_score", "classes")


def require_web_stack() -> None:
    """Raise RuntimeError saying what to install when a package of the web stack is missing."""
    missing = [pip for module, pip in WEB_STACK.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise RuntimeError(
            f"the web page needs {', '.join(missing)}: pip install 'mrcnn[serve]' "
            f"(or pip install {' '.join(WEB_STACK.values())})"
        )


def create_app(service: SplashService, host: str = "127.0.0.1", allow_hosts: Sequence[str] = ()):
    """A Starlette app serving the page at ``/`` and the API under ``/api`` (module doc).

    ``host`` is the address the server listens on and ``allow_hosts`` further names it answers
    to (:meth:`HostPolicy.for_address`); requests naming any other Host get 403.
    """
    require_web_stack()
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    policy = HostPolicy.for_address(host, allow_hosts)

    routes = [
        *_photo_routes(service),
        *_upload_file_routes(service),
        # Last, so that it does not shadow the API.
        Mount("/", StaticFiles(directory=STATIC_DIR, html=True)),
    ]
    handlers = {UploadError: _upload_error, HTTPException: _http_error}
    guard = Middleware(RequestGuard, policy=policy)
    return Starlette(routes=routes, exception_handlers=handlers, middleware=[guard])


def _photo_routes(service: SplashService) -> list:
    """The routes that take a photo or describe the service: /api/info, /api/uploads and
    /api/detect. The model work runs in the thread pool, off the event loop."""
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def info(request):
        _query(request, ())
        return JSONResponse(service.info())

    async def new_upload(request):
        _query(request, ())
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
        min_score, classes = _filters(_query(request, FILTER_PARAMETERS))
        data, name = await _read_photo(request, service.max_upload_bytes)
        upload = await run_in_threadpool(service.detect, data, name)
        return JSONResponse(service.results(upload, service.select(upload, min_score, classes)))

    return [
        Route("/api/info", info),
        Route("/api/uploads", new_upload, methods=["POST"]),
        Route("/api/detect", detect, methods=["POST"]),
    ]


def _upload_file_routes(service: SplashService) -> list:
    """The GET routes of a kept upload: its detections as JSON, drawn as a JPEG, as an
    annotation file to download, and its splash as a PNG, each for the request's ``min_score``
    and ``classes``."""
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    # Plain functions: Starlette runs them in its thread pool, off the event loop.
    def detections_json(request):
        upload, keep = _selected(request)
        return JSONResponse(service.results(upload, keep))

    def detections_jpg(request):
        upload, keep = _selected(request)
        return _picture(service.drawing(upload, keep), upload.file_name, "detections.jpg")

    def splash_png(request):
        upload, keep = _selected(request, ("effect",))
        effect = request.query_params.get("effect", "gray")
        return _picture(service.splash(upload, keep, effect), upload.file_name, "splash.png")

    def annotations(request):
        upload, keep = _selected(request, ("format",))
        format_name = request.query_params.get("format")
        data = service.annotations(upload, keep, format_name)
        suffix = ANNOTATION_FORMATS[format_name]
        name = Path(photo_file_name(upload.file_name)).stem + suffix  # LabelMe finds it so
        headers = {
            "Content-Disposition": _attachment(name, _safe_stem(upload.file_name) + suffix),
            "Cache-Control": "no-store",
        }
        return Response(data, media_type="application/json", headers=headers)

    def _selected(request, extra: tuple[str, ...] = ()):
        filters = _filters(_query(request, FILTER_PARAMETERS + extra))
        upload = service.get(request.path_params["upload_id"])
        return upload, service.select(upload, *filters)

    upload_path = "/api/uploads/{upload_id:str}"
    return [
        Route(f"{upload_path}/detections.json", detections_json),
        Route(f"{upload_path}/detections.jpg", detections_jpg),
        Route(f"{upload_path}/splash.png", splash_png),
        Route(f"{upload_path}/annotations.json", annotations),
    ]


def _picture(data: bytes, file_name: str, suffix: str):
    """A PNG or JPEG response (by ``suffix``) named after the photo, shown inline and not
    cached."""
    from starlette.responses import Response

    name = f"{_safe_stem(file_name)}_{suffix}"
    headers = {"Content-Disposition": f'inline; filename="{name}"', "Cache-Control": "no-store"}
    media_type = "image/png" if suffix.endswith(".png") else "image/jpeg"
    return Response(data, media_type=media_type, headers=headers)


def _attachment(name: str, ascii_name: str) -> str:
    """A Content-Disposition saving the file as ``name`` (RFC 6266's ``filename*``, any
    characters), with ``ascii_name`` for clients that read ``filename`` only."""
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


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
    if not re.fullmatch(r"[0-9]{1,20}", length):
        raise UploadError(f"Content-Length {length!r} is not a byte count", 400)
    if int(length) > limit + MULTIPART_OVERHEAD:
        raise UploadError(
            f"the request: {int(length)} bytes is over the {limit + MULTIPART_OVERHEAD} bytes "
            f"allowed (the upload limit of {limit} bytes, {limit / 2**20:.1f} MiB, plus "
            f"{MULTIPART_OVERHEAD} for the form); send a smaller photo (or start the server "
            "with a larger --max-upload-mb)",
            413,
        )
    form = await request.form(max_files=1, max_fields=8)
    try:
        return await _photo_field(form)
    finally:
        await form.close()


async def _photo_field(form) -> tuple[bytes, str]:
    """The bytes and file name of the form's file field ``image``, its only field."""
    how = "send the photo as the multipart/form-data file field 'image' (curl -F image=@photo.jpg)"
    other = next((key for key in form.keys() if key != "image"), None)
    if other is not None:
        raise UploadError(f"unknown form field {other!r}: {how}", 400)
    photos = form.getlist("image")
    if len(photos) != 1 or isinstance(photos[0], str):
        raise UploadError(how, 400)
    return await photos[0].read(), photos[0].filename or "upload"


def _query(request, names: tuple[str, ...]) -> dict[str, str]:
    """The request's query parameters; UploadError 400 for one the route does not take
    (``names``) and for one given more than once."""
    items = request.query_params.multi_items()
    keys = [key for key, _ in items]
    for key in keys:
        if key not in names:
            takes = f"takes {', '.join(names)}" if names else "takes no parameters"
            raise UploadError(f"unknown parameter {key!r}: {request.url.path} {takes}", 400)
        if keys.count(key) > 1:
            count = keys.count(key)
            raise UploadError(f"parameter {key!r} is given {count} times; give it once", 400)
    return dict(items)


def _filters(query: dict[str, str]) -> tuple[float | None, list[int] | None]:
    """``min_score`` and ``classes`` of a query (None where absent), parsed strictly;
    UploadError 400 naming the parameter for a bad value."""
    min_score = query.get("min_score")
    if min_score is not None:
        if not _DECIMAL.fullmatch(min_score):
            raise UploadError(f"min_score={min_score!r}: give a decimal number, e.g. 0.5", 400)
        min_score = float(min_score)
    classes = query.get("classes")
    if classes is not None:
        items = classes.split(",") if classes else []
        if not all(_CLASS_ID.fullmatch(item) for item in items):
            raise UploadError(
                f"classes={classes!r}: give comma-separated class ids, e.g. classes=1,3 "
                "(classes= for none)",
                400,
            )
        classes = [int(item) for item in items]
    return min_score, classes


def _safe_stem(file_name: str) -> str:
    """The file name's stem with anything but letters, digits, '.', '-' and '_' replaced."""
    return re.sub(r"[^\w.-]", "_", Path(file_name).stem, flags=re.ASCII) or "photo"


# ------------------------------------------------------------------------------------------------
# Who may ask: Host names, and same-origin API requests
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HostPolicy:
    """The Host names a server answers to.

    Attributes:
        names: lower-case host names and IP addresses (IPv6 without brackets).
        any_ip: whether any IP address is accepted too (the server listens on every interface,
            so an address typed in a browser is one of this computer's; a DNS-rebinding page
            always comes by a name, never by an address).
    """

    names: frozenset[str]
    any_ip: bool = False

    @classmethod
    def for_address(cls, host: str, allow_hosts: Sequence[str] = ()) -> HostPolicy:
        """The policy of a server listening on ``host``: the loopback names, ``host`` itself
        (unless it is every interface: then any IP address), and ``allow_hosts``.

        Raises ValueError for an allowed name that is not a bare host name or IP address.
        """
        allowed = [_bare_host(name) for name in allow_hosts]
        for name, bare in zip(allow_hosts, allowed, strict=True):
            if bare is None:
                raise ValueError(
                    f"--allow-host {name!r}: give a host name or IP address without scheme or "
                    "port, e.g. --allow-host mypc.local"
                )
        wildcard = host in WILDCARD_HOSTS
        names = {*(_bare_host(n) for n in LOOPBACK_NAMES), *allowed}
        if not wildcard:
            names.add(_bare_host(host) or host.lower())
        return cls(frozenset(names), any_ip=wildcard)

    def refusal(self, host: str | None) -> str | None:
        """Why a request with that Host header is refused, or None when it is accepted."""
        if not host:
            return "the request has no Host header; send one naming this server (Host: 127.0.0.1)"
        match = _HOST_HEADER.fullmatch(host.lower())
        name = match and _bare_host(match["name"] or f"[{match['ip6']}]")
        if name and (name in self.names or (self.any_ip and _is_ip(name))):
            return None
        accepted = ", ".join(f"[{n}]" if ":" in n else n for n in sorted(self.names))
        if self.any_ip:
            accepted += " and any IP address of this computer"
        return (
            f"Host {host!r} is not a name of this server (it answers to {accepted}); open the "
            "page by one of those, or start mrcnn serve with --allow-host NAME"
        )


def _bare_host(name: str) -> str | None:
    """A host name in lower case, or an IP address in its canonical form (IPv6 unbracketed);
    None when ``name`` is neither (a port, a scheme, a path or odd characters in it)."""
    bare = name.lower()
    bracketed = bare.startswith("[") and bare.endswith("]")
    bare = bare[1:-1] if bracketed else bare
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:  # a name; in brackets, only an IPv6 address
        return bare if not bracketed and re.fullmatch(r"[a-z0-9._-]+", bare) else None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def request_refusal(scope: dict, policy: HostPolicy) -> str | None:
    """Why an HTTP request is refused (403), or None: a Host the server does not answer to,
    and, for the API, an Origin other than the page's own or a cross-site Sec-Fetch-Site."""
    from starlette.datastructures import Headers

    headers = Headers(scope=scope)
    hosts = headers.getlist("host")
    if len(hosts) > 1:
        return f"the request has {len(hosts)} Host headers; send one naming this server"
    reason = policy.refusal(hosts[0] if hosts else None)
    path = scope["path"]
    if reason or not (path == "/api" or path.startswith("/api/")):
        return reason
    own = f"{scope['scheme']}://{hosts[0]}".lower()
    origins = headers.getlist("origin")
    if origins and (len(origins) > 1 or origins[0].lower() != own):
        return (
            f"cross-origin request refused: Origin {', '.join(origins)!r} is not this page's "
            f"origin {own!r}; use the page itself, or a client that sends no Origin (curl)"
        )
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site.lower() not in SAME_ORIGIN_FETCHES:
        return (
            f"cross-site request refused (Sec-Fetch-Site: {fetch_site}); the API answers only "
            "the page itself and local clients such as curl"
        )
    return None


class RequestGuard:
    """ASGI middleware answering 403 ``{"error": reason}`` to the requests
    :func:`request_refusal` refuses, before they reach a route."""

    def __init__(self, app, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope, receive, send) -> None:
        reason = request_refusal(scope, self.policy) if scope["type"] == "http" else None
        if reason is None:
            await self.app(scope, receive, send)
            return
        from starlette.responses import JSONResponse

        await JSONResponse({"error": reason}, status_code=403)(scope, receive, send)


# ------------------------------------------------------------------------------------------------
# Listening
# ------------------------------------------------------------------------------------------------
def check_address(host: str, port: int) -> None:
    """Raise RuntimeError when ``host:port`` cannot be listened on: a name that does not
    resolve, an address not of this computer, a port in use or not permitted."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise RuntimeError(
            f"cannot listen on {host}:{port}: the name {host!r} does not resolve "
            f"({error.strerror or error}); give --host an address of this computer, e.g. "
            "127.0.0.1 (this computer only) or 0.0.0.0 (the network)"
        ) from error
    family, kind, proto, _, address = infos[0]
    try:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as error:
        raise RuntimeError(f"cannot listen on {host}:{port} ({_bind_advice(error)})") from error


def _bind_advice(error: OSError) -> str:
    """What a failed bind means, and what to do about it."""
    reason = error.strerror or str(error)
    if error.errno == errno.EADDRNOTAVAIL:
        return f"{reason}: not an address of this computer; give --host one of its addresses"
    if error.errno == errno.EACCES:
        return f"{reason}: ports below 1024 need privileges; choose another with --port"
    return f"{reason}; is another server using it? choose another with --port"


def run_server(app, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Serve ``app`` with uvicorn, one worker process, until interrupted."""
    require_web_stack()
    import uvicorn

    uvicorn.run(app, host=host, port=port, workers=1, log_level=log_level)
