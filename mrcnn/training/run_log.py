"""What a training run records: ``metrics.jsonl``, TensorBoard events and the progress bar.

``metrics.jsonl`` in the run folder gets one JSON object per line: after every optimiser step
``{"step", "epoch", <loss names>..., "loss", "lr", "seconds", "skipped_images"}`` and after each
epoch's validation ``{"step", "epoch", "val_<loss name>"..., "val_loss",
"val_skipped_images"}`` (with VALIDATION_BOOTSTRAP also "val_loss_ci_low" and
"val_loss_ci_high", see :func:`val_loss_interval`); ``skipped_images`` counts the images of
that step (or validation) whose ``load_image`` or ``load_mask`` raised and that another image
replaced (see :mod:`mrcnn.training.bad_images`). The same figures go to TensorBoard
(``train/...``, ``val/...``). Only the main process of a distributed run logs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mrcnn.evaluation.bootstrap import Bootstrap, Interval, mean_samples
from mrcnn.modeling.losses import LOSS_NAMES
from mrcnn.weights.checkpoint import METRICS_FILE


class RunLogger:
    """The logs of one ``train`` call in ``run_dir``; a no-op where ``enabled`` is False."""

    def __init__(self, run_dir: Path | None, enabled: bool = True) -> None:
        self.run_dir = run_dir
        self.enabled = enabled and run_dir is not None
        self._writer = None
        if self.enabled:
            # why here: TensorBoard's import costs start-up time to every `import mrcnn.model`.
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(run_dir))

    def progress(self, total: int, label: str) -> tqdm:
        """A progress bar of ``total`` steps (hidden when not logging)."""
        return tqdm(total=total, desc=label, disable=not self.enabled, dynamic_ncols=True)

    def step(
        self,
        step: int,
        epoch: int,
        values: dict[str, float],
        lr: float,
        seconds: float,
        images: int,
        skipped: int = 0,
    ) -> None:
        """Record the losses of global step ``step``, which took ``seconds`` for ``images``
        after ``skipped`` failed image loads."""
        if not self.enabled:
            return
        record = {"step": step, "epoch": epoch, **values, "lr": lr, "seconds": seconds}
        self._append(record | {"skipped_images": skipped})
        for key, value in values.items():
            self._writer.add_scalar(f"train/{key}", value, step)
        self._writer.add_scalar("train/lr", lr, step)
        self._writer.add_scalar("train/images_per_second", images / max(seconds, 1e-9), step)

    def validation(
        self,
        step: int,
        epoch: int,
        values: dict[str, float],
        skipped: int = 0,
        interval: Interval | None = None,
    ) -> None:
        """Record an epoch's validation losses (keys ``val_*``), if any, how many image loads
        failed during it, and the interval of ``val_loss`` (``val_loss_ci_low`` and
        ``val_loss_ci_high``) when there is one."""
        if not self.enabled or not values:
            return
        if interval is not None:
            values = values | {f"val_loss_{k}": v for k, v in interval.as_dict().items()}
        self._append({"step": step, "epoch": epoch, **values, "val_skipped_images": skipped})
        for key, value in values.items():
            if value is not None:  # an interval of a non-finite loss is None
                self._writer.add_scalar(f"val/{key.removeprefix('val_')}", value, step)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _append(self, record: dict) -> None:
        with open(self.run_dir / METRICS_FILE, "a") as stream:
            stream.write(json.dumps(record) + "\n")


def short_names(values: dict[str, float]) -> dict[str, str]:
    """Losses as the progress bar shows them: ``rpn_class`` for ``rpn_class_loss``, 3 decimals."""
    names = {"loss": "loss", **{name: name.replace("_loss", "") for name in LOSS_NAMES}}
    return {names.get(k, k): f"{v:.3f}" for k, v in values.items()}


def val_loss_interval(batch_losses: list[float], resamples: int) -> Interval | None:
    """The 95% bootstrap interval of the validation loss, the mean of ``batch_losses`` (one
    total loss per validation batch), from ``resamples`` resamples of the batches; None when
    ``resamples`` is 0 or there was no batch. The seed is fixed, so reruns agree."""
    if resamples < 1 or not batch_losses:
        return None
    bootstrap = Bootstrap(resamples)
    values = np.asarray(batch_losses, dtype=np.float64)
    return bootstrap.interval(mean_samples(values, bootstrap.counts(len(values))))


def epoch_summary(values: dict[str, float], interval: Interval | None, batches: int) -> str:
    """The figures of an epoch's printed line: "loss 1.2345, ..., val_loss 1.3000 (95%
    interval [1.1000, 1.5000] over 50 batches), ..."."""
    shown = {key: f"{value:.4f}" for key, value in values.items()}
    if interval is not None and "val_loss" in shown:
        level = f"{interval.confidence * 100:g}%"
        shown["val_loss"] += f" ({level} interval {interval} over {batches} batches)"
    return ", ".join(f"{key} {value}" for key, value in shown.items())
