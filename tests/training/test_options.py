"""Options of ``model.train`` take effect: ``augmentation=`` is applied to the training batches
and never to validation. (AMP precision and resuming the optimiser state and step are checked
in test_trainer.py: test_bf16_autocast_step_on_cpu and
test_resume_continues_epochs_run_folder_and_optimizer; on a GPU, test_cuda.py.)"""

from __future__ import annotations

import torch
from torchvision import tv_tensors

from mrcnn.model import MaskRCNN
from mrcnn.training import trainer
from tests.helpers.training import config, shapes


class WhiteOut:
    """An augmentation that paints the whole image white and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, sample: dict) -> dict:
        self.calls += 1
        image = torch.full_like(sample["image"], 255)
        return {**sample, "image": tv_tensors.Image(image)}


def test_augmentation_is_applied_to_training_batches_only(tmp_path, monkeypatch):
    seen = []  # (network in training mode, molded images) of every loss computation
    real_forward = trainer.LossModule.forward

    def forward(self, images, windows, gt):
        seen.append((self.net.training, images.detach().clone()))
        return real_forward(self, images, windows, gt)

    monkeypatch.setattr(trainer.LossModule, "forward", forward)
    cfg = config(STEPS_PER_EPOCH=2, VALIDATION_STEPS=1, WARMUP_STEPS=0)
    model = MaskRCNN("training", cfg, tmp_path)
    augment = WhiteOut()
    model.train(shapes(2), shapes(1, "val"), 0.001, epochs=1, layers="heads", augmentation=augment)
    training = [images for is_training, images in seen if is_training]
    validation = [images for is_training, images in seen if not is_training]
    assert len(training) == 2 and len(validation) == 1
    assert augment.calls == 2  # one image per training step, none for validation
    # A white image molds to one value per channel; shapes images never do.
    for images in training:
        assert images.flatten(2).std(dim=2).max() < 1e-4, "a training batch was not augmented"
    assert validation[0].flatten(2).std(dim=2).min() > 1.0, "validation was augmented"
