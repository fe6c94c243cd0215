"""The training loop behind ``MaskRCNN.train`` (Matterport's meaning of its arguments).

``train(subject, train_dataset, val_dataset, learning_rate, epochs, layers)`` trains the layers
of ``subject.net`` selected by ``layers`` from epoch ``subject.state.epoch + 1`` up to ``epochs``
(the final epoch number,
so "heads to 10, then all to 30" is two calls). Every epoch ends with VALIDATION_STEPS of
validation losses and a checkpoint in the run folder; see docs/training.md. An image whose
``load_image`` or ``load_mask`` raises is logged once, replaced and counted; too many of them
stop the run (:mod:`mrcnn.training.bad_images`).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from mrcnn.config import Config
from mrcnn.config_checks import amp_device_error, training_errors
from mrcnn.datasets.base import describe_classes
from mrcnn.modeling.cpu_threads import CpuThreads
from mrcnn.modeling.losses import training_losses, weighted_total
from mrcnn.modeling.precision import cpu_bf16_shortfall
from mrcnn.outputs import write_output
from mrcnn.training import distributed
from mrcnn.training.bad_images import REPLACEMENT_TRIES, BadImages
from mrcnn.training.data import Batch, EpochSampler, TrainingSamples, collate
from mrcnn.training.imgaug_adapter import adapt_augmentation
from mrcnn.training.layers import build_optimizer, set_train_mode, set_trainable, warmup_factor
from mrcnn.training.run_log import RunLogger, epoch_summary, short_names, val_loss_interval
from mrcnn.training.state import TrainingState
from mrcnn.weights.checkpoint import (
    RunLock,
    atomic_torch_save,
    check_same_architecture,
    checkpoint_path,
    checkpoint_payload,
    claim_run_dir,
    run_dir_of,
)

log = logging.getLogger(__name__)

AMP_DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16}


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; training stopped before the weights were updated."""


class DatasetMismatch(ValueError):
    """The dataset's classes do not match the config's NUM_CLASSES."""


