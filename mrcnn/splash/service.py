"""The model behind the splash web page: detect once per photo, then filter, draw and splash.

:class:`SplashService` holds one model and the last few uploads. Detection runs once per
upload, down to ``score_floor``; a change of threshold or classes only filters those results.
Filtering is exact: detection drops low scores before its per-class (greedy, best-first) NMS
and then keeps the best DETECTION_MAX_INSTANCES, so lower-scoring extra candidates never remove
or displace a higher-scoring detection.

Results are COCO results entries written by :func:`mrcnn.evaluation.detections_to_coco`, plus a
``category_name``; :meth:`SplashService.annotations` gives them as an editable annotation file
(VIA 2 or LabelMe), by the writers of ``mrcnn annotate`` (:mod:`mrcnn.labelling`). Every use of
the model and of the renderers holds one lock: requests are served in turn, so a burst neither
runs out of memory nor mixes results. Bad input raises :class:`UploadError`, which carries the
HTTP status the web app (:mod:`mrcnn.splash.web`) answers.
"""

from __future__ import annotations

import io
import threading
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrcnn.drawing.render import draw_instances
from mrcnn.evaluation import detections_to_coco
from mrcnn.labelling import detections_of, new_project
from mrcnn.labelling.merge import ImageRecord
from mrcnn.splash.filter import EFFECTS, color_splash, encode_image, select_instances
from mrcnn.structures.image import decode_image
from mrcnn.tracking.analysis import set_detection_threshold

__all__ = [
    "ANNOTATION_FORMATS",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_UPLOAD_BYTES",
    "SplashService",
    "Upload",
    "UploadError",
    "header_size",
    "photo_file_name",
    "too_large_message",
]

#: Largest photo accepted by default (bytes).
DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: Largest image accepted by default (pixels), which bounds the memory of decoded uploads.
DEFAULT_MAX_PIXELS = 50_000_000
#: Annotation formats of :meth:`SplashService.annotations` -> what follows the photo's stem in
#: the file's name.
ANNOTATION_FORMATS = {"via": "_via.json", "labelme": ".json"}


