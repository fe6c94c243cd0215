"""The color splash filter: detected objects keep their colour, the rest of the picture does not.

:func:`color_splash` composes one frame from an image and instance masks; its ``effect`` decides
what happens to the background (everything outside the union of the kept masks):

- ``"gray"``: luminance (OpenCV's RGB to gray weights) in R = G = B, the original filter;
- ``"blur"``: a Gaussian blur of the image (``blur_sigma`` pixels);
- ``"color"``: one solid ``background_color``;
- ``"dim"``: the image darkened to ``dim_factor`` of its brightness.

``feather`` softens the mask edges: the mask is Gaussian-blurred into an alpha matte of
``feather`` pixels sigma instead of cutting hard at the mask boundary. ``classes`` and
``min_score`` choose which instances stay in colour.

:func:`detect_and_color_splash` runs a model on an image or a video file and writes the result,
never over an existing file unless ``overwrite=True`` (:func:`free_output_path` adds ``_1``, ...).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from mrcnn.outputs import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    OutputError,
    free_output_path,
    reserved_output,
    write_output,
)
from mrcnn.splash.video import VideoReport, process_video, require_frames
from mrcnn.structures.image import read_image
from mrcnn.structures.masks import BoxMasks

__all__ = [
    "EFFECTS",
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "check_splash_options",
    "check_splash_output_name",
    "color_splash",
    "detect_and_color_splash",
    "encode_image",
    "free_output_path",
    "select_instances",
    "splash_background",
    "splash_detections",
    "splash_image_file",
    "splash_output_path",
    "splash_video",
]

#: Background effects understood by :func:`color_splash`.
EFFECTS = ("gray", "blur", "color", "dim")

#: Rows blended at a time by :func:`_blend`.
_BLEND_ROWS = 256
#: Alpha values this close to 0 or 1 are snapped, so that feathering touches only the edges.
_ALPHA_SNAP = 1e-3


# ------------------------------------------------------------------------------------------------
# The filter
# ------------------------------------------------------------------------------------------------
def color_splash(
    image: np.ndarray,
    masks: np.ndarray | None,
    effect: str = "gray",
    *,
    class_ids: Sequence[int] | np.ndarray | None = None,
    scores: Sequence[float] | np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    classes: Sequence[str | int] | None = None,
    min_score: float = 0.0,
    feather: float = 0.0,
    blur_sigma: float | None = None,
    background_color: Sequence[int] = (0, 0, 0),
    dim_factor: float = 0.35,
) -> np.ndarray:
    """Keep the colour inside the masks and apply ``effect`` to the rest.

    Args:
        image: [H, W, 3] uint8 RGB.
        masks: bool [H, W, N] instance masks (N may be 0), a
            :class:`mrcnn.structures.masks.BoxMasks` (large images), or None for no instances:
            the whole image then gets the effect.
        effect: "gray", "blur", "color" or "dim" (see the module docstring).
        class_ids: [N] class ids of the instances; needed with ``classes``.
        scores: [N] instance scores; needed with ``min_score`` > 0.
        class_names: names indexed by class id; needed when ``classes`` holds names.
        classes: keep only instances of these classes (names or ids) in colour; None keeps all.
        min_score: keep only instances scoring at least this in colour.
        feather: sigma in pixels of the soft mask edge; 0 gives hard edges.
        blur_sigma: Gaussian sigma in pixels for "blur"; None picks min(H, W) / 50 (at least 2).
        background_color: (R, G, B) 0-255 for "color".
        dim_factor: brightness kept by "dim", in [0, 1].
    Returns:
        [H, W, 3] uint8 RGB, a new array. Inside the kept masks the pixels equal ``image``
        (up to the feathered band when ``feather`` > 0).
    """
    image = _check_image(image)
    masks = _check_masks(masks, image.shape[:2])
    keep = select_instances(
        len(masks) if isinstance(masks, BoxMasks) else masks.shape[2],
        class_ids,
        scores,
        class_names,
        classes=classes,
        min_score=min_score,
    )
    background = splash_background(
        image,
        effect,
        blur_sigma=blur_sigma,
        background_color=background_color,
        dim_factor=dim_factor,
    )
    if not keep.any():
        return background
    return _paste_kept(image, background, masks, keep, feather)


def splash_background(
    image: np.ndarray,
    effect: str = "gray",
    *,
    blur_sigma: float | None = None,
    background_color: Sequence[int] = (0, 0, 0),
    dim_factor: float = 0.35,
) -> np.ndarray:
    """The whole image with ``effect`` applied: [H, W, 3] uint8 RGB in, a new one out.

    Arguments as in :func:`color_splash`.
    """
    if effect == "gray":
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
    if effect == "blur":
        sigma = blur_sigma if blur_sigma is not None else max(2.0, min(image.shape[:2]) / 50)
        if sigma <= 0:
            raise ValueError(f"blur_sigma={sigma}: must be positive (pixels)")
        return cv2.GaussianBlur(image, (0, 0), float(sigma))
    if effect == "color":
        return np.broadcast_to(_rgb(background_color), image.shape).copy()
    if effect == "dim":
        if not 0 <= dim_factor <= 1:
            raise ValueError(f"dim_factor={dim_factor}: must be in [0, 1] (brightness kept)")
        return cv2.convertScaleAbs(image, alpha=float(dim_factor))
    raise ValueError(f"effect={effect!r}: use one of {', '.join(EFFECTS)}")


def select_instances(
    count: int,
    class_ids: Sequence[int] | np.ndarray | None = None,
    scores: Sequence[float] | np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    *,
    classes: Sequence[str | int] | None = None,
    min_score: float = 0.0,
) -> np.ndarray:
    """Which of ``count`` instances stay in colour: bool [count].

    ``classes`` (names looked up in ``class_names``, or ids) needs ``class_ids`` [count];
    ``min_score`` > 0 needs ``scores`` [count].
    """
    keep = np.ones(count, dtype=bool)
    if classes is not None:
        if class_ids is None:
            raise ValueError("classes= selects by class: pass class_ids too (r['class_ids'])")
        class_ids = _per_instance(class_ids, count, "class_ids")
        wanted = _class_id_set(classes, class_names)
        keep &= np.isin(class_ids, list(wanted))
    if min_score > 0:
        if scores is None:
            raise ValueError("min_score= selects by score: pass scores too (r['scores'])")
        keep &= _per_instance(scores, count, "scores") >= min_score
    return keep


def splash_detections(
    image: np.ndarray, result: dict, effect: str = "gray", **options
) -> np.ndarray:
    """:func:`color_splash` of one ``MaskRCNN.detect`` result (its masks, class_ids, scores).

    Args:
        image: [H, W, 3] uint8 RGB, the image given to ``detect``.
        result: a dict with "masks" bool [H, W, N], "class_ids" [N] and "scores" [N].
        options: the keyword arguments of :func:`color_splash` (classes, class_names,
            min_score, feather, blur_sigma, background_color, dim_factor).
    Returns:
        [H, W, 3] uint8 RGB.
    """
    return color_splash(
        image,
        result["masks"],
        effect,
        class_ids=result.get("class_ids"),
        scores=result.get("scores"),
        **options,
    )


# ------------------------------------------------------------------------------------------------
# Helpers of the filter
# ------------------------------------------------------------------------------------------------
def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        kind = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"color_splash: image must be a uint8 numpy array, got {kind}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"color_splash: image shape {image.shape}, expected H x W x 3 RGB")
    return np.ascontiguousarray(image)


def _check_masks(masks, shape: tuple[int, int]) -> np.ndarray | BoxMasks:
    if masks is None:
        return np.zeros((*shape, 0), dtype=bool)
    if isinstance(masks, BoxMasks):
        if tuple(masks.shape) != tuple(shape):
            raise ValueError(f"color_splash: masks of a {masks.shape} image for a {shape} one")
        return masks
    masks = np.asarray(masks)
    if masks.ndim == 2:
        masks = masks[:, :, None]
    if masks.ndim != 3 or masks.shape[:2] != tuple(shape):
        raise ValueError(
            f"color_splash: masks shape {masks.shape} does not fit the image {shape}; "
            "expected bool [H, W, N] at the image's resolution"
        )
    return masks.astype(bool, copy=False)


def _per_instance(values, count: int, name: str) -> np.ndarray:
    values = np.asarray(values).reshape(-1)
    if len(values) != count:
        raise ValueError(f"{name} has {len(values)} entries for {count} masks")
    return values


def _class_id_set(classes: Sequence[str | int], class_names: Sequence[str] | None) -> set[int]:
    if isinstance(classes, (str, int)):
        classes = [classes]
    ids: set[int] = set()
    for item in classes:
        if isinstance(item, (int, np.integer)):
            ids.add(int(item))
            continue
        if class_names is None:
            raise ValueError(f"class {item!r} given by name: pass class_names to look it up")
        matches = [i for i, name in enumerate(class_names) if name == item]
        if not matches:
            known = ", ".join(str(n) for n in class_names[1:])
            raise ValueError(f"unknown class {item!r}; the classes are: {known}")
        ids.update(matches)
    return ids


def _rgb(color: Sequence[int]) -> np.ndarray:
    rgb = np.asarray(color)
    if rgb.shape != (3,) or rgb.min() < 0 or rgb.max() > 255:
        raise ValueError(f"background_color={tuple(color)}: give (R, G, B) values in 0-255")
    return rgb.astype(np.uint8)


def _paste_kept(image, background, masks, keep: np.ndarray, feather: float) -> np.ndarray:
    """``background`` (changed in place) with ``image`` inside the union of the kept masks."""
    union = masks.union(keep) if isinstance(masks, BoxMasks) else masks[:, :, keep].any(axis=2)
    if feather > 0:
        return _blend(image, background, _feathered_alpha(union, feather))
    # OpenCV's masked copy: ten times np.copyto(where=...) on a 1280 x 720 frame.
    mask = np.ascontiguousarray(union).view(np.uint8)
    cv2.copyTo(np.ascontiguousarray(image), mask, background)
    return background


def _feathered_alpha(union: np.ndarray, feather: float) -> np.ndarray:
    """float32 [H, W] alpha in [0, 1]: the mask blurred with sigma ``feather``, ends snapped."""
    alpha = cv2.GaussianBlur(union.astype(np.float32), (0, 0), float(feather))
    alpha[alpha < _ALPHA_SNAP] = 0.0
    alpha[alpha > 1.0 - _ALPHA_SNAP] = 1.0
    return alpha


def _blend(image: np.ndarray, background: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """alpha * image + (1 - alpha) * background, rounded: uint8 [H, W, 3], written into
    ``background``. Done in bands of rows, so the float copies stay small on huge images."""
    for top in range(0, image.shape[0], _BLEND_ROWS):
        rows = slice(top, top + _BLEND_ROWS)
        a = alpha[rows, :, None]
        mixed = background[rows].astype(np.float32)
        mixed += a * (image[rows].astype(np.float32) - mixed)
        background[rows] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return background


# ------------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------------
def splash_output_path(
    source: str | os.PathLike,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    *,
    video: bool | None = None,
) -> Path:
    """Where the splash of ``source`` goes.

    ``out`` None: ``<stem>_splash<ext>`` in the current folder; an existing folder, a path
    ending in a separator or a path without an extension: that name inside that folder
    (created); anything else: that file. The extension is
    ".png" for images and ".mp4" for videos unless ``out`` names one. ``video`` says which
    ``source`` is (default: judged by its extension, so a video named ``.ts`` needs
    ``video=True``). The result goes through :func:`free_output_path`.

    Raises:
        OutputError: ``out`` names a file of the other kind (``clip.mp4`` to ``out.png``).
    """
    source = Path(source)
    video = source.suffix.lower() in VIDEO_SUFFIXES if video is None else video
    default_name = f"{source.stem}_splash{'.mp4' if video else '.png'}"
    if _names_folder(out):
        target = Path(default_name) if out is None else Path(out) / default_name
    else:
        target = Path(out)
        check_splash_output_name(source, target, video)
    return free_output_path(target, overwrite)


def check_splash_output_name(
    source: str | os.PathLike, out: str | os.PathLike | None, video: bool
) -> None:
    """Refuse an output file name of the wrong kind before any work (or file) is made.

    A folder (see :func:`splash_output_path`) or None passes. A video's splash must not be
    named as an image (OpenCV would write one picture), an image's must have an extension
    OpenCV encodes.

    Raises:
        OutputError: one line naming both files and the extensions that work.
    """
    if _names_folder(out):
        return
    suffix = Path(out).suffix.lower()
    if video and suffix in IMAGE_SUFFIXES:
        raise OutputError(
            f"output {out}: the splash of video {Path(source).name} is a video; name it "
            ".mp4 or .avi, or give a folder"
        )
    if not video and suffix not in IMAGE_SUFFIXES:
        raise OutputError(
            f"output {out}: the splash of image {Path(source).name} is an image; name it "
            f"with one of {', '.join(IMAGE_SUFFIXES)}, or give a folder"
        )


def _names_folder(out: str | os.PathLike | None) -> bool:
    """True for None and for ``out`` that :func:`splash_output_path` treats as a folder."""
    return (
        out is None
        or Path(out).is_dir()
        or str(out).endswith(("/", os.sep))
        or not Path(out).suffix
    )


def splash_image_file(
    model,
    image_path: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    effect: str = "gray",
    overwrite: bool = False,
    **options,
) -> Path:
    """Detect in one image file, write its splash and return the path written.

    The image is read with its EXIF orientation applied; the output format follows the
    extension of the path chosen by :func:`splash_output_path` (PNG by default).
    """
    check_splash_output_name(image_path, out, video=False)  # before the model's work
    image = read_image(image_path)
    result = model.detect([image], mask_format="boxes")[0]  # memory bounded by the boxes
    splashed = splash_detections(image, result, effect, **options)
    with reserved_output(splash_output_path(image_path, out, overwrite, video=False)) as target:
        write_image(target, splashed, inputs=[image_path])
    return target


def write_image(
    path: str | os.PathLike, image: np.ndarray, inputs: Sequence[str | os.PathLike] = ()
) -> None:
    """Write [H, W, 3] uint8 RGB to ``path`` in the format of its extension (OpenCV), never
    over one of ``inputs`` (:func:`mrcnn.outputs.write_output`)."""
    path = Path(path)
    write_output(path, encode_image(image, path.suffix or ".png", where=str(path)), inputs)


def encode_image(image: np.ndarray, suffix: str = ".png", where: str = "image") -> bytes:
    """[H, W, 3] uint8 RGB as the bytes of a ``suffix`` (".png", ".jpg", ...) file (OpenCV)."""
    suffix = suffix.lower()
    try:
        ok, encoded = cv2.imencode(suffix, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    except cv2.error:  # why: OpenCV raises, rather than returns False, for unknown extensions
        ok = False
    if not ok:
        raise ValueError(f"{where}: OpenCV cannot write {suffix} images; use .png or .jpg")
    return encoded.tobytes()


def detect_and_color_splash(
    model,
    image_path: str | os.PathLike | None = None,
    video_path: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    *,
    effect: str = "gray",
    classes: Sequence[str | int] | None = None,
    class_names: Sequence[str] | None = None,
    min_score: float = 0.0,
    overwrite: bool = False,
    progress: bool = True,
    **options,
) -> Path:
    """Run ``model`` on an image or a video file and write its color splash.

    Args:
        model: a :class:`mrcnn.model.MaskRCNN` in inference mode (anything with ``detect``
            and ``config.IMAGES_PER_GPU``).
        image_path / video_path: exactly one of them.
        out: output file or folder (see :func:`splash_output_path`); default
            ``<stem>_splash.png`` / ``<stem>_splash.mp4`` in the current folder.
        effect, classes, class_names, min_score, options: as in :func:`color_splash`.
        overwrite: replace an existing output file instead of adding ``_1``, ``_2``, ...
        progress: show a tqdm bar (frames/s) for videos.
    Returns:
        the path written. A video whose input ends early (truncated or corrupt) still gives a
        playable partial file; a ``UserWarning`` says how many frames were written.
    """
    if (image_path is None) == (video_path is None):
        raise ValueError("detect_and_color_splash: give exactly one of image_path and video_path")
    options.update(classes=classes, class_names=class_names, min_score=min_score)
    if image_path is not None:
        return splash_image_file(
            model, image_path, out, effect=effect, overwrite=overwrite, **options
        )
    report = splash_video(
        model, video_path, out, effect=effect, overwrite=overwrite, progress=progress, **options
    )
    if not report.complete:
        warnings.warn(report.summary(), UserWarning, stacklevel=2)
    return report.output


def splash_video(
    model,
    video_path: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    effect: str = "gray",
    overwrite: bool = False,
    progress: bool = True,
    fourcc: str | None = None,
    audio: bool = True,
    **options,
) -> VideoReport:
    """The color splash of a video file (:func:`mrcnn.splash.video.process_video` with this filter).

    Args:
        out: output file or folder (:func:`splash_output_path`); default
            ``<stem>_splash.mp4`` in the current folder, never replacing a file unless
            ``overwrite``.
        effect, options: as in :func:`color_splash` (classes, class_names, min_score,
            feather, blur_sigma, background_color, dim_factor).
        fourcc, progress, audio: as in :func:`mrcnn.splash.video.process_video` (``audio``: keep
            the input's sound track, the default; a video without one is unaffected).
    Returns:
        the :class:`mrcnn.splash.video.VideoReport`.
    """
    require_frames(video_path)  # fail on an unreadable or empty input before naming the output
    check_splash_options(effect, options)

    def render(frame: np.ndarray, result: dict) -> np.ndarray:
        return splash_detections(frame, result, effect, **options)

    with reserved_output(splash_output_path(video_path, out, overwrite, video=True)) as target:
        return process_video(
            model, video_path, target, render, fourcc=fourcc, progress=progress, audio=audio
        )


def check_splash_options(effect: str, options: dict) -> None:
    """Raise the filter's ValueError for bad options now, not at the first frame."""
    empty = {"masks": np.zeros((1, 1, 0), bool), "class_ids": np.zeros(0), "scores": np.zeros(0)}
    splash_detections(np.zeros((1, 1, 3), np.uint8), empty, effect, **options)
