"""Instance masks stored box by box, for images too large for an [H, W, N] stack.

``MaskRCNN.detect(images, mask_format="boxes")`` returns :class:`BoxMasks` as ``r["masks"]``:
each instance is kept as its small soft mask and box and pasted when needed, one box at a
time, so 100 instances on a 108-megapixel photo cost megabytes instead of 10.8 GB. It gives
what the commands need without a full stack: the union of a selection (color splash), COCO
RLEs (results JSON), masks for a downscaled preview (figures), and, for code that wants
Matterport's array, :meth:`BoxMasks.to_dense`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from mrcnn.structures.image import paste_masks, pasted_patches
from mrcnn.structures.transfer import to_host


@dataclass
class BoxMasks:
    """N instance masks of an H x W image, kept as the network's small soft masks and their
    boxes, and pasted one instance at a time (torchvision's arithmetic, see
    :func:`mrcnn.structures.image.paste_masks`) whenever pixels are needed.

    Memory is that of the small masks plus one pasted box at a time, whatever the image size.

    Attributes:
        shape: (H, W) of the image.
        soft: float [N, M, M] mask probabilities (CPU tensor).
        boxes: float [N, 4] (x1, y1, x2, y2) image pixels the masks belong to.
        threshold: probability above which a pixel is inside.
    """

    shape: tuple[int, int]
    soft: torch.Tensor = field(default_factory=lambda: torch.zeros((0, 28, 28)))
    boxes: torch.Tensor = field(default_factory=lambda: torch.zeros((0, 4)))
    threshold: float = 0.5

    def __len__(self) -> int:
        return int(self.soft.shape[0])

    def patches(self) -> Iterator[tuple[int, int, int, np.ndarray]]:
        """(index, top, left, bool patch [h, w]) per instance inside the image, one at a time."""
        for index, top, left, patch in pasted_patches(
            self.soft, self.boxes, self.shape, self.threshold
        ):
            yield index, top, left, patch.cpu().numpy()

    def to_dense(self) -> np.ndarray:
        """bool [H, W, N], Matterport's layout (H x W x N bytes: only for modest images)."""
        return to_host(paste_masks(self.soft, self.boxes, self.shape, self.threshold))

    def union(self, keep: Sequence[bool] | np.ndarray | None = None) -> np.ndarray:
        """bool [H, W]: pixels inside any kept instance (all instances when ``keep`` is None)."""
        out = np.zeros(self.shape, dtype=bool)
        for index, top, left, patch in self.patches():
            if keep is None or keep[index]:
                out[top : top + patch.shape[0], left : left + patch.shape[1]] |= patch
        return out

    def areas(self) -> np.ndarray:
        """int64 [N] pixels per instance."""
        out = np.zeros(len(self), dtype=np.int64)
        for index, _, _, patch in self.patches():
            out[index] = int(patch.sum())
        return out

    def scaled(self, shape: tuple[int, int]) -> BoxMasks:
        """The same instances pasted into an image of ``shape`` (H', W'), e.g. a preview."""
        fy, fx = shape[0] / self.shape[0], shape[1] / self.shape[1]
        factor = torch.tensor([fx, fy, fx, fy], dtype=self.boxes.dtype)
        size = (int(shape[0]), int(shape[1]))
        return BoxMasks(size, self.soft, self.boxes * factor, self.threshold)

    def rle(self) -> list[dict]:
        """COCO RLEs (pycocotools' compressed form, "counts" as bytes), one per instance.

        The runs are read off each pasted box in COCO's column-major order and handed to
        pycocotools to compress, so no full-size mask is ever built.
        """
        from pycocotools import mask as mask_utils

        height, width = self.shape
        counts = [[height * width] for _ in range(len(self))]  # empty: all background
        for index, top, left, patch in self.patches():
            counts[index] = _runs(patch, top, left, height, width)
        return [
            mask_utils.frPyObjects({"size": [height, width], "counts": c}, height, width)
            for c in counts
        ]


def _runs(patch: np.ndarray, top: int, left: int, height: int, width: int) -> list[int]:
    """Uncompressed COCO counts of a bool patch placed at (top, left) in an image of
    height x width: alternating background and mask run lengths over the image flattened
    column by column, starting with background."""
    total = height * width
    if not patch.any():
        return [total]
    # Row-wise transitions of each column, in column-major order (transpose, then nonzero).
    padded = np.pad(patch, ((1, 1), (0, 0))).view(np.int8)
    change = np.diff(padded, axis=0).T  # [w, h + 1]: +1 where a run starts, -1 after its end
    columns, rows = np.nonzero(change)
    flat = (left + columns) * height + top + rows
    signs = change[columns, rows]
    starts, ends = flat[signs > 0], flat[signs < 0]
    # A run that reaches the bottom of one column and the next column's top is one run.
    joined = ends[:-1] == starts[1:]
    starts = starts[np.concatenate([[True], ~joined])]
    ends = ends[np.concatenate([~joined, [True]])]
    edges = np.empty(2 * len(starts) + 2, dtype=np.int64)
    edges[0], edges[1:-1:2], edges[2:-1:2], edges[-1] = 0, starts, ends, total
    counts = np.diff(edges).tolist()
    return counts[:-1] if counts[-1] == 0 else counts  # pycocotools ends on the last run
