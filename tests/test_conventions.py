"""Loading weights makes the config agree with the conventions the weights were trained with.

The configs are the ones users write: the balloon sample's ``BalloonConfig`` and the README's
CLI config (the base Config with NAME, NUM_CLASSES and BACKBONE set), both with Matterport's
normalisation and box coding. torchvision's model, given the same pixels, is the reference.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from mrcnn.config import Config
from mrcnn.conventions import TORCHVISION, ConventionsError
from mrcnn.model import MaskRCNN
from mrcnn.structures.image import mold_batch, read_image
from mrcnn.testing import randomise_batchnorm, randomised_torchvision_maskrcnn
from mrcnn.weights.loading import PRETRAINED
from samples.balloon import BalloonConfig
from tests.helpers.paths import BALLOON, REPO

needs_balloon = pytest.mark.skipif(
    not BALLOON.is_dir(), reason=f"balloon dataset not found at {BALLOON}"
)

README_CLI = {"NAME": "balloon", "NUM_CLASSES": 2, "BACKBONE": "resnet50"}
USER_CONFIGS = {
    "balloon_sample": lambda: BalloonConfig.from_overrides({"DEVICE": "cpu"}),
    "readme_cli": lambda: Config.from_overrides({**README_CLI, "DEVICE": "cpu"}),
}


@pytest.fixture(scope="module")
def torchvision_files(module_tmp):
    """A torch home holding random "coco" and "imagenet" files under their published names,
    and a torchvision Mask R-CNN state-dict file elsewhere."""
    home = module_tmp.mktemp("torch_home")
    cache = home / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    maskrcnn = randomised_torchvision_maskrcnn(seed=3)
    torch.save(maskrcnn.state_dict(), cache / PRETRAINED["coco"].rsplit("/", 1)[-1])
    state_file = home / "my_torchvision_maskrcnn.pth"
    torch.save(maskrcnn.state_dict(), state_file)
    torch.manual_seed(5)
    resnet = randomise_batchnorm(torchvision.models.resnet50(weights=None), seed=6).eval()
    torch.save(resnet.state_dict(), cache / PRETRAINED["imagenet-resnet50"].rsplit("/", 1)[-1])
    return {"home": home, "file": state_file, "maskrcnn": maskrcnn, "resnet": resnet}


@pytest.fixture(scope="module")
def reference_pyramid(torchvision_files, balloon_crop) -> list[torch.Tensor]:
    """torchvision's backbone + FPN features P2-P6 of the crop."""
    with torch.inference_mode():
        features = torchvision_files["maskrcnn"].backbone(_torchvision_input(balloon_crop))
    return list(features.values())


@pytest.fixture(scope="module")
def balloon_crop() -> np.ndarray:
    """A real balloon photo cropped to 1024 x 1024, so the configs' molding does not resize."""
    if not BALLOON.is_dir():
        pytest.skip(f"balloon dataset not found at {BALLOON}")
    image = read_image(BALLOON / "val" / "14898532020_ba6199dd22_k.jpg")
    return np.ascontiguousarray(image[100:1124, 500:1524])


def _torchvision_input(image: np.ndarray) -> torch.Tensor:
    """torchvision's normalisation of RGB uint8 pixels: (x / 255 - mean) / std, [1, 3, H, W]."""
    x = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255.0
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x - mean) / std


def _relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours.float() - reference).norm() / reference.norm())


def _molded(model: MaskRCNN, image: np.ndarray) -> torch.Tensor:
    batch, metas = mold_batch([image], model.config, model.dtype, model.device)
    assert batch.shape[-2:] == image.shape[:2], "the crop must not be resized or padded"
    return batch


# ------------------------------------------------------------------------------------------------
# Features and proposals of torchvision-format weights in the configs users write
# ------------------------------------------------------------------------------------------------
@needs_balloon
@pytest.mark.slow
@pytest.mark.parametrize("config_name", sorted(USER_CONFIGS))
@pytest.mark.parametrize("weights", ["coco", "state_dict_file"])
def test_maskrcnn_weights_give_torchvision_pyramid_features(
    torchvision_files, balloon_crop, reference_pyramid, monkeypatch, config_name, weights
):
    monkeypatch.setenv("TORCH_HOME", str(torchvision_files["home"]))
    model = MaskRCNN("training", USER_CONFIGS[config_name](), "unused")
    source = "coco" if weights == "coco" else str(torchvision_files["file"])
    notes = model.load_weights(source, exclude=["class-specific"])
    assert any(n.startswith("STD_PIXEL: None -> ") for n in notes), notes
    model.net.eval()
    with torch.inference_mode():
        ours = model.net.features(_molded(model, balloon_crop))
    for level, (mine, theirs) in enumerate(zip(ours, reference_pyramid, strict=True)):
        error = _relative_error(mine, theirs)
        assert error <= 1e-3, f"P{level + 2}: relative error {error:.3g}"


