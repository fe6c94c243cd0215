"""Reading Matterport's Keras .h5 files: layouts, the layer mapping, exclude and bad files."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from mrcnn.config import Config
from mrcnn.conventions import ConventionsError
from mrcnn.model import MaskRCNN
from mrcnn.modeling.heads import BoxHead, MaskHead
from mrcnn.modeling.rpn import RPNHead
from mrcnn.weights import keras_mapping
from mrcnn.weights.keras_h5 import read_keras_layers
from mrcnn.weights.loading import WeightsError
from tests.helpers.keras_h5 import matterport_manifest, random_layers, write_keras_h5

FC = 64  # a small FPN_CLASSIF_FC_LAYERS_SIZE keeps the test file small


class UserConfig(Config):
    """An ordinary user config: nothing says "matterport"."""

    NAME = "user"
    NUM_CLASSES = 2
    BACKBONE = "resnet50"
    FPN_CLASSIF_FC_LAYERS_SIZE = FC
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    PRE_NMS_LIMIT = 200
    POST_NMS_ROIS_INFERENCE = 50
    DETECTION_MIN_CONFIDENCE = 0.0
    IMAGES_PER_GPU = 1
    DEVICE = "cpu"


@pytest.fixture(scope="module")
def coco_like_h5(module_tmp):
    """A full ResNet-50 Matterport model file (Keras 2.2 layout), seeded random weights."""
    manifest = matterport_manifest("resnet50", num_classes=2, fc=FC)
    path = module_tmp.mktemp("h5") / "mask_rcnn_user.h5"
    return write_keras_h5(path, manifest, random_layers(manifest, seed=3))


SMALL = [
    ("conv1", [("kernel", (7, 7, 3, 4)), ("bias", (4,))]),
    ("bn_conv1", [(k, (4,)) for k in ("gamma", "beta", "moving_mean", "moving_variance")]),
    ("res2a_branch2a", [("kernel", (1, 1, 4, 2)), ("bias", (2,))]),
    ("bn2a_branch2a", [(k, (2,)) for k in ("gamma", "beta", "moving_mean", "moving_variance")]),
]


@pytest.mark.parametrize("layout", ["keras22", "model_save", "tf_keras"])
@pytest.mark.parametrize("chunked", [False, True])
def test_every_layout_reads_the_same_layers(tmp_path, layout, chunked):
    layers = random_layers(SMALL, seed=1)
    path = write_keras_h5(tmp_path / "m.h5", SMALL, layers, layout, chunked)
    read = read_keras_layers(path)
    assert list(read) == [name for name, _ in SMALL]
    for name in read:
        for got, wrote in zip(read[name], layers[name], strict=True):
            np.testing.assert_array_equal(got, wrote)


def test_backbone_conv_bias_is_folded_into_the_batchnorm_mean():
    layers = random_layers(SMALL, seed=2)
    state, sources = keras_mapping.to_state_dict(layers)
    kernel, bias = layers["res2a_branch2a"]
    gamma, beta, mean, var = layers["bn2a_branch2a"]
    prefix = "backbone.body.layer1.0."
    expected = torch.from_numpy(kernel).permute(3, 2, 0, 1)
    torch.testing.assert_close(state[prefix + "conv1.weight"], expected)
    torch.testing.assert_close(state[prefix + "bn1.running_mean"], torch.from_numpy(mean - bias))
    torch.testing.assert_close(state[prefix + "bn1.running_var"], torch.from_numpy(var))
    assert sources[prefix + "conv1.weight"] == ("res2a_branch2a", "bn2a_branch2a")


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _conv_same(x, kernel, bias):
    """Keras Conv2D "same", stride 1: x [H, W, Cin], kernel [k, k, Cin, Cout] (numpy, float64)."""
    k = kernel.shape[0]
    padded = np.pad(x, ((k // 2, k // 2), (k // 2, k // 2), (0, 0)))
    out = np.zeros(x.shape[:2] + (kernel.shape[-1],))
    for dy in range(k):
        for dx in range(k):
            out += padded[dy : dy + x.shape[0], dx : dx + x.shape[1]] @ kernel[dy, dx]
    return out + bias


def _bn(x, gamma, beta, mean, var):
    return (x - mean) / np.sqrt(var + 1e-3) * gamma + beta


def test_rpn_softmax_becomes_one_logit_and_deltas_are_reordered():
    rng = np.random.default_rng(0)
    arrays = [
        rng.normal(size=(3, 3, 4, 6)),
        rng.normal(size=6),
        rng.normal(size=(1, 1, 6, 2 * 3)),
        rng.normal(size=6),
        rng.normal(size=(1, 1, 6, 4 * 3)),
        rng.normal(size=12),
    ]
    state, _ = keras_mapping.to_state_dict(
        {**random_layers(SMALL), "rpn_model": [a.astype(np.float32) for a in arrays]}
    )
    rpn = RPNHead(4, 3, hidden=6).double()
    rpn.load_state_dict({k[4:]: v.double() for k, v in state.items() if k.startswith("rpn.")})
    feature = rng.normal(size=(5, 4, 4))
    hidden = np.maximum(_conv_same(feature, arrays[0], arrays[1]), 0)
    keras_probs = _softmax((hidden @ arrays[2][0, 0] + arrays[3]).reshape(-1, 2))
    keras_deltas = (hidden @ arrays[4][0, 0] + arrays[5]).reshape(-1, 4)  # dy, dx, dh, dw
    with torch.no_grad():
        logits, deltas = rpn([torch.from_numpy(feature.transpose(2, 0, 1))[None]])
    np.testing.assert_allclose(torch.sigmoid(logits[0]).numpy(), keras_probs[:, 1], atol=1e-5)
    np.testing.assert_allclose(deltas[0].numpy(), keras_deltas[:, [1, 0, 3, 2]], atol=1e-5)


def _head_layers(rng, channels, pool, hidden, classes):
    def bn(n):
        return [rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n), rng.normal(0, 0.1, n),
                rng.uniform(0.5, 1.5, n)]  # fmt: skip

    layers = {
        "mrcnn_class_conv1": [
            rng.normal(size=(pool, pool, channels, hidden)),
            rng.normal(size=hidden),
        ],
        "mrcnn_class_bn1": bn(hidden),
        "mrcnn_class_conv2": [rng.normal(size=(1, 1, hidden, hidden)), rng.normal(size=hidden)],
        "mrcnn_class_bn2": bn(hidden),
        "mrcnn_class_logits": [rng.normal(size=(hidden, classes)), rng.normal(size=classes)],
        "mrcnn_bbox_fc": [rng.normal(size=(hidden, 4 * classes)), rng.normal(size=4 * classes)],
        "mrcnn_mask_deconv": [rng.normal(size=(2, 2, 5, channels)), rng.normal(size=5)],
        "mrcnn_mask": [rng.normal(size=(1, 1, 5, classes)), rng.normal(size=classes)],
    }  # fmt: skip
    for i in range(1, 5):
        layers[f"mrcnn_mask_conv{i}"] = [rng.normal(size=(3, 3, channels, channels)) * 0.3,
                                        rng.normal(size=channels)]  # fmt: skip
        layers[f"mrcnn_mask_bn{i}"] = bn(channels)
    return {k: [np.asarray(a, np.float32) for a in v] for k, v in layers.items()}


def test_box_head_batchnorm_is_folded_exactly():
    rng = np.random.default_rng(1)
    channels, pool, hidden, classes = 3, 2, 5, 3
    layers = _head_layers(rng, channels, pool, hidden, classes)
    state, _ = keras_mapping.to_state_dict({**random_layers(SMALL), **layers})
    head = BoxHead(channels, pool, hidden, classes).double()
    head.load_state_dict({k[9:]: v.double() for k, v in state.items() if k.startswith("box_head.")})
    pooled = rng.normal(size=(4, pool, pool, channels))  # Keras NHWC
    L = {k: [a.astype(np.float64) for a in v] for k, v in layers.items()}
    x = np.einsum("nhwc,hwco->no", pooled, L["mrcnn_class_conv1"][0]) + L["mrcnn_class_conv1"][1]
    x = np.maximum(_bn(x, *L["mrcnn_class_bn1"]), 0)
    x = x @ L["mrcnn_class_conv2"][0][0, 0] + L["mrcnn_class_conv2"][1]
    x = np.maximum(_bn(x, *L["mrcnn_class_bn2"]), 0)
    keras_logits = x @ L["mrcnn_class_logits"][0] + L["mrcnn_class_logits"][1]
    keras_deltas = (x @ L["mrcnn_bbox_fc"][0] + L["mrcnn_bbox_fc"][1]).reshape(4, classes, 4)
    with torch.no_grad():
        logits, deltas = head(torch.from_numpy(pooled.transpose(0, 3, 1, 2)))
    np.testing.assert_allclose(logits.numpy(), keras_logits, rtol=1e-5, atol=1e-4)
    expected = keras_deltas[..., [1, 0, 3, 2]]
    np.testing.assert_allclose(deltas.numpy(), expected, rtol=1e-5, atol=1e-4)


def test_mask_head_folds_batchnorm_and_reads_the_deconv_kernel():
    rng = np.random.default_rng(2)
    channels, classes = 3, 2
    layers = _head_layers(rng, channels, 2, 4, classes)
    state, _ = keras_mapping.to_state_dict({**random_layers(SMALL), **layers})
    head = MaskHead(channels, classes, hidden=channels).double()
    head.deconv = torch.nn.ConvTranspose2d(channels, 5, 2, stride=2).double()
    head.logits = torch.nn.Conv2d(5, classes, 1).double()
    head.load_state_dict(
        {k[10:]: v.double() for k, v in state.items() if k.startswith("mask_head.")}
    )
    L = {k: [a.astype(np.float64) for a in v] for k, v in layers.items()}
    x = rng.normal(size=(3, 3, channels))
    y = x
    for i in range(1, 5):
        y = _conv_same(y, *L[f"mrcnn_mask_conv{i}"])
        y = np.maximum(_bn(y, *L[f"mrcnn_mask_bn{i}"]), 0)
    kernel, bias = L["mrcnn_mask_deconv"]  # [kh, kw, out, in]
    up = np.zeros((6, 6, 5))
    for a in range(2):
        for b in range(2):
            up[a::2, b::2] = y @ kernel[a, b].T
    up = np.maximum(up + bias, 0)
    keras = up @ L["mrcnn_mask"][0][0, 0] + L["mrcnn_mask"][1]
    with torch.no_grad():
        ours = head(torch.from_numpy(x.transpose(2, 0, 1))[None])[0]
    np.testing.assert_allclose(ours.numpy().transpose(1, 2, 0), keras, rtol=1e-5, atol=1e-4)


def test_loading_selects_the_matterport_flavour_and_detects(coco_like_h5):
    model = MaskRCNN("inference", UserConfig())
    assert not model.net.matterport
    notes = model.load_weights(str(coco_like_h5), by_name=True)
    assert model.config.NETWORK_FLAVOUR == "matterport" and model.net.matterport
    assert any("NETWORK_FLAVOUR" in note and "matterport" in note for note in notes)
    image = np.random.default_rng(0).integers(0, 255, (100, 128, 3), dtype=np.uint8)
    result = model.detect([image])[0]
    assert result["masks"].shape[:2] == (100, 128)
    assert len(result["class_ids"]) == result["masks"].shape[2]


def test_exclude_takes_matterports_layer_names(coco_like_h5):
    in_file, _ = keras_mapping.to_state_dict(read_keras_layers(coco_like_h5))
    model = MaskRCNN("training", UserConfig.from_overrides({"NETWORK_FLAVOUR": "matterport"}))
    fresh = {k: v.clone() for k, v in model.net.state_dict().items()}
    exclude = ["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask"]
    model.load_weights(str(coco_like_h5), by_name=True, exclude=exclude)
    after = model.net.state_dict()
    for key in ("box_head.class_logits.weight", "box_head.deltas.bias", "mask_head.logits.weight"):
        torch.testing.assert_close(after[key], fresh[key])  # kept their init
    for key in ("box_head.fc6.weight", "mask_head.convs.0.weight", "rpn.objectness.weight"):
        torch.testing.assert_close(after[key], in_file[key])  # loaded


def test_a_config_of_other_classes_is_told_what_the_h5_was_made_for(coco_like_h5):
    config = UserConfig.from_overrides({"NUM_CLASSES": 5})
    expected = (
        r"mask_rcnn_user.h5 was made for NUM_CLASSES = 2 but the config has NUM_CLASSES = 5, "
        r"which would leave box_head \(\d+ tensors\), mask_head \(\d+ tensors\) random; set "
        r"NUM_CLASSES = 2 in the config to detect with it \(to fine-tune .* mode='training'"
    )
    with pytest.raises(WeightsError, match=expected):
        MaskRCNN("inference", config).load_weights(str(coco_like_h5))
    notes = MaskRCNN("training", config).load_weights(str(coco_like_h5))  # fine-tuning: fine
    assert any("class_logits" in note for note in notes)


def test_a_user_set_torchvision_flavour_is_refused(coco_like_h5):
    config = UserConfig.from_overrides({"NETWORK_FLAVOUR": "torchvision"})
    with pytest.raises(ConventionsError, match="NETWORK_FLAVOUR"):
        MaskRCNN("inference", config).load_weights(str(coco_like_h5))


def test_not_hdf5_is_one_clear_error(tmp_path):
    path = tmp_path / "model.h5"
    path.write_text("not weights")
    with pytest.raises(WeightsError, match="is not an HDF5 file"):
        read_keras_layers(path)


def test_a_missing_file_is_named_as_missing(tmp_path):
    with pytest.raises(WeightsError, match="weights file not found: .*missing.h5"):
        read_keras_layers(tmp_path / "missing.h5")


def test_hdf5_without_keras_layers_names_what_it_holds(tmp_path):
    import h5py

    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("images", data=np.zeros(3))
    with pytest.raises(WeightsError, match="not Keras weights.*images"):
        read_keras_layers(path)


def test_other_keras_model_is_refused_naming_its_layers(tmp_path):
    manifest = [("dense_1", [("kernel", (3, 2)), ("bias", (2,))])]
    path = write_keras_h5(tmp_path / "other.h5", manifest, random_layers(manifest))
    model = MaskRCNN("inference", UserConfig())
    with pytest.raises(WeightsError, match="not a Matterport Mask R-CNN.*dense_1"):
        model.load_weights(str(path))


def test_infer_settings_from_shapes():
    r101 = {name: [] for name, _ in matterport_manifest("resnet101", 81, fc=8)}
    r101["mrcnn_class_logits"] = [(8, 81), (81,)]
    expected = {"BACKBONE": "resnet101", "NUM_CLASSES": 81, "FPN_CLASSIF_FC_LAYERS_SIZE": 8}
    assert keras_mapping.infer_settings(r101) == expected
    r50 = {name: [] for name, _ in matterport_manifest("resnet50", 3, fc=8)}
    del r50["mrcnn_class_logits"]  # a backbone-only file
    assert keras_mapping.infer_settings(r50) == {"BACKBONE": "resnet50"}


def test_convert_writes_a_checkpoint_that_loads_without_h5py(coco_like_h5, tmp_path, monkeypatch):
    from mrcnn import cli

    out = tmp_path / "model.safetensors"
    assert cli.main(["convert", str(coco_like_h5), str(out)]) == 0
    assert cli.main(["convert", str(coco_like_h5), str(out)]) == 1  # exists: needs --overwrite
    in_file, _ = keras_mapping.to_state_dict(read_keras_layers(coco_like_h5))
    monkeypatch.setitem(sys.modules, "h5py", None)  # h5py is not needed now
    model = MaskRCNN("inference", UserConfig())
    model.load_weights(str(out))
    assert model.config.NETWORK_FLAVOUR == "matterport"
    loaded = model.net.state_dict()
    for key in (
        "backbone.body.layer1.0.bn1.running_mean",
        "rpn.deltas.weight",
        "mask_head.logits.bias",
    ):
        torch.testing.assert_close(loaded[key], in_file[key])


def test_convert_infers_backbone_and_class_count(coco_like_h5, tmp_path):
    from mrcnn.weights.convert import convert_h5

    config, notes = convert_h5(coco_like_h5, tmp_path / "m.safetensors")
    assert (config.BACKBONE, config.NUM_CLASSES) == ("resnet50", 2)
    assert config.FPN_CLASSIF_FC_LAYERS_SIZE == FC and config.NETWORK_FLAVOUR == "matterport"
    # a given config is used as is: an R101 config does not fit an R50 file
    wrong = Config.from_overrides({"NUM_CLASSES": 2, "FPN_CLASSIF_FC_LAYERS_SIZE": FC})
    made_for = r"was made for BACKBONE = 'resnet50' but the config has BACKBONE = 'resnet101'"
    with pytest.raises(WeightsError, match=made_for):
        convert_h5(coco_like_h5, tmp_path / "n.safetensors", wrong)


def test_a_layer_list_naming_a_missing_group_is_one_line(tmp_path, capsys):
    """Issue 31, rule 10: was a KeyError traceback."""
    import h5py

    path = write_keras_h5(tmp_path / "m.h5", SMALL, random_layers(SMALL, seed=0))
    with h5py.File(path, "a") as handle:
        del handle["bn_conv1"]
    with pytest.raises(WeightsError, match="layer list names 'bn_conv1', but the file holds no"):
        read_keras_layers(path)
    from mrcnn import cli

    assert cli.main(["convert", str(path), str(tmp_path / "m.safetensors")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "m.h5: its layer list names 'bn_conv1'" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.h5"]


def test_convert_into_a_missing_folder_is_one_line(tmp_path, capsys):
    from mrcnn import cli

    source = write_keras_h5(tmp_path / "m.h5", SMALL, random_layers(SMALL, seed=0))
    out = tmp_path / "no" / "such" / "m.safetensors"
    assert cli.main(["convert", str(source), str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"mrcnn convert: error: folder {out.parent} does not exist: create it first"
