"""Small generated videos for the tracking tests: textured squares moving over a textured
background (optical flow needs texture), their true masks, and a stand-in model that
"detects" exactly those masks, so that a test controls every detection."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import cv2
import numpy as np

from mrcnn.tracking.detections import detections_from_masks

H, W = 96, 128


def texture(height: int, width: int, seed: int) -> np.ndarray:
    """uint8 [height, width, 3] smooth random texture (blobs of about 8 pixels)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3)).astype(np.float32)
    smooth = cv2.resize(coarse, (coarse.shape[1] * 8, coarse.shape[0] * 8), cv2.INTER_CUBIC)
    return np.clip(smooth[:height, :width], 0, 255).astype(np.uint8)


@dataclass
class Square:
    """A textured square whose top-left corner is ``start + velocity * t`` (y, x) at frame t."""

    start: tuple[float, float]
    velocity: tuple[float, float]
    size: int = 24
    seed: int = 1

    def corner(self, t: int) -> tuple[int, int]:
        return tuple(int(round(s + v * t)) for s, v in zip(self.start, self.velocity, strict=True))


@dataclass
class Scene:
    """A background and squares; ``cut_at``: from that frame on, another background."""

    squares: list[Square]
    seed: int = 0
    cut_at: int | None = None
    _backgrounds: dict = field(default_factory=dict)

    def background(self, t: int) -> np.ndarray:
        key = 1 if self.cut_at is not None and t >= self.cut_at else 0
        if key not in self._backgrounds:
            self._backgrounds[key] = texture(H, W, self.seed + 100 * key)
        return self._backgrounds[key]

    def frame(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """(RGB uint8 [H, W, 3], true masks bool [H, W, N], one per square, possibly empty)."""
        image = self.background(t).copy()
        masks = np.zeros((H, W, len(self.squares)), dtype=bool)
        for i, square in enumerate(self.squares):
            y, x = square.corner(t)
            patch = texture(square.size, square.size, square.seed)
            y1, x1 = max(0, y), max(0, x)
            y2, x2 = min(H, y + square.size), min(W, x + square.size)
            if y2 > y1 and x2 > x1:
                image[y1:y2, x1:x2] = patch[y1 - y : y2 - y, x1 - x : x2 - x]
                masks[y1:y2, x1:x2, i] = True
                masks[y1:y2, x1:x2, :i] = False  # drawn over earlier squares
        return image, masks


def detection(masks: np.ndarray, scores, class_id: int = 1) -> dict:
    """A detect-style dict of the non-empty masks among bool ``masks`` [H, W, N]."""
    keep = masks.any(axis=(0, 1))
    scores = np.asarray(scores, dtype=np.float32)[keep]
    return detections_from_masks(masks[:, :, keep], np.full(len(scores), class_id), scores)


class ScriptedModel:
    """Stands in for a MaskRCNN: ``detect`` answers the detection scripted for each frame
    (found by the frame's bytes), dropping those under ``config.DETECTION_MIN_CONFIDENCE``
    as the real detection layer does, and counts its calls."""

    def __init__(self, frames: list[np.ndarray], results: list[dict], min_confidence=0.7):
        self._by_frame = {f.tobytes(): r for f, r in zip(frames, results, strict=True)}
        self.config = SimpleNamespace(DETECTION_MIN_CONFIDENCE=min_confidence)
        self.detected_frames = 0

    def detect(self, images: list[np.ndarray]) -> list[dict]:
        self.detected_frames += len(images)
        return [self._filtered(self._by_frame[image.tobytes()]) for image in images]

    def _filtered(self, result: dict) -> dict:
        keep = result["scores"] >= self.config.DETECTION_MIN_CONFIDENCE
        return {
            key: value[:, :, keep] if key == "masks" else value[keep]
            for key, value in result.items()
        }


def scripted(scene: Scene, frames: int, scores=None) -> tuple[list, list, ScriptedModel]:
    """(frames, true masks, model detecting them) of ``scene``; ``scores(t, i)`` gives the
    score of square i in frame t (default 0.9)."""
    images, truths, results = [], [], []
    for t in range(frames):
        image, masks = scene.frame(t)
        images.append(image)
        truths.append(masks)
        score = [scores(t, i) if scores else 0.9 for i in range(masks.shape[2])]
        results.append(detection(masks, score))
    return images, truths, ScriptedModel(images, results)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0