@needs_balloon
@pytest.mark.slow
@pytest.mark.parametrize("config_name", sorted(USER_CONFIGS))
def test_imagenet_weights_give_torchvision_backbone_features(
    torchvision_files, balloon_crop, monkeypatch, config_name
):
    monkeypatch.setenv("TORCH_HOME", str(torchvision_files["home"]))
    model = MaskRCNN("training", USER_CONFIGS[config_name](), "unused")
    notes = model.load_weights("imagenet")
    changed = {n.split(":")[0] for n in notes if " -> " in n}
    assert changed == {"MEAN_PIXEL", "STD_PIXEL"}, "ImageNet weights fill the backbone only"
    model.net.eval()
    resnet = torchvision_files["resnet"]
    with torch.inference_mode():
        ours = model.net.backbone(_molded(model, balloon_crop))
        x = _torchvision_input(balloon_crop)
        x = resnet.maxpool(resnet.relu(resnet.bn1(resnet.conv1(x))))
        reference = []
        for layer in (resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4):
            x = layer(x)
            reference.append(x)
    for level, (mine, theirs) in enumerate(zip(ours, reference, strict=True)):
        error = _relative_error(mine, theirs)
        assert error <= 1e-3, f"C{level + 2}: relative error {error:.3g}"


@needs_balloon
@pytest.mark.slow
def test_loaded_rpn_gives_torchvision_proposals(torchvision_files, balloon_crop):
    """Same molded image, float64: our proposal layer against torchvision's RPN (its head,
    anchors, box coder and per-level selection), both on our pyramid features. (That our
    float64 features are torchvision's is test_torchvision_equivalence's; a second float64
    ResNet-50 at 1024 x 1024 here cost 30 s.) The photo's centre 512 x 512, molded at that
    size: the selection is the same code at any size, and float64 at 1024 took 37 s."""
    config = BalloonConfig.from_overrides(
        {"DEVICE": "cpu", "IMAGE_MIN_DIM": 512, "IMAGE_MAX_DIM": 512}
    )
    model = MaskRCNN("training", config, "unused")
    model.load_weights(str(torchvision_files["file"]), exclude=["class-specific"])
    model.net.eval()
    model.to(torch.float64)
    reference = randomised_torchvision_maskrcnn(
        seed=3,
        rpn_pre_nms_top_n_test=int(config.PRE_NMS_LIMIT),
        rpn_post_nms_top_n_test=int(config.POST_NMS_ROIS_INFERENCE),
        rpn_nms_thresh=float(config.RPN_NMS_THRESHOLD),
    ).double()
    images = _molded(model, balloon_crop[256:768, 256:768])
    with torch.inference_mode():
        features = model.net.features(images)
        objectness, deltas = model.net.rpn_outputs(features)
        windows = torch.tensor([[0, 0, 512, 512]], dtype=torch.float64)
        ours, _, _ = model.net.proposals(objectness, deltas, (512, 512), windows)
        image_list = torchvision.models.detection.image_list.ImageList(images, [(512, 512)])
        pyramid = dict(zip(("0", "1", "2", "3", "pool"), features, strict=True))
        expected, _ = reference.rpn(image_list, pyramid)
    expected = expected[0]
    assert len(ours) == len(expected) == int(config.POST_NMS_ROIS_INFERENCE)
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------------------
# Fine-tuning from torchvision-format weights on real photos
# ------------------------------------------------------------------------------------------------
def _mean_loss(model: MaskRCNN, dataset, count: int) -> float:
    """Mean training loss over the first ``count`` images (target sampling seeded)."""
    from mrcnn.modeling.losses import training_losses, weighted_total
    from mrcnn.training.data import TrainingSamples, collate

    samples = TrainingSamples(dataset, model.config)
    generator = torch.Generator().manual_seed(0)
    total = 0.0
    with torch.no_grad():
        for index in range(count):
            batch = collate([samples[index]])
            losses = training_losses(model.net, batch.images, batch.windows, batch.gt, generator)
            total += float(weighted_total(losses, model.config.LOSS_WEIGHTS))
    return total / count


