"""Datasets whose loaders raise for some images, as Matterport's balloon sample's ``load_mask``
does (``skimage.draw.polygon`` raises IndexError for a vertex on the right or bottom edge)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from mrcnn.datasets import ShapesDataset

#: What skimage.draw.polygon raised for the balloon photos, at this module's 64-pixel size.
EDGE_ERROR = "index 64 is out of bounds for axis 1 with size 64"


class BrokenShapes(ShapesDataset):
    """Shapes whose ``load_mask`` raises IndexError for the ids in ``bad_masks`` and whose
    ``load_image`` raises OSError for those in ``bad_images`` (a module-level class, so that
    DataLoader workers can receive it by any start method)."""

    def __init__(self, bad_masks: Iterable[int] = (), bad_images: Iterable[int] = ()) -> None:
        super().__init__()
        self.bad_masks = {int(i) for i in bad_masks}
        self.bad_images = {int(i) for i in bad_images}

    def load_mask(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        if int(image_id) in self.bad_masks:
            raise IndexError(EDGE_ERROR)
        return super().load_mask(image_id)

    def load_image(self, image_id: int) -> np.ndarray:
        if int(image_id) in self.bad_images:
            raise OSError(f"cannot identify image file {self.image_info[image_id]['path']!r}")
        return super().load_image(image_id)


def broken_shapes(
    count: int,
    bad_masks: Iterable[int] = (),
    bad_images: Iterable[int] = (),
    subset: str = "train",
) -> BrokenShapes:
    """A prepared :class:`BrokenShapes` of ``count`` 64 x 64 images (as
    :func:`tests.helpers.training.shapes`), each with a path ``photos/<subset>_<id>.jpg`` for
    the messages to name (the images are generated; nothing reads the paths)."""
    dataset = BrokenShapes(bad_masks, bad_images)
    dataset.load_shapes(count, 64, 64, subset=subset, seed=1, max_shapes=2)
    for info in dataset.image_info:
        info["path"] = f"photos/{subset}_{info['id']}.jpg"
    dataset.prepare()
    return dataset


def shapes_failing_for(bad_masks: Iterable[int]):
    """A ``ShapesDataset.load_mask`` replacement (for monkeypatch.setattr on the class, where a
    command builds its own dataset) raising IndexError for ``bad_masks``."""
    bad = {int(i) for i in bad_masks}
    original = ShapesDataset.load_mask

    def load_mask(self, image_id: int):
        if int(image_id) in bad:
            raise IndexError(EDGE_ERROR)
        return original(self, image_id)

    return load_mask
