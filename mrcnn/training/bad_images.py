"""Images that fail to load during training: one line each, counted, and a limit.

When a dataset's ``load_image`` or ``load_mask`` raises for an image, the training data
(:class:`mrcnn.training.data.TrainingSamples`) puts another image in its place and hands the
:class:`~mrcnn.datasets.failures.ImageFailure` to the trainer with the batch. The trainer's
:class:`BadImages` logs one warning per distinct image, counts the skips of each epoch (the
epoch's line and ``metrics.jsonl``), and stops the run with :class:`TooManyBadImages` once the
images read show that more than :data:`MAX_BAD_SHARE` of the dataset fails to load.

Why a share judged with a margin, not a count: Matterport's own balloon sample fails on 7 of the
61 training photos (11%) and should train on the other 54, while a loader that is wrong for
every image, or for a third of them, should stop early. The share of the images read so far is
noisy at first (3 of the first 13 balloon photos can fail), so the run stops only when the
share's lower confidence bound (:data:`CONFIDENCE_Z` standard errors, one-sided 99.9%) is above
:data:`MAX_BAD_SHARE`; the bound tightens to the exact share as the reads cover the dataset
(finite-population correction). Simulated over random reading orders: a wholly broken loader
stops after 8 images, a dataset with 30% broken images always stops, the balloon set stops in
about 1 of 10,000 runs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from mrcnn.datasets.failures import ImageFailure, warn_below_bars

log = logging.getLogger(__name__)

#: Training stops once more than this share of the dataset's images is shown to fail to load...
MAX_BAD_SHARE = 0.20
#: ...by a lower confidence bound this many standard errors below the share of the images read...
CONFIDENCE_Z = 3.0
#: ...once at least this many distinct images were read (or all of them).
MIN_IMAGES_READ = 8
#: Images tried for one sample (the drawn one, then replacements) before it is left out.
REPLACEMENT_TRIES = 10
#: Bad images named in the stop message; the rest are counted.
NAMED_IN_STOP = 10


class TooManyBadImages(RuntimeError):
    """Too many images failed to load: training stopped (one line naming them)."""


@dataclass(frozen=True)
class BadImageLimit:
    """When failing images stop training (see the module docstring)."""

    share: float = MAX_BAD_SHARE
    z: float = CONFIDENCE_Z
    min_read: int = MIN_IMAGES_READ


class BadImages:
    """The failed loads of one ``train`` call, over its epochs, training and validation.

    Args:
        population: distinct images training can read (training and validation together).
        limit: when to stop.
        say: where each new bad image's line goes (default: this module's logger, as a
            warning, below any progress bar).
    """

    def __init__(
        self,
        population: int,
        limit: BadImageLimit | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.population = max(1, int(population))
        self.limit = limit or BadImageLimit()
        self.say = say or (lambda line: warn_below_bars(log, line))
        self.read: set[tuple[str, int]] = set()
        self.bad: dict[tuple[str, int], ImageFailure] = {}
        #: role -> failed loads this epoch; role -> the distinct ids among them.
        self.epoch_counts: dict[str, int] = {}
        self.epoch_ids: dict[str, set[int]] = {}

    def record(
        self, role: str, loaded_ids: Iterable[int], failures: Sequence[ImageFailure]
    ) -> None:
        """Note a batch of ``role`` ("training" or "validation"): the ids it loaded and the
        loads that failed; a line for each image not seen failing before."""
        self.read.update((role, int(i)) for i in loaded_ids)
        for failure in failures:
            key = (role, failure.image_id)
            self.read.add(key)
            self.epoch_counts[role] = self.epoch_counts.get(role, 0) + 1
            self.epoch_ids.setdefault(role, set()).add(failure.image_id)
            if key not in self.bad:
                self.bad[key] = failure
                self.say(f"{role} {failure.describe()}; skipped, another image takes its place")

    def excess(self) -> str | None:
        """Why training must stop now, or None."""
        bad, read = len(self.bad), len(self.read)
        if read < min(self.limit.min_read, self.population):
            return None
        bound = share_lower_bound(bad, read, self.population, self.limit.z)
        if bound <= self.limit.share:
            return None
        return (
            f"{bad} of the {read} distinct images read failed to load ({100 * bad / read:.0f}%): "
            f"more than {100 * self.limit.share:g}% of the {self.population} images fail"
        )

    def stop_error(self, reason: str, checkpoint: str | None) -> TooManyBadImages:
        """The one-line error that ends training because of ``reason``."""
        failures = sorted(self.bad.items())
        named = f": {_named(failures)}" if failures else ""
        first = failures[0][1] if failures else None
        call = "dataset.load_mask(id)"
        if first and first.method.startswith("load_"):
            call = f"dataset.{first.method}({first.image_id})"
        elif first:  # it failed after the loaders: load_image_gt loads and molds as training
            call = f"mrcnn.model.load_image_gt(dataset, config, {first.image_id})"
        kept = f"the last checkpoint {checkpoint} is intact" if checkpoint else "nothing saved"
        return TooManyBadImages(
            f"training stopped: {reason}{named}. Each error is logged above; "
            f"`mrcnn inspect-data` lists every image that fails to load, or call {call} "
            f"yourself to see the traceback. Fix or remove those images; {kept}"
        )

    def take_epoch(self) -> str:
        """The epoch's skips for its log line ("" when none), and start counting afresh."""
        total = sum(self.epoch_counts.values())
        if not total:
            return ""
        ids = "; ".join(
            f"{role} {'id' if len(ids) == 1 else 'ids'} {', '.join(map(str, sorted(ids)))}"
            for role, ids in self.epoch_ids.items()
        )
        text = f"skipped {total} failed image load{'s' if total != 1 else ''} ({ids})"
        self.epoch_counts, self.epoch_ids = {}, {}
        return text


def share_lower_bound(bad: int, read: int, population: int, z: float) -> float:
    """Lower Wilson bound, ``z`` standard errors down, on the share of ``population`` images
    that fail, from ``bad`` failures among ``read`` distinct images drawn without replacement.

    The finite-population correction scales the sample size up as it covers the population:
    having read every image, the bound is the observed share.
    """
    share = bad / read
    remaining = (population - read) / max(1, population - 1)
    if remaining <= 0:
        return share
    n = read / remaining
    centre = share + z * z / (2 * n)
    spread = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


def _named(failures: list[tuple[tuple[str, int], ImageFailure]]) -> str:
    """``training image 3 (a.jpg): load_mask raised IndexError; ...`` for the first
    :data:`NAMED_IN_STOP` failures, and how many more there are."""
    named = "; ".join(
        f"{role} image {f.image_id}"
        + (f" ({f.reference})" if f.reference else "")
        + f": {f.method} raised {f.error_type}"
        for (role, _), f in failures[:NAMED_IN_STOP]
    )
    more = len(failures) - NAMED_IN_STOP
    return named + (f"; and {more} more" if more > 0 else "")
