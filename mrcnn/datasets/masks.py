"""Instance masks stored as image files.

Two layouts:
    * mask folders (the nucleus layout, spec ``masks:PATH``)::

          PATH/<id>/images/<id>.png      the image
          PATH/<id>/masks/*.png          one file per instance, non-zero pixels inside

      ``PATH/train/<id>/...`` and ``PATH/val/<id>/...`` are read as subsets when present.
    * label images (spec ``labels:IMAGES_DIR:MASKS_DIR``): for ``IMAGES_DIR/<stem>.<ext>`` the
      mask ``MASKS_DIR/<stem>_mask.png`` or ``MASKS_DIR/<stem>.png``, where each pixel value is an
      instance id and 0 the background (8- or 16-bit grayscale, palette indices, or RGB colours).
      All instances are one class unless ``class_map`` maps pixel values to class names.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from mrcnn.datasets.base import Dataset, empty_masks, mask_loader
from mrcnn.datasets.loading import (
    DatasetWarning,
    LoadReport,
    check_split_subset,
    in_subset,
    read_image_size,
)

#: File name endings read as images.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


# ------------------------------------------------------------------------------------------------
# Reading mask files
# ------------------------------------------------------------------------------------------------
def _open_mask(path: Path) -> np.ndarray:
    """The raw pixel array of a mask file: [H, W] or [H, W, C], no EXIF rotation (mask files
    are written by programs, which do not set it)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as pil:
            if pil.mode in ("1", "L", "P", "I", "I;16", "I;16B", "I;16L", "F"):
                return np.asarray(pil)
            return np.asarray(pil.convert("RGBA" if "A" in pil.mode else "RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"cannot read mask {path}: {error}") from error


def read_binary_mask(path: Path) -> np.ndarray:
    """bool [H, W]: the non-zero pixels of a mask file (any colour channel; alpha ignored)."""
    array = _open_mask(path)
    if array.ndim == 3:
        array = array[:, :, :3].max(axis=2)
    return array > 0


def read_label_image(path: Path) -> np.ndarray:
    """int64 [H, W] instance ids of a label image: grey values, palette indices, or for colour
    files one id per RGB colour (``r << 16 | g << 8 | b``)."""
    array = _open_mask(path)
    if array.ndim == 3:
        rgb = array[:, :, :3].astype(np.int64)
        if (rgb == rgb[:, :, :1]).all():  # a grey image saved as RGB
            return rgb[:, :, 0]
        return (rgb[:, :, 0] << 16) | (rgb[:, :, 1] << 8) | rgb[:, :, 2]
    return array.astype(np.int64)


def _mask_size(path: Path) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as pil:
            return pil.size[1], pil.size[0]
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"cannot read mask {path}: {error}") from error


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


# ------------------------------------------------------------------------------------------------
# The nucleus layout
# ------------------------------------------------------------------------------------------------
class MaskFolderDataset(Dataset):
    """One folder per image with ``images/`` and ``masks/`` (one PNG per instance)."""

    def load_folders(
        self,
        path: str | Path,
        subset: str | None = None,
        *,
        class_name: str = "object",
        keep_empty: bool = False,
        source: str = "masks",
    ) -> LoadReport:
        """Add every ``PATH/<id>/images/<id>.png`` with its ``masks/*.png``.

        Args:
            path: the dataset folder.
            subset: with ``PATH/<subset>/`` folders, the one to read (None: all); otherwise
                "train"/"val" select a deterministic ~90/10 split by folder name (None: all).
            class_name: the name of the one class.
            keep_empty: keep images without a mask file (default: skip them).
            source: the source name of the class and images.
        """
        path = Path(path)
        folders = _image_folders(path, subset)
        self.add_class(source, 1, class_name)
        report = LoadReport(f"{source} {path} ({subset or 'all'})")
        for folder, split in folders:
            if in_subset(folder.name, split):
                self._add_folder(folder, keep_empty, source, report)
        return self.keep_report(report, f"{source} {path}", subset)

    def _add_folder(self, folder: Path, keep_empty: bool, source: str, report: LoadReport) -> None:
        images = _image_files(folder / "images")
        named = [p for p in images if p.stem == folder.name]
        if len(named) != 1 and len(images) != 1:
            found = f"{len(images)} image files" if images else "no image file"
            report.skip_image(str(folder / "images"), f"{found}, expected {folder.name}.png")
            return
        image_path = named[0] if named else images[0]
        try:
            height, width = read_image_size(image_path)
        except ValueError as error:
            report.skip_image(str(image_path), "unreadable image", str(error))
            return
        mask_dir = folder / "masks"
        mask_paths = _image_files(mask_dir) if mask_dir.is_dir() else []
        kept = []
        for mask_path in mask_paths:
            try:
                size = _mask_size(mask_path)
            except ValueError as error:
                report.skip_region(str(mask_path), "unreadable mask", str(error))
                continue
            if size != (height, width):
                report.skip_region(
                    str(mask_path),
                    "mask size differs from the image",
                    f"{size[1]}x{size[0]} vs {width}x{height}",
                )
                continue
            kept.append(str(mask_path))
        self.add_loaded_image(
            report,
            source,
            folder.name,
            str(image_path),
            len(kept),
            keep_empty=keep_empty,
            empty_reason="no usable masks" if mask_paths else "no masks",
            width=width,
            height=height,
            mask_paths=kept,
            format="mask_folders",
        )

    @mask_loader("mask_folders")
    def load_folder_mask(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """bool [H, W, N] masks (one per mask file) and int32 [N] class ids."""
        info = self.image_info[image_id]
        height, width = info["height"], info["width"]
        if not info["mask_paths"]:
            return empty_masks(height, width)
        masks = np.stack([read_binary_mask(Path(p)) for p in info["mask_paths"]], axis=-1)
        keep = masks.any(axis=(0, 1))
        if not keep.all():
            empty = [p for p, k in zip(info["mask_paths"], keep, strict=True) if not k]
            warnings.warn(f"empty mask files dropped: {', '.join(empty)}", DatasetWarning, 2)
            masks = masks[:, :, keep]
        class_id = self.map_source_class_id(f"{info['source']}.1")
        return masks, np.full(masks.shape[-1], class_id, dtype=np.int32)


def _is_image_folder(folder: Path) -> bool:
    return folder.is_dir() and (folder / "images").is_dir()


def _image_folders(path: Path, subset: str | None) -> list[tuple[Path, str | None]]:
    """(image folder, hash split subset or None) pairs to read for ``subset``."""
    if not path.is_dir():
        raise FileNotFoundError(f"mask folder dataset not found: {path} is not a folder")
    children = sorted(p for p in path.iterdir() if p.is_dir())
    direct = [c for c in children if _is_image_folder(c)]
    if direct:
        check_split_subset(subset, str(path))
        return [(c, subset) for c in direct]
    subsets = {c.name: c for c in children if any(_is_image_folder(g) for g in c.iterdir())}
    if not subsets:
        raise FileNotFoundError(
            f"no image folders in {path}: expected {path}/<id>/images/<id>.png and "
            f"{path}/<id>/masks/*.png (or the same under {path}/<subset>/)"
        )
    if subset is None:
        chosen = list(subsets.values())
    elif subset in subsets:
        chosen = [subsets[subset]]
    else:
        raise FileNotFoundError(
            f"{path}/{subset} not found: {path} has the subsets {', '.join(sorted(subsets))}"
        )
    return [(c, None) for folder in chosen for c in sorted(folder.iterdir()) if _is_image_folder(c)]


# ------------------------------------------------------------------------------------------------
# Label images
# ------------------------------------------------------------------------------------------------
class LabelDataset(Dataset):
    """Images with one label image each, whose pixel values are instance ids."""

    def load_labels(
        self,
        images_dir: str | Path,
        masks_dir: str | Path,
        subset: str | None = None,
        *,
        class_map: dict[int, str] | None = None,
        class_name: str = "object",
        keep_empty: bool = False,
        source: str = "labels",
    ) -> LoadReport:
        """Add every image of ``images_dir`` that has a label image in ``masks_dir``.

        Args:
            subset: "train"/"val" select a deterministic ~90/10 split by file stem (None: all).
            class_map: pixel value -> class name, for label images whose values also say the
                class; values missing from it are dropped with a warning. Default: every
                non-zero value is one instance of ``class_name``.
            keep_empty: keep images whose label image is all background (default: skip them).
        Label images are decoded here once, to count instances and check their sizes.
        """
        images_dir, masks_dir = Path(images_dir), Path(masks_dir)
        for folder in (images_dir, masks_dir):
            if not folder.is_dir():
                raise FileNotFoundError(f"label dataset folder not found: {folder}")
        check_split_subset(subset, str(images_dir))
        names = sorted(set(class_map.values())) if class_map else [class_name]
        for class_id, name in enumerate(names, start=1):
            self.add_class(source, class_id, name)
        value_class = (
            {int(v): names.index(n) + 1 for v, n in class_map.items()} if class_map else None
        )
        report = LoadReport(f"{source} {images_dir} ({subset or 'all'})")
        for image_path in _image_files(images_dir):
            if image_path.stem.endswith("_mask") or not in_subset(image_path.stem, subset):
                continue
            self._add_labelled(image_path, masks_dir, value_class, keep_empty, source, report)
        return self.keep_report(report, f"{source} {images_dir}", subset)

    def _add_labelled(
        self,
        image_path: Path,
        masks_dir: Path,
        value_class: dict[int, int] | None,
        keep_empty: bool,
        source: str,
        report: LoadReport,
    ) -> None:
        mask_path = find_label_file(image_path, masks_dir)
        if mask_path is None:
            report.skip_image(
                str(image_path),
                "no label image",
                f"looked for {image_path.stem}_mask.png and {image_path.stem}.png in {masks_dir}",
            )
            return
        try:
            height, width = read_image_size(image_path)
            labels = read_label_image(mask_path)
        except ValueError as error:
            report.skip_image(str(image_path), "unreadable image or label image", str(error))
            return
        if labels.shape[:2] != (height, width):
            report.skip_image(
                str(mask_path),
                "label image size differs from the image",
                f"{labels.shape[1]}x{labels.shape[0]} vs {width}x{height}",
            )
            return
        values = [int(v) for v in np.unique(labels) if v != 0]
        if value_class is not None:
            unknown = [v for v in values if v not in value_class]
            for value in unknown:
                report.skip_region(f"{mask_path} value {value}", "value not in class_map")
            values = [v for v in values if v in value_class]
        self.add_loaded_image(
            report,
            source,
            image_path.stem,
            str(image_path),
            len(values),
            keep_empty=keep_empty,
            empty_reason="label image has no instance",
            width=width,
            height=height,
            mask_path=str(mask_path),
            label_values=values,
            label_classes=[value_class[v] if value_class else 1 for v in values],
            format="labels",
        )

    @mask_loader("labels")
    def load_label_mask(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """bool [H, W, N] masks, one per label value (ascending), and int32 [N] class ids."""
        info = self.image_info[image_id]
        values = np.asarray(info["label_values"], dtype=np.int64)
        if values.size == 0:
            return empty_masks(info["height"], info["width"])
        labels = read_label_image(Path(info["mask_path"]))
        masks = labels[:, :, None] == values[None, None, :]
        class_ids = np.array(
            [self.map_source_class_id(f"{info['source']}.{c}") for c in info["label_classes"]],
            dtype=np.int32,
        )
        return masks, class_ids


def find_label_file(image_path: Path, masks_dir: Path) -> Path | None:
    """``<stem>_mask.png`` or ``<stem>.png`` in ``masks_dir`` (never the image itself)."""
    for name in (f"{image_path.stem}_mask.png", f"{image_path.stem}.png"):
        candidate = masks_dir / name
        if candidate.is_file() and candidate.resolve() != image_path.resolve():
            return candidate
    return None