class UploadError(ValueError):
    """A request the service cannot honour; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Upload:
    """One analysed photo: the image and its detections down to the score floor.

    Attributes:
        file_name: the name the photo was uploaded under.
        image: [H, W, 3] uint8 RGB.
        detections: COCO results entries, best score first (masks as RLE).
        scores: float32 [N] unrounded scores of ``detections`` (the entries' are rounded).
        class_ids: int32 [N] class ids of ``detections``.
        rois: int32 [N, 4] (y1, x1, y2, x2) boxes of ``detections``, as ``detect`` gives them.
        size: the photo file's size in bytes.
    """

    file_name: str
    image: np.ndarray
    detections: list[dict]
    scores: np.ndarray
    class_ids: np.ndarray
    rois: np.ndarray
    size: int = 0


class SplashService:
    """The model behind the page: detects once per upload, then filters, draws and splashes.

    Args:
        model: a MaskRCNN in inference mode. Its DETECTION_MIN_CONFIDENCE becomes the page's
            default threshold and is lowered to ``score_floor`` (the model is this service's).
        class_names: names indexed by class id, "BG" first.
        score_floor: the lowest threshold the page offers; detection runs down to it.
        max_upload_bytes: larger files are refused (413).
        max_pixels: larger images are refused (413), from the file's header, before decoding.
        cache_size: uploads kept for re-rendering; older ones expire (404).
    """

    def __init__(
        self,
        model,
        class_names: Sequence[str],
        *,
        score_floor: float = 0.05,
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        cache_size: int = 8,
    ) -> None:
        if not 0 <= score_floor <= 1:
            raise ValueError(f"score_floor={score_floor}: must be in [0, 1]")
        if min(max_upload_bytes, max_pixels, cache_size) < 1:
            raise ValueError("max_upload_bytes, max_pixels and cache_size must be positive")
        self.model = model
        self.class_names = list(class_names)
        self.default_threshold = float(model.config.DETECTION_MIN_CONFIDENCE)
        self.score_floor = min(float(score_floor), self.default_threshold)
        set_detection_threshold(model, self.score_floor)
        self.max_upload_bytes = int(max_upload_bytes)
        self.max_pixels = int(max_pixels)
        self.cache_size = int(cache_size)
        self._uploads: OrderedDict[str, Upload] = OrderedDict()
        self._lock = threading.Lock()  # one request at a time: model, cache and renderers

    def info(self) -> dict:
        """What the page needs to build its controls."""
        return {
            "class_names": self.class_names,
            "effects": list(EFFECTS),
            "default_threshold": self.default_threshold,
            "score_floor": self.score_floor,
            "max_upload_bytes": self.max_upload_bytes,
        }

    # --------------------------------------------------------------------------------------
    def analyze(self, data: bytes, file_name: str) -> tuple[str, Upload]:
        """Decode and detect one uploaded photo, keep it, and return its id and the Upload.

        Raises UploadError: 400 for empty bytes, 413 over a limit, 415 for not an image.
        """
        upload = self.detect(data, file_name)
        upload_id = uuid.uuid4().hex
        with self._lock:
            self._uploads[upload_id] = upload
            while len(self._uploads) > self.cache_size:
                self._uploads.popitem(last=False)
        return upload_id, upload

    def detect(self, data: bytes, file_name: str) -> Upload:
        """Decode and detect one photo without keeping it (see :meth:`analyze`)."""
        if not data:
            raise UploadError(f"{file_name}: the file is empty; choose a photo", 400)
        if len(data) > self.max_upload_bytes:
            raise UploadError(too_large_message(file_name, len(data), self.max_upload_bytes), 413)
        self._check_pixels(data, file_name)  # from the header, before decoding anything
        with self._lock:  # decoding too: one full-size image in memory at a time
            try:
                image = decode_image(data, where=file_name)
            except ValueError as error:
                raise UploadError(str(error), 415) from error
            result = self.model.detect([image])[0]
            detections = detections_to_coco(
                [result], [_image_id(file_name)], class_names=self.class_names
            )
        return Upload(
            file_name,
            image,
            detections,
            np.asarray(result["scores"], dtype=np.float32),
            np.asarray(result["class_ids"], dtype=np.int32),
            np.asarray(result["rois"], dtype=np.int32).reshape(-1, 4),
            len(data),
        )

    def _check_pixels(self, data: bytes, file_name: str) -> None:
        """Raise UploadError 413 when the image's header gives more than ``max_pixels``.

        Pillow's ``Image.open`` reads the header only, so a small file that claims a huge size
        is refused without its pixels being decoded. Bytes Pillow cannot identify pass: the
        decoding that follows says what is wrong with them.
        """
        size = header_size(data, file_name)
        if size is None:
            return
        width, height = size
        if width * height > self.max_pixels:
            raise UploadError(
                f"{file_name}: {width} x {height} = {width * height} pixels is over the limit "
                f"of {self.max_pixels} pixels; send a smaller photo (or start the server with a "
                "larger --max-megapixels)",
                413,
            )

    def get(self, upload_id: str) -> Upload:
        """The upload of that id; UploadError 404 when unknown or expired."""
        with self._lock:
            upload = self._uploads.get(upload_id)
            if upload is not None:
                self._uploads.move_to_end(upload_id)
        if upload is None:
            raise UploadError(
                f"upload {upload_id!r} is unknown or has expired (the server keeps the last "
                f"{self.cache_size}); upload the photo again",
                404,
            )
        return upload

    # --------------------------------------------------------------------------------------
    def select(
        self, upload: Upload, min_score: float | None = None, classes: Sequence[int] | None = None
    ) -> np.ndarray:
        """bool [N]: the detections of ``upload`` scoring >= ``min_score`` in ``classes``.

        ``min_score`` None is the default threshold; ``classes`` None keeps every class.
        Raises UploadError 400 for a threshold below the floor or an unknown class id.
        """
        min_score = self.default_threshold if min_score is None else float(min_score)
        if not self.score_floor <= min_score <= 1:
            raise UploadError(
                f"min_score={min_score:g}: must be in [{self.score_floor:g}, 1] (the server "
                "detects down to its --score-floor)",
                400,
            )
        unknown = [c for c in classes or () if not 0 < c < len(self.class_names)]
        if unknown:
            raise UploadError(
                f"unknown class ids {unknown}: the classes are 1..{len(self.class_names) - 1}",
                400,
            )
        return select_instances(
            len(upload.scores),
            upload.class_ids,
            upload.scores,
            classes=None if classes is None else list(classes),
            min_score=min_score,
        )

    def results(self, upload: Upload, keep: np.ndarray) -> list[dict]:
        """The COCO results entries of the kept detections."""
        return [entry for entry, kept in zip(upload.detections, keep, strict=True) if kept]

    def splash(self, upload: Upload, keep: np.ndarray, effect: str = "gray") -> bytes:
        """PNG bytes of the color splash of the kept detections."""
        if effect not in EFFECTS:
            raise UploadError(f"effect={effect!r}: use one of {', '.join(EFFECTS)}", 400)
        with self._lock:
            picture = color_splash(upload.image, self._masks(upload, keep), effect)
            return encode_image(picture, ".png")

    def drawing(self, upload: Upload, keep: np.ndarray) -> bytes:
        """JPEG bytes of the photo with the kept detections drawn (masks, boxes, captions).

        JPEG: a view, not a product, and several times smaller and faster than PNG.
        """

        with self._lock:
            picture = draw_instances(
                upload.image,
                upload.rois[keep],
                self._masks(upload, keep),
                upload.class_ids[keep],
                self.class_names,
                upload.scores[keep],
            )
            return encode_image(picture, ".jpg")

    def annotations(self, upload: Upload, keep: np.ndarray, format_name: str | None) -> bytes:
        """The kept detections as an annotation file of the photo, UTF-8 JSON, written as
        ``mrcnn annotate`` writes them (its default polygon tolerance and smallest area, class
        names and scores): ``via``, a VIA 2 project of the one photo (its ``filename`` and
        ``size``); ``labelme``, a LabelMe file (``imagePath`` the photo's file name, so it goes
        beside the photo; ``imageData`` null). No detection kept gives a file with no regions.

        Raises UploadError 400 for a format not in :data:`ANNOTATION_FORMATS`.
        """
        if format_name not in ANNOTATION_FORMATS:
            given = "no format" if format_name is None else f"format={format_name!r}"
            raise UploadError(
                f"{given}: give format=via (a VIA 2 project) or format=labelme (a LabelMe JSON "
                "file)",
                400,
            )
        name = photo_file_name(upload.file_name)
        project = new_project(format_name, self.class_names[1:])
        if format_name == "via":
            project.file_sizes[name] = upload.size  # the photo is not a file on this disk
        height, width = upload.image.shape[:2]
        with self._lock:
            result = {
                "class_ids": upload.class_ids[keep],
                "scores": upload.scores[keep],
                "masks": self._masks(upload, keep),
            }
            detections = detections_of(result, self.class_names)
            project.add_image(ImageRecord(Path(name), name, height, width), detections)
            (text,) = project.contents(Path(name)).values()  # one file: the photo's
        return text.encode("utf-8")

    # --------------------------------------------------------------------------------------
    @staticmethod
    def _masks(upload: Upload, keep: np.ndarray) -> np.ndarray:
        """bool [H, W, K] masks of the kept detections, decoded from their RLEs."""
        from pycocotools import mask as mask_utils

        rles = [e["segmentation"] for e, kept in zip(upload.detections, keep, strict=True) if kept]
        if not rles:
            return np.zeros((*upload.image.shape[:2], 0), dtype=bool)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # pycocotools vs numpy 2
            return mask_utils.decode(rles).astype(bool)


def _image_id(file_name: str) -> int | str:
    """COCO image_id of an uploaded file, as ``mrcnn detect`` gives: its stem, an int if digits."""
    stem = Path(file_name).stem
    return int(stem) if stem.isascii() and stem.isdigit() else stem  # not int("²")


def photo_file_name(file_name: str) -> str:
    """The file name an upload was sent under, without any folder (as annotation files name it)."""
    return Path(file_name.replace("\\", "/")).name or "photo"


def header_size(data: bytes, where: str = "upload") -> tuple[int, int] | None:
    """(width, height) of an image file from its header, without decoding the pixels; None
    when Pillow cannot identify the bytes as an image.

    Raises UploadError 413 for an image over Pillow's limit against decompression bombs
    (``2 * PIL.Image.MAX_IMAGE_PIXELS``), which Pillow checks when it opens the file.
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as pil:
                return pil.size
    except Image.DecompressionBombError as error:
        raise UploadError(
            f"{where}: the image has more than {2 * Image.MAX_IMAGE_PIXELS} pixels, Pillow's limit "
            "against decompression bombs; send a smaller photo",
            413,
        ) from error
    except (OSError, ValueError, SyntaxError):  # not an image: decoding says so
        return None


def too_large_message(what: str, size: int, limit: int) -> str:
    """The message of a file of ``size`` bytes over the upload ``limit``, in exact bytes."""
    return (
        f"{what}: {size} bytes is over the upload limit of {limit} bytes "
        f"({limit / 2**20:.1f} MiB); send a smaller photo (or start the server with a larger "
        "--max-upload-mb)"
    )