class LossModule(nn.Module):
    """The network with :func:`training_losses` as its forward, so DDP can wrap it."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, images, windows, gt) -> dict[str, torch.Tensor]:
        return training_losses(self.net, images, windows, gt)


# ------------------------------------------------------------------------------------------------
# Checks
# ------------------------------------------------------------------------------------------------
def check_dataset(dataset, config, which: str) -> None:
    """Refuse a dataset whose class count differs from NUM_CLASSES, before any work."""
    count = getattr(dataset, "num_classes", None)
    if count is None:
        raise ValueError(f"{which}: call dataset.prepare() before training")
    if int(count) != int(config.NUM_CLASSES):
        raise DatasetMismatch(
            f"{which} has {describe_classes(dataset)} but the config "
            f"has NUM_CLASSES = {config.NUM_CLASSES}; set NUM_CLASSES = {count} in the config "
            f"(CLI: --set NUM_CLASSES={count})"
        )
    if len(dataset.image_ids) == 0:
        raise ValueError(f"{which} has no images")


def _finite_or_raise(values: dict[str, float], where: str, checkpoint: str | None) -> None:
    if all(math.isfinite(v) for v in values.values()):
        return
    shown = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
    kept = f"the last good checkpoint {checkpoint} is intact" if checkpoint else "nothing saved"
    raise TrainingDiverged(
        f"non-finite loss at {where}: {shown}. Training stopped before this step's update; "
        f"{kept}. Lower the learning rate, add warm-up (WARMUP_STEPS), or check that image's "
        "annotations"
    )


# ------------------------------------------------------------------------------------------------
# The loop
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingSubject:
    """What training reads and advances (the facade, :class:`mrcnn.maskrcnn.MaskRCNN`, hands
    over its own objects, so that training sees no more of it than this).

    Attributes:
        net: the network, trained in place (moved to ``device``).
        config: the config it was built with (read for the training settings).
        state: its run state (epoch, step, run folder, checkpoint), advanced by training.
        device: where it trains (each distributed rank takes its own GPU of that type).
        model_dir: the folder new run folders are created in.
    """

    net: nn.Module
    config: Config
    state: TrainingState
    device: torch.device
    model_dir: Path


class Trainer:
    """State of one ``train`` call; :meth:`run` does the work."""

    def __init__(
        self,
        subject: TrainingSubject,
        train_dataset,
        val_dataset,
        learning_rate,
        epochs,
        layers,
        aug,
    ) -> None:
        self.deadline: float | None = None
        #: Seconds the last epoch took (training and validation), for the time-left estimate.
        self.epoch_seconds: float | None = None
        self.net, self.config, self.model_dir = subject.net, subject.config, subject.model_dir
        #: The model's run state (epoch, step, run folder, checkpoint): this trainer advances it.
        self.state = subject.state
        self.learning_rate, self.final_epoch, self.layers = float(learning_rate), epochs, layers
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate={learning_rate!r}: must be a finite number > 0")
        check_dataset(train_dataset, self.config, "the training dataset")
        self.class_names = list(train_dataset.class_names)
        if val_dataset is not None:
            check_dataset(val_dataset, self.config, "the validation dataset")
        self.device = distributed.device_for_rank(subject.device, distributed.info().local_rank)
        _check_training_config(self.config, self.device)
        self.dist = distributed.setup(self.device)
        self.net.to(self.device)
        self.trainable = set_trainable(self.net, layers)
        self.train_loader = self._loader(train_dataset, aug, int(self.config.STEPS_PER_EPOCH))
        self.val_loader = None
        if val_dataset is not None and int(self.config.VALIDATION_STEPS) > 0:
            self.val_loader = self._loader(val_dataset, None, int(self.config.VALIDATION_STEPS))
        self.optimizer = build_optimizer(
            self.net,
            self.learning_rate,
            float(self.config.LEARNING_MOMENTUM),
            float(self.config.WEIGHT_DECAY),
            str(getattr(self.config, "OPTIMIZER", "sgd")),
        )
        self.warmup = 0 if self._restore_optimizer() else int(self.config.WARMUP_STEPS)
        self.loss_module = LossModule(self.net)
        self.step_module = distributed.wrap(self.loss_module, self.device)
        self.first_step = self.state.step
        self.amp = amp_dtype(self.config)
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=self.amp == torch.float16 and self.device.type == "cuda"
        )
        self.run_dir: Path | None = self._run_dir()
        self.lock: RunLock | None = None
        self.last_checkpoint: str | None = self.state.checkpoint_path
        self.log = RunLogger(None, enabled=False)
        population = len(train_dataset.image_ids) + (
            len(val_dataset.image_ids) if val_dataset is not None else 0
        )
        self.bad_images = BadImages(population)

    # --- setup ---------------------------------------------------------------------------------
    def _loader(self, dataset, augmentation, steps: int) -> torch.utils.data.DataLoader:
        per_gpu = int(self.config.IMAGES_PER_GPU)
        sampler = EpochSampler(
            len(dataset.image_ids), steps * per_gpu, self.dist.rank, self.dist.world
        )
        workers = int(self.config.WORKERS)
        return torch.utils.data.DataLoader(
            TrainingSamples(dataset, self.config, augmentation),
            batch_size=per_gpu,
            sampler=sampler,
            num_workers=workers,
            collate_fn=collate,
            persistent_workers=workers > 0,
            pin_memory=self.device.type == "cuda",
            drop_last=True,
        )

    def _restore_optimizer(self) -> bool:
        """Load the optimiser state of the checkpoint being resumed, when it trained the same
        layers (the state is per parameter, so another selection cannot reuse it)."""
        extras = self.state.extras
        state = extras.pop("optimizer", None) if extras else None
        if state is None or extras.get("layers") != self.layers:
            return False
        try:
            self.optimizer.load_state_dict(state)
        except (ValueError, KeyError) as error:
            log.warning("optimiser state of the checkpoint not restored: %s", error)
            return False
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate
        return True

    def _run_dir(self) -> Path | None:
        """Continue the run folder of a previous ``train`` or resumed checkpoint; None for a
        new run (its folder is created when training starts).

        Raises:
            ArchitectureMismatch: the resumed checkpoint's network settings differ from the
                config's (training on would mix two models in one run folder).
        """
        if self.state.log_dir is not None:
            return Path(self.state.log_dir)
        previous = self.state.checkpoint_path
        if previous and run_dir_of(previous) is not None:
            saved = self.state.extras.get("config")
            check_same_architecture(saved, self.config, previous)
            return run_dir_of(previous)
        return None

    # --- run -----------------------------------------------------------------------------------
    def run(self) -> None:
        start = self.state.epoch + 1
        if start > self.final_epoch:
            log.warning("already at epoch %d of %d: nothing to train", start - 1, self.final_epoch)
            return
        if self.dist.is_main:
            self._claim_run_dir()
            print(
                f"Training {len(self.trainable)} tensors ({self.layers}) from epoch {start} "
                f"to {self.final_epoch}; run folder {self.run_dir}"
            )
        self.state.log_dir = self.run_dir
        threads = CpuThreads(enabled=self._adapts_threads())
        try:
            for epoch in range(start, self.final_epoch + 1):
                threads.adapt()  # other programs may have started or ended since
                began = time.monotonic()
                losses = self._train_epoch(epoch)
                val = self._validate(epoch)
                self._end_epoch(epoch, losses, val)
                self.epoch_seconds = time.monotonic() - began
                # Stop before an epoch that would end past the deadline.
                if self.deadline is not None and 2 * time.monotonic() - began > self.deadline:
                    break
        finally:
            threads.restore()
            self.log.close()
            if self.lock is not None:
                self.lock.release()
        # A later train() call on the same layers continues with this momentum, no warm-up.
        self.state.extras = {
            "optimizer": self.optimizer.state_dict(),
            "layers": self.layers,
        }

    def _adapts_threads(self) -> bool:
        """Whether training picks its CPU thread count for the other programs' load: on a
        CPU, one process, and no CPU_THREADS in the config (the user's count stands)."""
        fixed = int(getattr(self.config, "CPU_THREADS", 0) or 0)
        return self.device.type == "cpu" and self.dist.world == 1 and not fixed

    def _claim_run_dir(self) -> None:
        """Create (new run) or lock (resumed run) the run folder, tidy what a killed run left
        there, and open the logs.

        Raises:
            RunFolderLocked: another live process trains into the resumed run folder.
        """
        self.run_dir, self.lock = claim_run_dir(
            self.run_dir, self.model_dir, self.config, self.state.step
        )
        config_file = self.run_dir / "config.json"
        text = json.dumps(self.config.to_dict(), indent=2, default=str) + "\n"
        if config_file.exists() and config_file.read_text() != text:  # e.g. a new learning rate
            config_file = self.run_dir / f"config_from_epoch_{self.state.epoch + 1:04d}.json"
        write_output(config_file, text)
        self.log = RunLogger(self.run_dir)

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        self.train_loader.sampler.set_epoch(epoch)
        set_train_mode(self.net, bool(self.config.TRAIN_BN))
        steps = int(self.config.STEPS_PER_EPOCH)
        bar = self.log.progress(steps, self._progress_label(epoch))
        sums: dict[str, float] = {}
        tick = time.perf_counter()
        with bar:  # closed (its line ended) before an error of the loop is printed
            for index, batch in enumerate(self.train_loader):
                skipped = self._note_bad_images("training", batch)
                values = self._step(batch, epoch, index)
                seconds, tick = time.perf_counter() - tick, time.perf_counter()
                for key, value in values.items():
                    sums[key] = sums.get(key, 0.0) + value
                lr = self.optimizer.param_groups[0]["lr"]
                images = len(batch.image_ids)
                self.log.step(self.state.step, epoch, values, lr, seconds, images, skipped)
                bar.set_postfix(short_names(values) | {"img/s": f"{images / seconds:.1f}"})
                bar.update()
        return {key: value / max(1, steps) for key, value in sums.items()}

    def _note_bad_images(self, role: str, batch: Batch) -> int:
        """Log and count the batch's failed loads (its images were replaced); how many.

        Raises:
            TooManyBadImages: past the limit, or no image of the batch loaded (on every rank).
        """
        self.bad_images.record(role, batch.image_ids.tolist(), batch.failures)
        reason = self.bad_images.excess()
        if reason is None and not len(batch.image_ids):
            reason = f"no image of a {role} batch loaded ({REPLACEMENT_TRIES} tried for each)"
        if distributed.any_flag(reason is not None, self.device):
            reason = reason or "too many images failed to load in another process"
            raise self.bad_images.stop_error(reason, self.last_checkpoint)
        return len(batch.failures)

    def _progress_label(self, epoch: int) -> str:
        """ "epoch 3/30, about 12 min left" (at the last epoch's pace, from the second epoch
        on); for a time-capped run whose epochs may not all fit (or are not timed yet), the
        seconds left before the cap instead of the planned epochs."""
        left = None
        if self.epoch_seconds is not None:
            left = self.epoch_seconds * (self.final_epoch - epoch + 1)
        if self.deadline is not None:
            to_cap = max(0.0, self.deadline - time.monotonic())
            if left is None or left > to_cap:
                return f"epoch {epoch}, {to_cap:.0f} s of budget left"
            return f"epoch {epoch}/{self.final_epoch}, about {_duration(left)} left"
        label = f"epoch {epoch}/{self.final_epoch}"
        return label if left is None else f"{label}, about {_duration(left)} left"

    def _step(self, batch: Batch, epoch: int, index: int) -> dict[str, float]:
        batch = batch.to(self.device)
        global_step = self.state.step
        factor = warmup_factor(global_step - self.first_step, self.warmup)
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate * factor
        with self._autocast():
            losses = self.step_module(batch.images, batch.windows, batch.gt)
        total = weighted_total(losses, self.config.LOSS_WEIGHTS)
        values = {key: float(value.detach()) for key, value in losses.items()}
        values["loss"] = float(total.detach())
        where = (
            f"epoch {epoch}, step {index + 1} (global step {global_step + 1}), images "
            f"{batch.image_ids.tolist()}"
        )
        bad = not all(math.isfinite(v) for v in values.values())
        if distributed.any_flag(bad, self.device):  # every rank stops at the same step
            shown = values if bad else values | {"on another rank": math.nan}
            _finite_or_raise(shown, where, self.last_checkpoint)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(
            [p for p in self.net.parameters() if p.requires_grad],
            float(self.config.GRADIENT_CLIP_NORM),
        )
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.state.step += 1
        return values

    def _autocast(self):
        return torch.autocast(
            self.device.type, dtype=self.amp or torch.float32, enabled=bool(self.amp)
        )

    @torch.no_grad()
    def _validate(self, epoch: int) -> dict[str, float]:
        self.val_batch_losses: list[float] = []  # for VALIDATION_BOOTSTRAP's interval
        if self.val_loader is None:
            return {}
        # The same images every epoch, so the figures are comparable.
        self.val_loader.sampler.set_epoch(0)
        self.net.eval()
        sums: dict[str, float] = {}
        count = 0
        for batch in self.val_loader:
            self._note_bad_images("validation", batch)
            batch = batch.to(self.device)
            with self._autocast():
                losses = self.loss_module(batch.images, batch.windows, batch.gt)
            losses["loss"] = weighted_total(losses, self.config.LOSS_WEIGHTS)
            self.val_batch_losses.append(float(losses["loss"]))
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + float(value)
            count += 1
        return {f"val_{k}": v / max(count, 1) for k, v in sums.items()}

    def _end_epoch(self, epoch: int, losses: dict[str, float], val: dict[str, float]) -> None:
        self.state.epoch = epoch
        if self.dist.is_main:
            self._save(epoch)
            val_skipped = self.bad_images.epoch_counts.get("validation", 0)
            batches = self.val_batch_losses
            interval = val_loss_interval(batches, int(self.config.VALIDATION_BOOTSTRAP))
            self.log.validation(self.state.step, epoch, val, val_skipped, interval)
            self.log.flush()
            summary = epoch_summary({**losses, **val}, interval, len(batches))
            skipped = self.bad_images.take_epoch()
            summary += f"; {skipped}" if skipped else ""
            print(f"epoch {epoch}: {summary}; saved {self.last_checkpoint}")
        else:
            self.bad_images.take_epoch()
        distributed.barrier()

    def _save(self, epoch: int) -> None:
        path = checkpoint_path(self.run_dir, self.config.NAME, epoch)
        payload = checkpoint_payload(
            self.net.state_dict(),
            self.config,
            epoch,
            optimizer=self.optimizer.state_dict(),
            layers=self.layers,
            class_names=list(self.class_names),
            step=self.state.step,
            learning_rate=self.learning_rate,
        )
        atomic_torch_save(payload, path)
        self.last_checkpoint = self.state.checkpoint_path = str(path)


def _duration(seconds: float) -> str:
    """ "40 s", "12 min", "3.5 h"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def amp_dtype(config) -> torch.dtype | None:
    """The autocast dtype of the config's AMP, or None (float32)."""
    return AMP_DTYPES.get(str(getattr(config, "AMP", None)).lower())


def _check_training_config(config, device: torch.device) -> None:
    """Re-check what training reads (OPTIMIZER, AMP: the config may have changed since it
    was built) and AMP against the device training runs on.

    Raises:
        ValueError: one line naming each bad value and what to use.
    """
    errors = training_errors(config)
    amp_error = amp_device_error(getattr(config, "AMP", None), device.type)
    if errors or amp_error:
        raise ValueError("; ".join([*errors, *([amp_error] if amp_error else [])]))
    bf16_on_cpu = amp_dtype(config) is torch.bfloat16 and device.type == "cpu"
    shortfall = cpu_bf16_shortfall() if bf16_on_cpu else None
    if shortfall is not None:  # the user's choice stands; they may want bf16 for its memory
        log.warning(f"AMP='bf16' trains as asked, but slower than AMP=None here: {shortfall}")


def train(
    subject: TrainingSubject,
    train_dataset,
    val_dataset,
    learning_rate: float,
    epochs: int,
    layers: str,
    augmentation: Callable | None = None,
    *,
    max_seconds: float | None = None,
) -> None:
    """Train ``subject.net`` (what ``MaskRCNN.train`` hands over); see the module docstring.

    ``max_seconds`` (for time-boxed runs) stops before an epoch that would end more than that
    many seconds from now, judging by the last epoch's duration (at least one epoch runs).
    """
    augmentation = adapt_augmentation(augmentation)  # Matterport's imgaug augmenters too
    trainer = Trainer(
        subject, train_dataset, val_dataset, learning_rate, epochs, layers, augmentation
    )
    if max_seconds is not None:
        trainer.deadline = time.monotonic() + float(max_seconds)
    trainer.run()
