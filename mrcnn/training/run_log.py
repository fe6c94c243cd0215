"""What a training run records: ``metrics.jsonl``, TensorBoard events and the progress bar.

``metrics.jsonl`` in the run folder gets one JSON object per line: after every optimiser step
``{"step", "epoch", <loss names>..., "loss", "lr", "seconds", "skipped_images"}`` and after each
epoch's validation ``{"step", "epoch", "val_<loss name>"..., "val_loss",
"val_skipped_images"}``; ``skipped_images`` counts the images of that step (or validation) whose
``load_image`` or ``load_mask`` raised and that another image replaced (see
:mod:`mrcnn.training.bad_images`). The same figures go to TensorBoard (``train/...``,
``val/...``). Only the main process of a distributed run logs.
"""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

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

    def validation(self, step: int, epoch: int, values: dict[str, float], skipped: int = 0) -> None:
        """Record an epoch's validation losses (keys ``val_*``), if any, and how many image
        loads failed during it."""
        if not self.enabled or not values:
            return
        self._append({"step": step, "epoch": epoch, **values, "val_skipped_images": skipped})
        for key, value in values.items():
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
