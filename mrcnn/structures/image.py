"""Images in and out of the network: reading, molding (resize, normalise, pad) and unmolding.

Molding turns an H x W x 3 uint8 RGB image into the network's input tensor; :class:`ImageMeta`
records how, so that detections can be mapped back to the original pixels. Boxes here are
(x1, y1, x2, y2) float pixels, like everywhere inside the network.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mrcnn.structures import matterport_image

# The size arithmetic lives in mrcnn.structures.resize_plan (torch-free).
from mrcnn.structures.resize_plan import (
    SHORTEST_SIDE_PAD,
    ImageMeta,
    ResizePlan,
    inference_mode,
    plan_for_config,  # noqa: F401 - the training data and the dataset stats import it from here
    plan_resize,
)
from mrcnn.structures.rgb import to_rgb_uint8

#: EXIF tag of the orientation (1: as stored).
_EXIF_ORIENTATION = 0x0112
#: Images with more pixels than this are resized from uint8 rows (:func:`mold_image`).
LARGE_IMAGE_PIXELS = 4096 * 4096


# ------------------------------------------------------------------------------------------------
# Reading and converting
# ------------------------------------------------------------------------------------------------
def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as H x W x 3 uint8 RGB with its EXIF orientation applied.

    Grayscale, palette, RGBA and 16-bit files are converted. Raises FileNotFoundError for a
    missing file and ValueError naming the file for an unreadable one.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    return _decode(path, str(path))


def decode_image(data: bytes, where: str = "upload") -> np.ndarray:
    """Decode the bytes of an image file (JPEG, PNG, ...) as :func:`read_image` reads a file.

    Returns H x W x 3 uint8 RGB with the EXIF orientation applied. Raises ValueError naming
    ``where`` for empty bytes, bytes that are not an image, and images over PIL's
    decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``, twice over).
    """
    import io

    if not data:
        raise ValueError(f"{where}: the file is empty")
    return _decode(io.BytesIO(data), where)


def _decode(source, where: str) -> np.ndarray:
    """PIL-decode a path or file object into H x W x 3 uint8 RGB (EXIF orientation applied)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Up to twice PIL's MAX_IMAGE_PIXELS is a big photo, which detect handles in
            # bounded memory; beyond that PIL raises DecompressionBombError (below).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return _read_with_pil(source, where)
    except Image.DecompressionBombError as error:
        raise ValueError(
            f"cannot read image {where}: it has more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} "
            "megapixels, PIL's safety limit against decompression bombs; if the file is "
            "genuine, downscale it first (e.g. to 10000 pixels on the longer side)"
        ) from error
    except UnidentifiedImageError as error:
        # PIL's own message names a file object, not the file: say what it is in words.
        raise ValueError(
            f"cannot read image {where}: not an image file (JPEG, PNG, BMP, TIFF, WebP, ...)"
        ) from error
    except OSError as error:
        raise ValueError(f"cannot read image {where}: {error}") from error


def _read_with_pil(source, where: str) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(source) as pil:
        if pil.getexif().get(_EXIF_ORIENTATION, 1) != 1:
            pil = ImageOps.exif_transpose(pil)  # a rotated copy: only when it is needed
        if pil.mode in ("I;16", "I;16B", "I;16L", "I"):
            array = np.asarray(pil)
            if array.dtype != np.uint16:
                array = np.clip(array, 0, 65535).astype(np.uint16)
            return to_rgb_uint8(array, where=where)
        if pil.mode != "RGB":
            pil = pil.convert("RGB")
        return _rgb_array(pil)


