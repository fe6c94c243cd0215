"""Image conversion, resize plans, molding, unmolding and mask pasting (mrcnn.structures.image)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mrcnn.config import Config
from mrcnn.structures import image as image_module
from mrcnn.structures.image import (
    ImageMeta,
    apply_plan,
    decode_image,
    expanded_paste_boxes,
    mold_batch,
    paste_masks,
    paste_masks_looped,
    paste_masks_vectorised,
    plan_resize,
    read_image,
    unmold_boxes,
)


def config(**overrides) -> Config:
    values = {"IMAGE_MIN_DIM": 64, "IMAGE_MAX_DIM": 128, "BACKBONE": "resnet50", "DEVICE": "cpu"}
    values.update(overrides)
    return Config.from_overrides(values)


# ------------------------------------------------------------------ plan_resize / ImageMeta
def test_square_no_resize_centred_padding():
    plan = plan_resize(100, 80, "square", 64, 128)
    assert plan.resized_shape == (100, 80)
    assert plan.padding == (14, 14, 24, 24)
    assert plan.output_shape == (128, 128)
    meta = plan.meta()
    assert meta.window == (24, 14, 104, 114)
    assert meta.scale == (1.0, 1.0)
    assert meta.crop is None
    assert meta.window_yxyx().tolist() == [14, 24, 114, 104]
    assert meta.window_yxyx().dtype == np.int32


def test_square_downscale_to_max_dim():
    plan = plan_resize(300, 200, "square", 64, 128)
    assert plan.resized_shape == (128, 85)  # round(200 * 128 / 300) = 85
    assert plan.padding == (0, 0, 21, 22)
    meta = plan.meta()
    assert meta.window == (21, 0, 106, 128)
    assert meta.scale == pytest.approx((128 / 300, 85 / 200))


def test_square_upscale_to_min_dim():
    plan = plan_resize(40, 30, "square", 64, 128)
    assert plan.resized_shape == (85, 64)  # scale 64 / 30
    assert plan.padding == (21, 22, 32, 32)
    assert plan.meta().window == (32, 21, 96, 106)


def test_image_min_scale():
    plan = plan_resize(100, 80, "square", 64, 128, min_scale=1.2)
    assert plan.resized_shape == (120, 96)
    # max_dim still wins over min_scale (Matterport's order)
    plan = plan_resize(100, 80, "square", 64, 128, min_scale=1.5)
    assert plan.resized_shape == (128, round(80 * 1.28))
    # min_scale also applies in pad64 mode
    plan = plan_resize(100, 70, "pad64", 64, 128, min_scale=2)
    assert plan.resized_shape == (200, 140)
    assert plan.output_shape == (256, 192)


def test_pad64():
    plan = plan_resize(130, 70, "pad64", 64, 128)
    assert plan.resized_shape == (130, 70)  # never scaled down to max_dim
    assert plan.padding == (31, 31, 29, 29)
    assert plan.output_shape == (192, 128)
    assert plan.meta().window == (29, 31, 99, 161)
    plan = plan_resize(40, 50, "pad64", 64, 128)
    assert plan.resized_shape == (64, 80)  # up-scaled so the shorter side is min_dim
    assert plan.output_shape == (64, 128)


def test_crop_uses_rng_and_records_the_crop():
    plan = plan_resize(100, 80, "crop", 64, 128, rng=np.random.default_rng(3))
    expected = np.random.default_rng(3)
    y = int(expected.integers(0, 100 - 64 + 1))
    x = int(expected.integers(0, 80 - 64 + 1))
    assert plan.crop == (y, x, 64, 64)
    assert plan.resized_shape == (100, 80)
    assert plan.padding == (0, 0, 0, 0)
    meta = plan.meta()
    assert meta.window == (0, 0, 64, 64) and meta.crop == (y, x, 64, 64)
    # different seeds give different crops
    crops = {
        plan_resize(200, 200, "crop", 64, 128, rng=np.random.default_rng(s)).crop for s in range(8)
    }
    assert len(crops) > 1


def test_none_mode():
    plan = plan_resize(37, 53, "none", 64, 128)
    assert plan.resized_shape == (37, 53) and plan.padding == (0, 0, 0, 0)
    meta = plan.meta()
    assert meta.window == (0, 0, 53, 37) and meta.scale == (1.0, 1.0)


@pytest.mark.parametrize(
    "shape, resized, output",
    [
        ((480, 640), (800, 1066), (800, 1088)),
        ((640, 480), (1066, 800), (1088, 800)),
        ((300, 900), (444, 1333), (448, 1344)),
        ((800, 800), (800, 800), (800, 800)),
    ],
)
def test_shortest_side(shape, resized, output):
    plan = plan_resize(*shape, "shortest_side", 800, 1333)
    assert plan.resized_shape == resized
    assert plan.output_shape == output
    top, _, left, _ = plan.padding
    assert (top, left) == (0, 0)
    assert plan.meta().window == (0, 0, resized[1], resized[0])


def test_unknown_mode():
    with pytest.raises(ValueError, match="unknown IMAGE_RESIZE_MODE"):
        plan_resize(10, 10, "stretch", 64, 128)


# ------------------------------------------------------------------ molding
def test_mold_batch_square_normalises_and_pads_with_the_mean():
    cfg = config()
    image = np.full((100, 80, 3), 200, dtype=np.uint8)
    image[0, 0] = [10, 20, 30]
    batch, metas = mold_batch([image], cfg)
    assert batch.shape == (1, 3, 128, 128) and batch.dtype == torch.float32
    x1, y1, x2, y2 = metas[0].window
    mean = torch.tensor(cfg.MEAN_PIXEL, dtype=torch.float32)
    torch.testing.assert_close(batch[0, :, y1, x1], torch.tensor([10.0, 20.0, 30.0]) - mean)
    torch.testing.assert_close(batch[0, :, y2 - 1, x2 - 1], 200 - mean)
    assert (batch[0, :, :y1] == 0).all() and (batch[0, :, :, x2:] == 0).all()


def test_mold_batch_std_and_dtype():
    cfg = config(STD_PIXEL=[2.0, 4.0, 8.0], MEAN_PIXEL=[0.0, 0.0, 0.0], IMAGE_RESIZE_MODE="none")
    image = np.full((8, 8, 3), 16, dtype=np.uint8)
    batch, _ = mold_batch([image], cfg, dtype=torch.float64)
    assert batch.dtype == torch.float64
    torch.testing.assert_close(batch[0, :, 0, 0], torch.tensor([8.0, 4.0, 2.0]).double())


def test_mold_batch_shortest_side_mixed_sizes():
    cfg = config(IMAGE_RESIZE_MODE="shortest_side", IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=100)
    images = [np.zeros((48, 64, 3), np.uint8), np.zeros((70, 35, 3), np.uint8)]
    batch, metas = mold_batch(images, cfg)
    assert metas[0].resized_shape == (64, 85)
    assert metas[1].resized_shape == (100, 50)  # the longer side is capped at 100
    assert batch.shape == (2, 3, 128, 96)
    assert [m.window for m in metas] == [(0, 0, 85, 64), (0, 0, 50, 100)]


def test_mold_batch_crop_mode_molds_whole_images_as_pad64():
    # Random crops are for training; inference sees the whole image.
    cfg = config(IMAGE_RESIZE_MODE="crop", MEAN_PIXEL=[0.0, 0.0, 0.0])
    image = np.random.default_rng(0).integers(0, 256, (100, 80, 3)).astype(np.uint8)
    batch, metas = mold_batch([image], cfg, rng=np.random.default_rng(5))
    assert metas[0].crop is None
    assert batch.shape == (1, 3, 128, 128)
    x1, y1, x2, y2 = metas[0].window
    assert (x2 - x1, y2 - y1) == (80, 100)


def test_apply_plan_nearest_for_label_maps():
    plan = plan_resize(4, 4, "square", 8, 8)
    labels = torch.arange(16.0).view(1, 4, 4)
    out = apply_plan(labels, plan, mode="nearest")
    # Each label becomes a 2 x 2 block: no new values, no shift.
    expected = labels[0].repeat_interleave(2, dim=0).repeat_interleave(2, dim=1)[None]
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


# ------------------------------------------------------------------ unmolding
ORIGINAL_BOXES = torch.tensor(
    [[3.0, 5.0, 40.0, 60.0], [0.0, 0.0, 80.0, 100.0], [10.5, 20.25, 11.5, 90.0]],
    dtype=torch.float64,
)


def molded_boxes(boxes: torch.Tensor, meta: ImageMeta) -> torch.Tensor:
    sy, sx = meta.scale
    x1, y1 = meta.window[:2]
    shift = torch.tensor([x1, y1, x1, y1], dtype=boxes.dtype)
    if meta.crop is not None:
        cy, cx = meta.crop[:2]
        shift = shift - torch.tensor([cx, cy, cx, cy], dtype=boxes.dtype)
    return boxes * torch.tensor([sx, sy, sx, sy], dtype=boxes.dtype) + shift


@pytest.mark.parametrize(
    "mode, min_dim, max_dim",
    [
        ("square", 64, 128),  # no scaling
        ("square", 200, 256),  # up-scaled
        ("square", 32, 64),  # down-scaled
        ("pad64", 64, 128),
        ("none", 64, 128),
        ("shortest_side", 150, 300),
    ],
)
def test_unmold_boxes_inverts_molding(mode, min_dim, max_dim):
    meta = plan_resize(100, 80, mode, min_dim, max_dim).meta()
    back = unmold_boxes(molded_boxes(ORIGINAL_BOXES, meta), meta)
    torch.testing.assert_close(back, ORIGINAL_BOXES, atol=1e-4, rtol=0)


def test_unmold_boxes_crop_and_clipping():
    meta = plan_resize(100, 80, "crop", 64, 128, rng=np.random.default_rng(1)).meta()
    boxes = torch.tensor([[30.0, 40.0, 50.0, 60.0]], dtype=torch.float64)
    back = unmold_boxes(molded_boxes(boxes, meta), meta)
    torch.testing.assert_close(back, boxes)
    # boxes beyond the image are clipped to it
    meta = plan_resize(100, 80, "square", 64, 128).meta()
    out = unmold_boxes(torch.tensor([[0.0, 0.0, 128.0, 128.0]]), meta)
    assert out.tolist() == [[0.0, 0.0, 80.0, 100.0]]


# ------------------------------------------------------------------ conversion and reading
def test_read_image(tmp_path):
    from PIL import Image

    rgb = np.random.default_rng(0).integers(0, 256, (6, 10, 3)).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgb)
    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.png")
    gray = read_image(tmp_path / "gray.png")
    assert gray.shape == (6, 10, 3) and (gray[..., 1] == rgb[..., 0]).all()
    # EXIF orientation 6 (rotate 90 clockwise) is applied
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgb).save(tmp_path / "rotated.jpg", exif=exif, quality=100, subsampling=0)
    rotated = read_image(tmp_path / "rotated.jpg")
    assert rotated.shape == (10, 6, 3)
    error = np.abs(rotated.astype(int) - np.rot90(rgb, k=-1)).mean()  # 90 degrees clockwise
    assert error < 4, f"pixels differ from the rotated array by {error:.1f} on average"
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="bad.png"):
        read_image(tmp_path / "bad.png")


def test_decode_image_reads_bytes_as_read_image_reads_files(tmp_path):
    from PIL import Image

    rgb = np.random.default_rng(1).integers(0, 256, (6, 10, 3)).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgb).save(tmp_path / "rotated.jpg", exif=exif)
    data = (tmp_path / "rotated.jpg").read_bytes()
    decoded = decode_image(data, "rotated.jpg")
    assert decoded.shape == (10, 6, 3)  # EXIF orientation applied
    np.testing.assert_array_equal(decoded, read_image(tmp_path / "rotated.jpg"))
    with pytest.raises(ValueError, match="upload: the file is empty"):
        decode_image(b"")
    with pytest.raises(ValueError, match="notes.txt: not an image file"):
        decode_image(b"plain text", "notes.txt")


# ------------------------------------------------------------------ pasting masks
def reference_paste(mask: np.ndarray, box, image_shape, threshold=0.5) -> np.ndarray:
    """Slow pasting of one M x M soft mask, pixel by pixel, from the documented semantics."""
    size = mask.shape[0]
    padded = np.zeros((size + 2, size + 2))
    padded[1:-1, 1:-1] = mask
    x1, y1, x2, y2 = (float(v) for v in box)
    expand = (size + 2) / size
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half_w, half_h = (x2 - x1) / 2 * expand, (y2 - y1) / 2 * expand
    bx0, by0 = int(cx - half_w), int(cy - half_h)  # int() truncates toward zero
    bx1, by1 = int(cx + half_w), int(cy + half_h)
    out_w, out_h = max(bx1 - bx0 + 1, 1), max(by1 - by0 + 1, 1)
    n = size + 2

    def source(index: int, out_size: int) -> tuple[int, int, float]:
        # bilinear, align_corners=False
        s = (index + 0.5) * (n / out_size) - 0.5
        s = max(s, 0.0)
        low = int(math.floor(s))
        high = min(low + 1, n - 1)
        return low, high, s - low

    height, width = image_shape
    result = np.zeros((height, width), dtype=bool)
    for r in range(height):
        for c in range(width):
            dy, dx = r - by0, c - bx0
            if not (0 <= dy < out_h and 0 <= dx < out_w):
                continue
            y_lo, y_hi, ly = source(dy, out_h)
            x_lo, x_hi, lx = source(dx, out_w)
            top = (1 - lx) * padded[y_lo, x_lo] + lx * padded[y_lo, x_hi]
            bottom = (1 - lx) * padded[y_hi, x_lo] + lx * padded[y_hi, x_hi]
            result[r, c] = (1 - ly) * top + ly * bottom > threshold
    return result


PASTE_BOXES = [
    [3.0, 4.0, 15.0, 12.0],  # inside
    [-6.3, -2.7, 8.2, 9.9],  # partly outside left / top (negative coordinates truncate to 0)
    [14.5, 11.2, 30.0, 25.0],  # partly outside right / bottom
    [5.0, 5.0, 5.0, 9.0],  # zero width
    [7.2, 7.2, 7.4, 7.4],  # tiny
    [40.0, 40.0, 50.0, 50.0],  # fully outside
    [0.0, 0.0, 24.0, 18.0],  # the whole image
    [2.0, 3.0, 22.6, 5.1],  # thin and wide
]


#: The two pastings (the CPU's loop and the GPU's whole-image kernels), both run on the CPU here.
PASTERS = [paste_masks_looped, paste_masks_vectorised]


@pytest.mark.parametrize("paste", PASTERS)
@pytest.mark.parametrize("mask_size", [4, 7])
def test_paste_masks_matches_slow_reference(mask_size, paste):
    generator = torch.Generator().manual_seed(mask_size)
    count = len(PASTE_BOXES)
    masks = torch.rand(count, mask_size, mask_size, generator=generator, dtype=torch.float64)
    # a few saturated masks so that whole regions switch on
    masks[3:5] = 1.0
    boxes = torch.tensor(PASTE_BOXES, dtype=torch.float64)
    image_shape = (18, 24)
    out = paste(masks, boxes, image_shape)
    assert out.shape == (18, 24, count) and out.dtype == torch.bool
    for i in range(count):
        expected = reference_paste(masks[i].numpy(), PASTE_BOXES[i], image_shape)
        np.testing.assert_array_equal(out[..., i].numpy(), expected, err_msg=f"mask {i}")
    assert out[..., 5].sum() == 0  # fully outside
    assert out[..., 3].sum() > 0  # a zero-width box still gets a column


@pytest.mark.parametrize("paste", PASTERS)
def test_paste_masks_float32_and_threshold(paste):
    generator = torch.Generator().manual_seed(9)
    masks = torch.rand(3, 6, 6, generator=generator)
    boxes = torch.tensor(PASTE_BOXES[:3])
    out = paste(masks, boxes, (18, 24), threshold=0.3)
    for i in range(3):
        expected = reference_paste(masks[i].double().numpy(), PASTE_BOXES[i], (18, 24), 0.3)
        assert (out[..., i].numpy() != expected).sum() <= 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_vectorised_pasting_gives_the_loops_pixels(dtype, monkeypatch):
    """Many random boxes, some leaving the image, in chunks smaller than their number."""
    monkeypatch.setattr(image_module, "PASTE_CHUNK", 7)
    generator = torch.Generator().manual_seed(0)
    masks = torch.rand(40, 28, 28, generator=generator, dtype=dtype)
    xy = torch.rand(40, 2, generator=generator, dtype=dtype) * 500 - 50
    boxes = torch.cat([xy, xy + torch.rand(40, 2, generator=generator, dtype=dtype) * 300], 1)
    looped = paste_masks_looped(masks, boxes, (480, 640))
    assert looped.any(dim=(0, 1)).sum() >= 30
    assert torch.equal(paste_masks_vectorised(masks, boxes, (480, 640)), looped)


def test_paste_masks_loops_on_the_cpu(monkeypatch):
    """The loop's memory stays box-sized: a huge photo must not get N full-image temporaries."""
    monkeypatch.setattr(image_module, "paste_masks_vectorised", None)  # calling it would fail
    masks, boxes = torch.rand(2, 28, 28), torch.tensor([[1.0, 2.0, 9.0, 7.0], [0, 0, 4, 4]])
    assert torch.equal(
        paste_masks(masks, boxes, (10, 12)), paste_masks_looped(masks, boxes, (10, 12))
    )