@needs_balloon
@pytest.mark.slow
def test_heads_fine_tune_from_torchvision_weights_lowers_the_loss(torchvision_files, tmp_path):
    from mrcnn.datasets import from_spec

    torch.manual_seed(0)
    small = {
        "DEVICE": "cpu",
        "IMAGES_PER_GPU": 1,
        "IMAGE_MIN_DIM": 256,
        "IMAGE_MAX_DIM": 256,
        "STEPS_PER_EPOCH": 8,
        "VALIDATION_STEPS": 1,
        "WARMUP_STEPS": 0,
        "WORKERS": 0,
        "PRE_NMS_LIMIT": 1000,
        "POST_NMS_ROIS_TRAINING": 300,
        "TRAIN_ROIS_PER_IMAGE": 64,
    }
    model = MaskRCNN("training", BalloonConfig.from_overrides(small), tmp_path)
    notes = model.load_weights(str(torchvision_files["file"]), exclude=["class-specific"])
    assert any(n.startswith("RPN_BBOX_STD_DEV") for n in notes)
    train = from_spec(f"via:{BALLOON}", "train")
    probe = from_spec(f"via:{BALLOON}", "val")
    model.net.train()
    before = _mean_loss(model, probe, 4)
    model.train(train, None, learning_rate=0.002, epochs=1, layers="heads")
    model.net.train()
    after = _mean_loss(model, probe, 4)
    print(f"heads fine-tune: mean loss on 4 val photos {before:.3f} -> {after:.3f}")
    assert after < 0.8 * before, f"loss {before:.3f} -> {after:.3f}"


# ------------------------------------------------------------------------------------------------
# The rules: adopt defaults, refuse user conflicts, keep on request, only for loaded layers
# (training mode: inference refuses weights that leave the class-specific layers random)
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def torchvision_state_file(module_tmp):
    path = module_tmp.mktemp("tv") / "tv.pth"
    torch.save(randomised_torchvision_maskrcnn(seed=1).state_dict(), path)
    return path


def test_inherited_values_are_adopted_with_a_note_per_key(torchvision_state_file):
    model = MaskRCNN("training", Config.from_overrides({**README_CLI, "DEVICE": "cpu"}))
    notes = model.load_weights(str(torchvision_state_file), exclude=["class-specific"])
    config = model.config
    for key in ("MEAN_PIXEL", "STD_PIXEL", "RPN_BBOX_STD_DEV"):
        np.testing.assert_allclose(np.asarray(getattr(config, key)), TORCHVISION[key])
    assert config.RPN_ANCHOR_ROUND is True and config.ROI_ALIGN_ALIGNED is False
    assert config.ROI_LEVEL_ROUNDING == "floor" and config.RPN_PROPOSALS_PER_LEVEL is True
    assert "RPN_BBOX_STD_DEV: [0.1, 0.1, 0.2, 0.2] -> [1, 1, 1, 1]" in " ".join(notes)
    assert config.to_dict()["STD_PIXEL"] == pytest.approx(TORCHVISION["STD_PIXEL"])


def test_user_set_conflict_is_refused_before_loading(torchvision_state_file):
    class MyConfig(Config):
        NAME, NUM_CLASSES, BACKBONE, DEVICE = "mine", 2, "resnet50", "cpu"
        RPN_BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])

    model = MaskRCNN("training", MyConfig())
    before = model.net.backbone.body.conv1.weight.clone()
    with pytest.raises(ConventionsError, match="RPN_BBOX_STD_DEV.*KEEP_CONVENTIONS"):
        model.load_weights(str(torchvision_state_file), exclude=["class-specific"])
    assert torch.equal(model.net.backbone.body.conv1.weight, before), "nothing is loaded"
    assert model.config.STD_PIXEL is None, "nothing is adopted"


def test_set_on_the_command_line_counts_as_user_set(torchvision_state_file):
    config = Config.from_overrides({**README_CLI, "DEVICE": "cpu", "ROI_ALIGN_ALIGNED": True})
    model = MaskRCNN("training", config)
    with pytest.raises(ConventionsError, match="ROI_ALIGN_ALIGNED"):
        model.load_weights(str(torchvision_state_file), exclude=["class-specific"])


def test_keep_conventions_keeps_the_users_value_with_a_note(torchvision_state_file):
    config = Config.from_overrides(
        {
            **README_CLI,
            "DEVICE": "cpu",
            "ROI_ALIGN_ALIGNED": True,
            "KEEP_CONVENTIONS": ["ROI_ALIGN_ALIGNED"],
        }
    )
    model = MaskRCNN("training", config)
    notes = model.load_weights(str(torchvision_state_file), exclude=["class-specific"])
    assert model.config.ROI_ALIGN_ALIGNED is True
    assert any(n.startswith("kept ROI_ALIGN_ALIGNED=True") for n in notes)
    assert model.config.STD_PIXEL is not None, "the other conventions are still adopted"


