"""How often the bootstrap interval of mAP (the mean of per-image APs) covers the true mean.

Synthetic images whose AP distribution is known in closed form: each image has one ground truth
and ``depth`` detections; the true positive sits at rank r with probability p (1 - p)^(r - 1)
(r = 1..depth), else the object is missed. The image's AP, computed by
``mrcnn.evaluation.ap.ap_from_matches`` from its ranked matches, is then 1/r (0 when missed), so
the population mean is sum_r p (1 - p)^(r - 1) / r. Each repetition draws ``images`` such
images, bootstraps the mean of their APs with ``mrcnn.evaluation.Bootstrap`` and checks whether
the interval holds the true mean.

    python -m benchmarks.bootstrap_coverage                 # 500 repetitions, 13/50/200 images
    python -m benchmarks.bootstrap_coverage --repetitions 100 --images 13
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

from mrcnn.evaluation.ap import ap_from_matches
from mrcnn.evaluation.bootstrap import Bootstrap, mean_samples

#: Chance that the true positive is at the next rank, and the detections per image.
HIT, DEPTH = 0.55, 5


def true_mean_ap(hit: float = HIT, depth: int = DEPTH) -> float:
    """The closed-form mean of the synthetic images' AP: sum_r hit (1 - hit)^(r - 1) / r."""
    ranks = np.arange(1, depth + 1)
    return float(np.sum(hit * (1 - hit) ** (ranks - 1) / ranks))


def synthetic_image_aps(
    rng: np.random.Generator, images: int, hit: float = HIT, depth: int = DEPTH
) -> np.ndarray:
    """float [images]: the AP of each of ``images`` synthetic images (see the module
    docstring), computed from its ranked detections (scores descending, matches >= 0 for the
    true positive, -1 for false positives)."""
    ranks = rng.geometric(hit, size=images)  # 1, 2, ...; past ``depth``: missed
    aps = np.empty(images)
    for i, rank in enumerate(ranks):
        matches = np.full(depth, -1)
        if rank <= depth:
            matches[rank - 1] = 0
        aps[i] = ap_from_matches(matches, 1)[0]
    return aps


@dataclass
class Coverage:
    """Outcome of :func:`coverage`: the share of intervals holding the true mean, and the
    intervals' mean width."""

    images: int
    repetitions: int
    covered: int
    mean_width: float
    normal_width: float

    @property
    def rate(self) -> float:
        return self.covered / self.repetitions

    @property
    def spread(self) -> float:
        """The binomial standard error of ``rate`` at the nominal 95%."""
        return float(np.sqrt(0.95 * 0.05 / self.repetitions))


def coverage(
    images: int, repetitions: int, bootstrap: Bootstrap | None = None, seed: int = 1
) -> Coverage:
    """Draw ``repetitions`` synthetic evaluations of ``images`` images and bootstrap each.

    Each repetition uses its own bootstrap seed (``bootstrap.seed + repetition``); the images
    come from ``np.random.default_rng(seed)``. ``normal_width`` is the closed-form width
    2 z sigma / sqrt(images) of the normal interval with the population's sigma.
    """
    bootstrap = bootstrap or Bootstrap()
    rng = np.random.default_rng(seed)
    truth = true_mean_ap()
    covered, widths = 0, []
    for repetition in range(repetitions):
        aps = synthetic_image_aps(rng, images)
        draws = Bootstrap(bootstrap.resamples, bootstrap.confidence, bootstrap.seed + repetition)
        interval = draws.interval(mean_samples(aps, draws.counts(images)))
        covered += int(interval.low <= truth <= interval.high)
        widths.append(interval.high - interval.low)
    return Coverage(images, repetitions, covered, float(np.mean(widths)), _normal_width(images))


def _normal_width(images: int, z: float = 1.959964) -> float:
    ranks = np.arange(1, DEPTH + 1)
    p = HIT * (1 - HIT) ** (ranks - 1)
    second = float(np.sum(p / ranks**2))
    sigma = np.sqrt(second - true_mean_ap() ** 2)
    return float(2 * z * sigma / np.sqrt(images))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=500)
    parser.add_argument("--images", type=int, nargs="+", default=[13, 50, 200])
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args(argv)
    print(f"true mean AP {true_mean_ap():.4f} (hit {HIT}, {DEPTH} detections per image)")
    print("| images | repetitions | covered | rate | ±1 s.e. at 95% | mean width | normal width |")
    print("|---|---|---|---|---|---|---|")
    start = time.perf_counter()
    for images in args.images:
        result = coverage(images, args.repetitions, Bootstrap(args.resamples))
        print(
            f"| {images} | {result.repetitions} | {result.covered} | {result.rate:.3f} | "
            f"{result.spread:.3f} | {result.mean_width:.4f} | {result.normal_width:.4f} |"
        )
    print(f"wall time {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
