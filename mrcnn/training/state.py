"""Where a model is in its training run: one object the trainer advances and a checkpoint
restores (``MaskRCNN.training_state``; ``model.epoch`` etc. read it)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TrainingState:
    """The run a model is in.

    Attributes:
        epoch: the last finished epoch (0 before any); ``train`` continues from ``epoch + 1``.
        step: optimiser steps taken so far (continued from a resumed checkpoint).
        log_dir: the run folder ``train`` writes into (None until a run starts).
        checkpoint_path: the checkpoint last loaded or written (``train`` continues its run).
        extras: what the checkpoint holds besides the weights (config, optimiser state,
            layers, class_names, ...), or the optimiser state a finished ``train`` left for the
            next one.
    """

    epoch: int = 0
    step: int = 0
    log_dir: Path | None = None
    checkpoint_path: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def resumed(cls, extras: dict[str, Any], checkpoint: str | os.PathLike) -> TrainingState:
        """The state saved in this project's checkpoint ``checkpoint`` (its ``extras``)."""
        return cls(
            epoch=int(extras.get("epoch", 0)),
            step=int(extras.get("step", 0)),
            checkpoint_path=str(checkpoint),
            extras=extras,
        )
