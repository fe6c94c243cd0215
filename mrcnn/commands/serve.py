"""``mrcnn serve``: a local web page for the color splash, with a JSON API (mrcnn/splash/web.py).

Open the printed address in a browser, drop a photo, and see its detections and color splash
side by side; change the score threshold, the classes and the effect, and download the splash,
or the detections shown as a VIA 2 project or a LabelMe file to correct in that tool.
``curl -F image=@photo.jpg http://127.0.0.1:8000/api/detect`` gives the detections as COCO
results JSON. The model is loaded once and serves one request at a time.

Needs the ``serve`` extra: ``pip install 'mrcnn[serve]'`` (starlette, uvicorn, python-multipart).
"""

from __future__ import annotations

import argparse
import sys

from mrcnn.commands import common
from mrcnn.commands.common import (
    add_backend_argument,
    add_class_names_argument,
    add_config_arguments,
    add_model_arguments,
)
from mrcnn.splash.service import SplashService
from mrcnn.splash.web import (
    LOOPBACK_NAMES,
    WILDCARD_HOSTS,
    HostPolicy,
    check_address,
    create_app,
    require_web_stack,
    run_server,
)

HELP = (
    "a local web page for the color splash on one model; downloads the splash, or the "
    "detections as VIA 2 or LabelMe annotations to correct (and a COCO JSON API)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this computer only; 0.0.0.0 opens the "
        "page to the network, without any login, by IP address or an --allow-host name)",
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a further host name the page answers to, e.g. mypc.local (repeatable); requests "
        "naming any other Host than 127.0.0.1, localhost, [::1] and --host are refused",
    )
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument(
        "--max-upload-mb",
        type=float,
        default=20.0,
        metavar="MB",
        help="largest photo accepted, in MiB (default 20)",
    )
    parser.add_argument(
        "--max-megapixels",
        type=float,
        default=50.0,
        metavar="MP",
        help="largest image accepted, in millions of pixels (default 50)",
    )
    parser.add_argument(
        "--score-floor",
        type=float,
        default=0.05,
        metavar="S",
        help="lowest score threshold the page offers; each photo is detected once down to it "
        "(default 0.05; the page starts at the model's DETECTION_MIN_CONFIDENCE)",
    )
    parser.add_argument(
        "--cache",
        type=int,
        default=8,
        metavar="N",
        help="photos kept for re-rendering; older ones must be uploaded again (default 8)",
    )
    add_class_names_argument(parser)
    add_model_arguments(parser)
    add_backend_argument(parser)
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    require_web_stack()  # before the model loads: say what to install first
    if not 0 < args.port < 65536:
        raise ValueError(f"--port {args.port}: give a TCP port in 1-65535")
    if min(args.max_upload_mb, args.max_megapixels, args.cache) <= 0:
        raise ValueError("--max-upload-mb, --max-megapixels and --cache must be positive")
    HostPolicy.for_address(args.host, args.allow_host)  # a bad --allow-host fails first
    check_address(args.host, args.port)  # a busy port fails before the model loads
    model = common.build_model(args)
    service = SplashService(
        model,
        common.class_names_for(model, args.weights, args.class_names),
        score_floor=args.score_floor,
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_pixels=int(args.max_megapixels * 1e6),
        cache_size=args.cache,
    )
    if args.host not in LOOPBACK_NAMES:
        print(
            f"warning: listening on {args.host}: anyone who can reach this computer can use "
            "the page (there is no login)",
            file=sys.stderr,
        )
    host = "127.0.0.1" if args.host in WILDCARD_HOSTS else args.host
    host = f"[{host}]" if ":" in host else host
    print(f"mrcnn serve: open http://{host}:{args.port}/ (Ctrl+C stops it)", flush=True)
    run_server(create_app(service, args.host, args.allow_host), args.host, args.port)
    return 0
