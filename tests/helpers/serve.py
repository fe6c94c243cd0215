"""Helpers of the web page's tests: a tiny model with spread-out scores, photos, a live server."""

from __future__ import annotations

import io
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

from mrcnn.weights.checkpoint import atomic_torch_save, checkpoint_payload
from tests.helpers.tiny_model import tiny_model

CLASS_NAMES = ["balloon", "kite"]
#: The address the in-process test clients name in their Host header, as a browser would.
LOCAL_URL = "http://127.0.0.1:8000"
#: Random weights give saturated class scores (all 1.0); scaling the class logits down spreads
#: them over roughly 0.3-0.9, so that a threshold change changes what is shown.
CLASS_LOGIT_SCALE = 0.05


def serve_model(**overrides):
    """The tiny model with its class logits scaled by CLASS_LOGIT_SCALE (same weights each call)."""
    model = tiny_model(**{"DETECTION_MAX_INSTANCES": 10, **overrides})
    with torch.no_grad():
        model.net.box_head.class_logits.weight.mul_(CLASS_LOGIT_SCALE)
        model.net.box_head.class_logits.bias.mul_(CLASS_LOGIT_SCALE)
    return model


def save_serve_checkpoint(path: Path, **overrides) -> Path:
    """A checkpoint of :func:`serve_model` with CLASS_NAMES, for ``mrcnn serve --weights``."""
    model = serve_model(**overrides)
    payload = checkpoint_payload(
        model.net.state_dict(), model.config, 1, class_names=["BG", *CLASS_NAMES]
    )
    atomic_torch_save(payload, path)
    return path


def blob_photo(path: Path, width: int, height: int, seed: int) -> Path:
    """A JPEG of coloured discs on a textured background (something for a model to find)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    image = rng.integers(0, 60, (height, width, 3)).astype(np.uint8)
    for _ in range(4):
        cy, cx = rng.integers(0, height), rng.integers(0, width)
        radius = rng.integers(min(height, width) // 8, min(height, width) // 3)
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < radius**2] = rng.integers(80, 256, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, quality=95)
    return path


def local_client(app):
    """A Starlette TestClient of ``app`` that names 127.0.0.1:8000 as its Host (the default,
    ``testserver``, is not a name the app answers to)."""
    from starlette.testclient import TestClient

    return TestClient(app, base_url=LOCAL_URL)


def png_bytes(width: int, height: int, value: int = 120) -> bytes:
    """A real PNG of one grey level."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), value, dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A PNG of under 100 bytes whose header claims ``width`` x ``height`` RGB pixels (its data
    is a few bytes, no IEND): Pillow opens it and reports that size without decoding."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    data = zlib.compress(b"\0" * (1 + 3 * min(width, 16)))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data)


@contextmanager
def live_server(app) -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread on a free localhost port; yield its base URL.

    The socket is bound before the server starts (no race for the port), and the server is
    always stopped on exit.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


class ShapesModel:
    """Stands in for a MaskRCNN behind the page, for the annotation downloads: four clean
    detections of every photo (at least 160 x 120), made to be written and read back.

    ``parts(height, width)`` gives them as (class id, score, [bool [H, W] part masks], hole):
    a disc (class 1, 0.9); a ring with a hole (class 2, 0.8); two discs that are one detection
    (class 1, 0.7); a small disc (class 2, 0.2, under the default threshold).
    """

    def __init__(self, min_confidence: float = 0.5) -> None:
        self.config = SimpleNamespace(DETECTION_MIN_CONFIDENCE=min_confidence)
        self.net = SimpleNamespace(config=self.config)

    @staticmethod
    def parts(height: int, width: int) -> list[tuple[int, float, list[np.ndarray], bool]]:
        yy, xx = np.mgrid[:height, :width]

        def disc(cy: float, cx: float, radius: float) -> np.ndarray:
            return np.hypot(yy - cy, xx - cx) <= radius

        ring = disc(40, 120, 30) & ~disc(40, 120, 12)
        return [
            (1, 0.9, [disc(40, 40, 28)], False),
            (2, 0.8, [ring], True),
            (1, 0.7, [disc(95, 30, 14), disc(95, 80, 16)], False),
            (2, 0.2, [disc(100, 140, 9)], False),
        ]

    def detect(self, images: list[np.ndarray]) -> list[dict]:
        results = []
        for image in images:
            height, width = image.shape[:2]
            shapes = self.parts(height, width)
            masks = np.stack([np.logical_or.reduce(p) for _, _, p, _ in shapes], axis=-1)
            rois = []
            for k in range(masks.shape[-1]):
                rows, cols = (
                    np.flatnonzero(masks[:, :, k].any(1)),
                    np.flatnonzero(masks[:, :, k].any(0)),
                )
                rois.append([rows[0], cols[0], rows[-1] + 1, cols[-1] + 1])
            results.append(
                {
                    "rois": np.array(rois, dtype=np.int32),
                    "class_ids": np.array([c for c, _, _, _ in shapes], dtype=np.int32),
                    "scores": np.array([s for _, s, _, _ in shapes], dtype=np.float32),
                    "masks": masks,
                }
            )
        return results