def _rgb_array(pil) -> np.ndarray:
    """An RGB PIL image as a writable H x W x 3 uint8 array, copied a band of rows at a time
    (``np.array(pil)`` would hold two extra full-size copies at once)."""
    width, height = pil.size
    out = np.empty((height, width, 3), dtype=np.uint8)
    band = max(1, (64 << 20) // (3 * width))  # about 64 MB per band
    for top in range(0, height, band):
        bottom = min(height, top + band)
        rows = pil.crop((0, top, width, bottom)).tobytes()
        out[top:bottom] = np.frombuffer(rows, dtype=np.uint8).reshape(bottom - top, width, 3)
    return out


# ------------------------------------------------------------------------------------------------
# Molding
# ------------------------------------------------------------------------------------------------
def normalization(config, dtype: torch.dtype, device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(mean, std) tensors [3, 1, 1] in 0-255 units from MEAN_PIXEL and STD_PIXEL (std may be
    None)."""
    mean = torch.as_tensor(np.asarray(config.MEAN_PIXEL, dtype=np.float64), dtype=dtype)
    std = None
    if config.STD_PIXEL is not None:
        std = torch.as_tensor(np.asarray(config.STD_PIXEL, dtype=np.float64), dtype=dtype)
        std = std.to(device).view(-1, 1, 1)
    return mean.to(device).view(-1, 1, 1), std


def apply_plan(image: torch.Tensor, plan: ResizePlan, mode: str = "bilinear") -> torch.Tensor:
    """Resize, crop and zero-pad a [C, H, W] float tensor (or [N, H, W] masks) by ``plan``.

    Args:
        image: [C, H, W] float tensor at the original size.
        plan: the geometry from :func:`plan_resize`.
        mode: "bilinear" for images and soft masks, "nearest" for label maps.
    Returns:
        [C, out_h, out_w] tensor where (out_h, out_w) = ``plan.output_shape``.
    """
    if plan.resized_shape != plan.original_shape:
        kwargs = {"align_corners": False} if mode == "bilinear" else {}
        image = F.interpolate(image[None], size=plan.resized_shape, mode=mode, **kwargs)[0]
    if plan.crop is not None:
        y, x, h, w = plan.crop
        image = image[:, y : y + h, x : x + w]
    top, bottom, left, right = plan.padding
    if any(plan.padding):
        image = F.pad(image, (left, right, top, bottom))
    return image


def mold_image(image: np.ndarray, config, plan: ResizePlan, dtype, device) -> torch.Tensor:
    """Normalise and resize one uint8 RGB image for the network.

    Normalisation comes first so that zero padding is the mean colour (torchvision's order).

    Args:
        image: H x W x 3 uint8 RGB.
    Returns:
        [3, out_h, out_w] tensor of ``dtype`` on ``device``.
    """
    if getattr(config, "NETWORK_FLAVOUR", "torchvision") == "matterport":
        return matterport_image.mold_image(image, config, plan, dtype, device)
    mean, std = normalization(config, dtype, device)
    if image.shape[0] * image.shape[1] > LARGE_IMAGE_PIXELS and plan.crop is None:
        # Resize first, from uint8 rows, so no float copy of the whole image is made: a
        # 108-megapixel photo would need 1.3 GB per copy. Bilinear weights sum to 1, so
        # resizing then normalising equals normalising then resizing, up to rounding.
        tensor = _bilinear_resize_uint8(image, plan.resized_shape).to(device, dtype)
        tensor = tensor - mean
        if std is not None:
            tensor = tensor / std
        top, bottom, left, right = plan.padding
        return F.pad(tensor, (left, right, top, bottom))
    if not image.flags.writeable:  # torch.from_numpy wants a writable array (e.g. a video frame)
        image = image.copy()
    tensor = torch.from_numpy(np.ascontiguousarray(image)).to(device)
    tensor = tensor.permute(2, 0, 1).to(dtype)
    tensor = tensor - mean
    if std is not None:
        tensor = tensor / std
    return apply_plan(tensor, plan)


def _bilinear_taps(source: int, target: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Input indices i0, i1 and weight of i1 for each of ``target`` outputs: bilinear
    interpolation with half-pixel centres (F.interpolate's align_corners=False)."""
    scale = np.float32(source) / np.float32(target)  # float32 arithmetic, as torch's kernel
    position = np.maximum((np.arange(target, dtype=np.float32) + 0.5) * scale - 0.5, 0)
    first = np.minimum(np.floor(position).astype(np.int64), source - 1)
    second = np.minimum(first + 1, source - 1)
    return first, second, (position - first).astype(np.float32)


def _bilinear_resize_uint8(image: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """Resize H x W x 3 uint8 to float32 [3, h, w], rows first then columns, touching only the
    input rows the output needs (memory ~ h x W floats, not H x W)."""
    (height, width), (out_h, out_w) = image.shape[:2], size
    r0, r1, rw = _bilinear_taps(height, out_h)
    c0, c1, cw = _bilinear_taps(width, out_w)
    rw = torch.from_numpy(rw)[:, None, None]
    rows = torch.from_numpy(image[r0]).float() * (1 - rw)
    rows += torch.from_numpy(image[r1]).float() * rw
    cw = torch.from_numpy(cw)[None, :, None]
    out = rows[:, c0] * (1 - cw) + rows[:, c1] * cw
    return out.permute(2, 0, 1).contiguous()


def inference_plan(height: int, width: int, config, rng=None) -> ResizePlan:
    """The plan that molds an image of ``height`` x ``width`` for inference: the config's, except
    that the training-only "crop" mode molds whole images as "pad64" does."""
    mode = inference_mode(config.IMAGE_RESIZE_MODE)
    return plan_resize(
        height,
        width,
        mode,
        config.IMAGE_MIN_DIM,
        config.IMAGE_MAX_DIM,
        config.IMAGE_MIN_SCALE,
        rng,
    )


def batch_input_shape(shapes: Sequence[tuple[int, int]], config) -> tuple[int, int]:
    """(H, W) of the batch that holds molded images of ``shapes`` (each (h, w)): the largest of
    each, rounded up to a multiple of 32 in the "shortest_side" mode."""
    height = max(h for h, _ in shapes)
    width = max(w for _, w in shapes)
    if config.IMAGE_RESIZE_MODE == "shortest_side":
        height = -(-height // SHORTEST_SIDE_PAD) * SHORTEST_SIDE_PAD
        width = -(-width // SHORTEST_SIDE_PAD) * SHORTEST_SIDE_PAD
    return height, width


def same_input_groups(images: Sequence[np.ndarray], config) -> list[list[int]]:
    """Indices of ``images`` grouped by the network input each would get molded on its own, in
    order of first appearance. Batching only within a group keeps every image's detections
    equal to its single-image ones: padding an image to a larger batch changes its features."""
    groups: dict[tuple[int, int], list[int]] = {}
    for index, image in enumerate(images):
        plan = inference_plan(image.shape[0], image.shape[1], config)
        groups.setdefault(batch_input_shape([plan.output_shape], config), []).append(index)
    return list(groups.values())


def mold_batch(
    images: Sequence[np.ndarray], config, dtype=torch.float32, device="cpu", rng=None
) -> tuple[torch.Tensor, list[ImageMeta]]:
    """Mold a list of RGB images into one zero-padded batch for inference.

    The training-only "crop" mode molds whole images as "pad64" does.

    Args:
        images: H x W x 3 uint8 RGB arrays (sizes may differ).
    Returns:
        (batch, metas): [B, 3, H_max, W_max] tensor, where images smaller than the largest are
        padded at the bottom and right (sizes rounded up to a multiple of 32 in the
        "shortest_side" mode), and one :class:`ImageMeta` per image.
    """
    molded, metas = [], []
    for image in images:
        plan = inference_plan(image.shape[0], image.shape[1], config, rng)
        molded.append(mold_image(image, config, plan, dtype, device))
        metas.append(plan.meta())
    height, width = batch_input_shape([tuple(m.shape[1:]) for m in molded], config)
    batch = molded[0].new_zeros((len(molded), 3, height, width))
    for i, m in enumerate(molded):
        batch[i, :, : m.shape[1], : m.shape[2]] = m
    return batch, metas


# ------------------------------------------------------------------------------------------------
# Unmolding
# ------------------------------------------------------------------------------------------------
def unmold_boxes(boxes: torch.Tensor, meta: ImageMeta) -> torch.Tensor:
    """Map boxes from network-input pixels back to original-image pixels.

    Args:
        boxes: [N, 4] (x1, y1, x2, y2) in the padded input, already clipped to ``meta.window``.
    Returns:
        [N, 4] (x1, y1, x2, y2) in original-image pixels, clipped to the image.
    """
    x1, y1, _, _ = meta.window
    offset = torch.tensor([x1, y1, x1, y1], dtype=boxes.dtype, device=boxes.device)
    # original / resized as float32 values, the ratio torchvision multiplies by, so that both
    # models map equal boxes to equal boxes.
    fy = float(np.float32(meta.original_shape[0]) / np.float32(meta.resized_shape[0]))
    fx = float(np.float32(meta.original_shape[1]) / np.float32(meta.resized_shape[1]))
    factor = torch.tensor([fx, fy, fx, fy], dtype=boxes.dtype, device=boxes.device)
    if meta.crop is not None:
        cy, cx = meta.crop[0], meta.crop[1]
        offset = offset - torch.tensor([cx, cy, cx, cy], dtype=boxes.dtype, device=boxes.device)
    out = (boxes - offset) * factor
    height, width = meta.original_shape
    limit = torch.tensor([width, height, width, height], dtype=boxes.dtype, device=boxes.device)
    return torch.minimum(out.clamp(min=0), limit)


def expanded_paste_boxes(boxes: torch.Tensor, mask_size: int) -> torch.Tensor:
    """Integer boxes a padded mask is pasted into.

    A mask of M x M padded by one zero pixel on each side covers (M + 2) / M of its box, so the
    box is widened by that factor about its centre and truncated to whole pixels.

    Args:
        boxes: [N, 4] (x1, y1, x2, y2) float image pixels.
    Returns:
        int64 [N, 4] (x1, y1, x2, y2) with x2, y2 inclusive.
    """
    expand = (mask_size + 2) / mask_size
    half_w = (boxes[:, 2] - boxes[:, 0]) * 0.5 * expand
    half_h = (boxes[:, 3] - boxes[:, 1]) * 0.5 * expand
    cx = (boxes[:, 2] + boxes[:, 0]) * 0.5
    cy = (boxes[:, 3] + boxes[:, 1]) * 0.5
    return torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=1).to(torch.int64)


def paste_masks(
    masks: torch.Tensor, boxes: torch.Tensor, image_shape: tuple[int, int], threshold: float = 0.5
) -> torch.Tensor:
    """Paste soft masks into their boxes at full image resolution and threshold them.

    Each M x M mask is padded by one zero pixel on every side (so its edges fade out instead of
    ending on a hard step), resized bilinearly into its widened, whole-pixel box
    (:func:`expanded_paste_boxes`) and thresholded. This is the pasting of torchvision and
    Detectron, with the same arithmetic, so equal inputs give equal pixels even for values that
    sit exactly on the threshold. On the CPU each instance costs work and memory in proportion
    to its box only (:func:`paste_masks_looped`); on a GPU, where a loop of small kernels would
    cost more than the arithmetic, all instances are pasted at once
    (:func:`paste_masks_vectorised`).

    Args:
        masks: [N, M, M] probabilities in [0, 1].
        boxes: [N, 4] (x1, y1, x2, y2) in image pixels.
        image_shape: (H, W) of the image.
        threshold: probability above which a pixel belongs to the instance.
    Returns:
        bool [H, W, N] on the masks' device.
    """
    if masks.device.type == "cpu":
        return paste_masks_looped(masks, boxes, image_shape, threshold)
    return paste_masks_vectorised(masks, boxes, image_shape, threshold)


def paste_masks_looped(
    masks: torch.Tensor, boxes: torch.Tensor, image_shape: tuple[int, int], threshold: float = 0.5
) -> torch.Tensor:
    """:func:`paste_masks` one instance at a time: one interpolation of a box-sized patch each,
    nothing of full image size allocated per instance. Arguments and result as there."""
    height, width = int(image_shape[0]), int(image_shape[1])
    out = torch.zeros((height, width, masks.shape[0]), dtype=torch.bool, device=masks.device)
    for index, top, left, patch in pasted_patches(masks, boxes, image_shape, threshold):
        out[top : top + patch.shape[0], left : left + patch.shape[1], index] = patch
    return out


#: Instances :func:`paste_masks_vectorised` computes at once: its float temporaries take about
#: 3 x this x H x W x 4 bytes (0.3 GB for 32 instances of an 800 x 1066 image).
PASTE_CHUNK = 32


def paste_masks_vectorised(
    masks: torch.Tensor, boxes: torch.Tensor, image_shape: tuple[int, int], threshold: float = 0.5
) -> torch.Tensor:
    """:func:`paste_masks` for all instances at once, in a few whole-image kernels.

    The bilinear resize is separable: each padded mask is first resized along x to the image's
    width, then along y to its height, with F.interpolate's taps and weights (half-pixel
    centres) computed per instance and the same order of operations as its kernel, so the
    pixels equal :func:`paste_masks_looped`'s up to floating-point contraction in that kernel.
    Pixels outside an instance's widened box are False. Arguments and result as there.
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    count, size = masks.shape[0], masks.shape[-1]
    out = torch.zeros((height, width, count), dtype=torch.bool, device=masks.device)
    if count == 0:
        return out
    padded = F.pad(masks, (1, 1, 1, 1))  # [N, M+2, M+2]
    paste = expanded_paste_boxes(boxes, size)
    rows = _resize_taps(paste[:, 1], paste[:, 3], height, size + 2, masks.dtype)  # each [N, H]
    cols = _resize_taps(paste[:, 0], paste[:, 2], width, size + 2, masks.dtype)  # each [N, W]
    for start in range(0, count, PASTE_CHUNK):
        part = slice(start, start + PASTE_CHUNK)
        (r0, r1, rw0, rw1, r_in), (c0, c1, cw0, cw1, c_in) = (
            [t[part] for t in rows],
            [t[part] for t in cols],
        )
        patch = padded[part]
        depth = patch.shape[1]
        left = torch.gather(patch, 2, c0[:, None, :].expand(-1, depth, -1))
        right = torch.gather(patch, 2, c1[:, None, :].expand(-1, depth, -1))
        along_x = cw0[:, None, :] * left + cw1[:, None, :] * right  # [n, M+2, W]
        top = torch.gather(along_x, 1, r0[:, :, None].expand(-1, -1, width))
        bottom = torch.gather(along_x, 1, r1[:, :, None].expand(-1, -1, width))
        value = rw0[:, :, None] * top + rw1[:, :, None] * bottom  # [n, H, W]
        inside = r_in[:, :, None] & c_in[:, None, :]
        out[:, :, part] = ((value > threshold) & inside).permute(1, 2, 0)
    return out


def _resize_taps(
    start: torch.Tensor, end: torch.Tensor, length: int, source: int, dtype: torch.dtype
) -> tuple[torch.Tensor, ...]:
    """F.interpolate's bilinear taps (align_corners=False) along one image axis, per instance.

    Args:
        start, end: int64 [N], each instance's first and last (inclusive) pixel on the axis.
        length: the image's size on the axis.
        source: the padded mask's size (M + 2).
    Returns:
        (first, second, weight of first, weight of second, inside): [N, length] each; the
        indices int64 into the padded mask, ``inside`` bool (the pixel is in the span).
    """
    span = (end - start + 1).clamp(min=1)[:, None]
    pixel = torch.arange(length, device=start.device)[None, :] - start[:, None]
    inside = (pixel >= 0) & (pixel < span)
    local = torch.minimum(pixel.clamp(min=0), span - 1).to(dtype)
    scale = torch.tensor(float(source), dtype=dtype, device=start.device) / span.to(dtype)
    position = (scale * (local + 0.5) - 0.5).clamp(min=0)
    first = position.to(torch.int64)
    second = first + (first < source - 1).to(torch.int64)
    weight = position - first.to(dtype)
    return first, second, 1 - weight, weight, inside


def pasted_patches(
    masks: torch.Tensor, boxes: torch.Tensor, image_shape: tuple[int, int], threshold: float = 0.5
) -> Iterator[tuple[int, int, int, torch.Tensor]]:
    """The pasting of :func:`paste_masks`, one instance at a time, without the full image.

    Args: as :func:`paste_masks`.
    Yields:
        (index, top, left, patch): bool [h, w] patch of instance ``index`` whose top-left pixel
        is (top, left) in the image; instances whose box lies outside the image are skipped.
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    if masks.shape[0] == 0:
        return
    padded = F.pad(masks, (1, 1, 1, 1))[:, None]
    paste = expanded_paste_boxes(boxes, masks.shape[-1]).tolist()
    for index, (x0, y0, x1, y1) in enumerate(paste):
        span_h, span_w = max(y1 - y0 + 1, 1), max(x1 - x0 + 1, 1)
        top, left = max(y0, 0), max(x0, 0)
        bottom, right = min(y0 + span_h, height), min(x0 + span_w, width)
        if bottom <= top or right <= left:
            continue
        patch = F.interpolate(
            padded[index : index + 1], size=(span_h, span_w), mode="bilinear", align_corners=False
        )[0, 0]
        yield index, top, left, patch[top - y0 : bottom - y0, left - x0 : right - x0] > threshold