def test_keep_conventions_refuses_unknown_keys():
    with pytest.raises(ValueError, match="KEEP_CONVENTIONS"):
        Config.from_overrides({"KEEP_CONVENTIONS": ["IMAGE_MAX_DIM"]})


def test_only_conventions_of_loaded_layers_apply(torchvision_state_file):
    model = MaskRCNN("training", Config.from_overrides({**README_CLI, "DEVICE": "cpu"}))
    notes = model.load_weights(
        str(torchvision_state_file), exclude=[r"^(rpn|box_head|mask_head)\."]
    )
    assert {n.split(":")[0] for n in notes if " -> " in n} == {"MEAN_PIXEL", "STD_PIXEL"}
    assert model.config.RPN_ANCHOR_ROUND is False


def test_plain_state_dict_says_it_records_no_conventions(tmp_path):
    from tests.helpers.tiny_model import tiny_model

    model = tiny_model()
    path = tmp_path / "plain.pt"
    torch.save(model.net.state_dict(), path)
    notes = tiny_model().load_weights(str(path))
    assert any("records no conventions" in n for n in notes)


# ------------------------------------------------------------------------------------------------
# This project's checkpoints keep the conventions they were trained with
# ------------------------------------------------------------------------------------------------
def test_checkpoint_computes_what_it_was_trained_to_compute(tmp_path):
    """Train a tiny model under torchvision's conventions, load its checkpoint into a config
    with Matterport's: the detections are those of the model as trained."""
    from tests.helpers.training import config as tiny_config
    from tests.helpers.training import shapes

    trained_under = {key: TORCHVISION[key] for key in ("MEAN_PIXEL", "STD_PIXEL")}
    trained_under.update(RPN_BBOX_STD_DEV=[1.0, 1.0, 1.0, 1.0], ROI_ALIGN_ALIGNED=False)
    torch.manual_seed(0)
    model = MaskRCNN("training", tiny_config(**trained_under), tmp_path)
    model.train(shapes(4), None, learning_rate=0.02, epochs=1, layers="all")
    checkpoint = model.find_last()

    inference = {"DETECTION_MIN_CONFIDENCE": 0.0, "DETECTION_MAX_INSTANCES": 20}
    as_trained = MaskRCNN("inference", tiny_config(**trained_under, **inference), tmp_path)
    as_trained.load_weights(checkpoint)
    loaded = MaskRCNN("inference", tiny_config(**inference), tmp_path)
    notes = loaded.load_weights(checkpoint)
    assert any(n.startswith("STD_PIXEL: None -> ") for n in notes), notes

    image = shapes(1, "val").load_image(0)
    expected, result = as_trained.detect([image])[0], loaded.detect([image])[0]
    assert len(expected["scores"]) > 0
    np.testing.assert_array_equal(result["class_ids"], expected["class_ids"])
    np.testing.assert_allclose(result["boxes"], expected["boxes"], atol=1e-4)
    np.testing.assert_allclose(result["scores"], expected["scores"], atol=1e-6)


# ------------------------------------------------------------------------------------------------
# The README's Python snippet runs as written
# ------------------------------------------------------------------------------------------------
#: The only edits made to the snippet: a tiny run instead of 10 epochs of 100 steps at 1024 px.
SNIPPET_EDITS = {
    "    STEPS_PER_EPOCH = 100\n": (
        "    STEPS_PER_EPOCH = 1\n    VALIDATION_STEPS = 1\n    IMAGE_MIN_DIM = 256\n"
        "    IMAGE_MAX_DIM = 256\n    WORKERS = 0\n    DEVICE = 'cpu'\n"
    ),
    "epochs=10": "epochs=1",
}


def _readme_snippet() -> str:
    readme = (REPO / "README.md").read_text()
    start = readme.index("```python\nimport mrcnn\n") + len("```python\n")
    snippet = readme[start : readme.index("```", start)]
    for old, new in SNIPPET_EDITS.items():
        assert old in snippet, f"the README snippet no longer contains {old!r}"
        snippet = snippet.replace(old, new)
    return snippet


@needs_balloon
@pytest.mark.slow
def test_readme_snippet_runs_as_written(torchvision_files, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(torchvision_files["home"]))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "balloon").symlink_to(BALLOON)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(_readme_snippet(), "README.md", "exec"), namespace)  # noqa: S102
    assert namespace["splashed"].shape == namespace["image"].shape
    config = namespace["model"].config
    assert config.STD_PIXEL is not None, "the checkpoint brought torchvision's normalisation"