@pytest.mark.parametrize("paste", PASTERS)
def test_paste_masks_empty_and_expanded_boxes(paste):
    assert paste(torch.zeros(0, 28, 28), torch.zeros(0, 4), (5, 7)).shape == (5, 7, 0)
    boxes = torch.tensor([[10.0, 20.0, 38.0, 48.0], [-3.0, 0.0, 1.0, 3.9]])
    expanded = expanded_paste_boxes(boxes, 28)
    assert expanded.dtype == torch.int64
    # 28 px box, mask 28 -> 30 / 28 wider about the centre (24, 34): half 15
    assert expanded[0].tolist() == [9, 19, 39, 49]
    # -3.286 -> -3 (truncation toward zero), 1.286 -> 1, -0.139 -> 0, 4.039 -> 4
    assert expanded_paste_boxes(boxes[1:], 28).tolist() == [[-3, 0, 1, 4]]


@pytest.mark.parametrize("paste", PASTERS)
def test_pasted_mask_pixels_exactly_at_the_threshold_stay_out(paste):
    # a constant mask interpolates to exactly its value inside the box: "above the threshold"
    # is strict, so 0.5 is background at threshold 0.5 and foreground just above it
    boxes = torch.tensor([[4.0, 4.0, 20.0, 20.0]])
    at = paste(torch.full((1, 8, 8), 0.5), boxes, (24, 24), threshold=0.5)
    assert at.shape == (24, 24, 1) and not at.any()
    above = paste(torch.full((1, 8, 8), 0.5), boxes, (24, 24), threshold=0.4999)
    assert above[8:16, 8:16, 0].all() and not above[0, 0, 0]


@pytest.mark.parametrize("paste", PASTERS)
def test_a_single_mask_is_pasted_inside_its_box(paste):
    mask = torch.zeros(1, 6, 6)
    mask[0, :, :3] = 1.0  # the left half
    pasted = paste(mask, torch.tensor([[6.0, 2.0, 18.0, 14.0]]), (16, 20))[:, :, 0]
    assert pasted.shape == (16, 20)
    # the box's left half (x 6-12, y 2-14) is the mask; the corners, where the mask meets its
    # zero border in both directions, interpolate below one half
    assert pasted[3:14, 6:12].all()
    assert pasted.sum() == 11 * 6 + 2 * 5
    assert not pasted[:, 12:].any() and not pasted[:, :6].any()
    assert not pasted[:2].any() and not pasted[15:].any()
