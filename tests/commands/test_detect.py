"""``mrcnn detect``: figures and COCO results JSON that pycocotools loads back."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from mrcnn.cli import main
from mrcnn.commands import common, detect
from mrcnn.datasets.clips import make_clip, write_clip
from mrcnn.structures.image import read_image
from mrcnn.tracking.mot import read_mot, read_tracks_json
from tests.helpers.tiny_model import save_tiny_checkpoint

H, W = 64, 96


@pytest.fixture(scope="module")
def weights(module_tmp) -> Path:
    """A checkpoint of a tiny random model (no class names stored)."""
    path = module_tmp.mktemp("weights") / "tiny.pt"
    return save_tiny_checkpoint(path, IMAGES_PER_GPU=2)


def _images(folder: Path) -> list[Path]:
    folder.mkdir()
    rng = np.random.default_rng(0)
    paths = [folder / "000000000042.png", folder / "street.jpg"]
    for path in paths:
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(path)
    return paths


def _ground_truth(image_ids) -> COCO:
    """A minimal COCO ground truth with these images, both classes, one box each."""
    coco = COCO()
    coco.dataset = {
        "images": [{"id": i, "height": H, "width": W} for i in image_ids],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
        "annotations": [
            {
                "id": k + 1,
                "image_id": i,
                "category_id": 1,
                "bbox": [10, 10, 20, 20],
                "area": 400,
                "iscrowd": 0,
            }
            for k, i in enumerate(image_ids)
        ],
    }
    coco.createIndex()
    return coco


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' decode on numpy 2
def test_detect_writes_figures_and_coco_results(weights, tmp_path, capsys, monkeypatch):
    built = []
    real_build = common.build_model
    monkeypatch.setattr(
        common, "build_model", lambda args: built.append(real_build(args)) or built[-1]
    )
    paths = _images(tmp_path / "in")
    out = tmp_path / "out"
    argv = ["detect", "--weights", str(weights), "--input", str(tmp_path / "in")]
    assert main([*argv, "--output", str(out), "--class-names", "cat,dog"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "000000000042.json",
        "000000000042.png",
        "detections.json",
        "street.json",
        "street.png",
    ]
    assert "wrote 2 figures" in capsys.readouterr().out
    everything = json.loads((out / "detections.json").read_text())
    per_image = json.loads((out / "street.json").read_text())
    assert everything and per_image and all(e in everything for e in per_image)
    entry = per_image[0]
    assert entry["image_id"] == "street" and entry["category_name"] in ("cat", "dog")
    assert isinstance(entry["segmentation"]["counts"], str)
    assert {e["image_id"] for e in everything} == {42, "street"}

    results = _ground_truth([42, "street"]).loadRes(str(out / "detections.json"))
    assert len(results.getAnnIds()) == len(everything)
    ann = results.loadAnns(results.getAnnIds(imgIds=["street"]))[0]
    assert ann["area"] > 0 and len(ann["bbox"]) == 4

    # the RLEs are the masks detect gives (same weights, same image)
    r = built[0].detect([read_image(paths[1])])[0]
    decoded = mask_utils.decode(entry["segmentation"]).astype(bool)
    np.testing.assert_array_equal(decoded, r["masks"][:, :, 0])
    x, y, w, h = entry["bbox"]
    np.testing.assert_allclose([x, y, x + w, y + h], r["boxes"][0], rtol=1e-5)


def test_class_names_fallbacks():
    model = SimpleNamespace(config=SimpleNamespace(NUM_CLASSES=3), checkpoint_extras={})
    assert common.class_names_for(model, "w.pt") == ["BG", "class 1", "class 2"]
    model.checkpoint_extras = {"class_names": ["BG", "cat", "dog"]}
    assert common.class_names_for(model, "w.pt") == ["BG", "cat", "dog"]
    coco = SimpleNamespace(config=SimpleNamespace(NUM_CLASSES=91), checkpoint_extras={})
    names = common.class_names_for(coco, "coco")
    assert len(names) == 91 and names[1] == "person" and names[0] == "BG"


def test_output_keys_and_image_ids():
    keys = detect.output_keys([Path("a.jpg"), Path("a.png"), Path("007.png")])
    assert keys == ["a_jpg", "a_png", "007"]
    assert detect.image_id_for("007") == 7 and detect.image_id_for("a_jpg") == "a_jpg"
    assert (
        detect.coco_results(
            {"class_ids": np.zeros(0), "masks": np.zeros((4, 4, 0), bool)}, 1, ["BG"]
        )
        == []
    )


def test_coco_results_are_evaluations_entries_unrounded():
    from mrcnn.evaluation import detections_to_coco

    masks = np.zeros((8, 9, 2), dtype=bool)
    masks[1:4, 2:6, 0] = True
    masks[5:8, 0:3, 1] = True
    result = {
        "boxes": np.array([[2.0001234, 1.0004321, 6.1234567, 4.5], [0.5, 5.25, 3.0, 8.0]]),
        "rois": np.array([[1, 2, 5, 6], [5, 0, 8, 3]]),
        "class_ids": np.array([2, 7]),
        "scores": np.array([0.912345678, 0.5]),
        "masks": masks,
    }
    entries = detect.coco_results(result, 3, ["BG", "cat", "dog"])
    assert entries == detections_to_coco(
        [result], [3], class_names=["BG", "cat", "dog"], decimals=None
    )
    first = entries[0]
    assert first["bbox"] == [2.0001234, 1.0004321, 6.1234567 - 2.0001234, 4.5 - 1.0004321]
    assert first["score"] == 0.912345678 and first["category_name"] == "dog"
    assert entries[1]["category_name"] == "class 7"
    assert mask_utils.decode(first["segmentation"]).astype(bool).tolist() == masks[..., 0].tolist()
    rounded = detections_to_coco([result], [3])[0]  # evaluation's files keep 3 and 5 decimals
    assert rounded["bbox"][0] == 2.0 and rounded["score"] == 0.91235


def test_image_ids_are_ints_only_for_ascii_digits():
    """Issue 31: "²".isdigit() is True and int("²") fails; such a stem stays a string."""
    assert detect.image_id_for("000000397133") == 397133
    assert detect.image_id_for("²") == "²"
    assert detect.image_id_for("١٢") == "١٢"  # Arabic-Indic digits: int() takes them, COCO not
    assert detect.image_id_for("12a") == "12a"


def test_detect_over_a_folder_names_a_thin_image_and_goes_on(tmp_path, capsys):
    """A 2 x 3000 strip that "pad64" would scale to 64 x 96000 is skipped in one line naming
    it (issue 31), and the other images are detected."""
    weights = save_tiny_checkpoint(
        tmp_path / "pad64.pt", IMAGE_RESIZE_MODE="pad64", IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=64
    )
    folder = tmp_path / "in"
    _images(folder)
    Image.fromarray(np.zeros((2, 3000, 3), np.uint8)).save(folder / "strip.png")
    out = tmp_path / "out"
    argv = ["detect", "--weights", str(weights), "--input", str(folder), "--output", str(out)]
    assert main(argv) == 1
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if "strip.png" in line]
    assert len(lines) == 1 and lines[0].startswith(f"skipped {folder / 'strip.png'}: ")
    assert "2x3000 pixels" in lines[0] and "IMAGE_RESIZE_MODE='pad64'" in lines[0]
    assert "Traceback" not in captured.err
    assert "wrote 2 figures" in captured.out and "skipped 1 of 3 files" in captured.out
    assert not (out / "strip.json").exists() and (out / "street.json").exists()


# ------------------------------------------------------------------------------------------------
# --video: tracked detections
# ------------------------------------------------------------------------------------------------
VIDEO_FRAMES = 5


@pytest.fixture(scope="module")
def video(module_tmp) -> Path:
    """A 5-frame 128 x 128 clip of crossing shapes."""
    return write_clip(
        make_clip("crossing", 0, frames=VIDEO_FRAMES), module_tmp.mktemp("v") / "c.mp4"
    )


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' decode on numpy 2
def test_detect_video_writes_mot_text_and_json_with_the_same_tracks(
    weights, video, tmp_path, capsys
):
    out = tmp_path / "out"
    argv = ["detect", "--weights", str(weights), "--video", str(video), "--output", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["c_tracks.json", "c_tracks.txt"]
    printed = capsys.readouterr().out
    assert f"wrote {out / 'c_tracks.txt'} and {out / 'c_tracks.json'}: 5 frames" in printed
    mot = read_mot(out / "c_tracks.txt", VIDEO_FRAMES)
    header, frames = read_tracks_json(out / "c_tracks.json")
    assert header["frames"] == VIDEO_FRAMES and header["video"] == str(video)
    assert (header["width"], header["height"]) == (128, 128)
    assert header["class_names"] == ["BG", "class 1", "class 2"]
    assert sum(len(f["track_ids"]) for f in mot) > 0  # random weights still give tracks
    for lines, everything in zip(mot, frames, strict=True):
        tracked = everything["track_ids"] >= 1
        np.testing.assert_array_equal(lines["track_ids"], everything["track_ids"][tracked])
        np.testing.assert_allclose(lines["boxes"], everything["boxes"][tracked], atol=0.01)
        assert everything["masks"].shape == (128, 128, len(everything["track_ids"]))
    # existing outputs are kept unless --overwrite
    assert main([*argv, "--no-progress"]) == 1
    assert "exist already" in capsys.readouterr().err


def _fake_model(detect=None) -> SimpleNamespace:
    """Stands in for a model: 3 classes, 2 frames a batch, nothing detected."""
    nothing = {
        "rois": np.zeros((0, 4), np.int32),
        "boxes": np.zeros((0, 4), np.float32),
        "class_ids": np.zeros(0, np.int32),
        "scores": np.zeros(0, np.float32),
        "masks": np.zeros((128, 128, 0), bool),
    }
    config = SimpleNamespace(NUM_CLASSES=3, IMAGES_PER_GPU=2, DETECTION_MIN_CONFIDENCE=0.7)
    detect = detect or (lambda frames: [dict(nothing) for _ in frames])
    return SimpleNamespace(config=config, checkpoint_extras={}, detect=detect)


def test_detect_video_output_may_name_the_files(video, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(common, "build_model", lambda args: _fake_model())
    argv = ["detect", "--weights", "w.pt", "--video", str(video), "--no-progress"]
    assert main([*argv, "--output", str(tmp_path / "run.json")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json", "run.txt"]
    assert "5 frames, 0 tracked detections, 0 tracks" in capsys.readouterr().out
    assert (tmp_path / "run.txt").read_text() == ""
    header, frames = read_tracks_json(tmp_path / "run.json")
    assert header["frames"] == 5 and all(f["masks"].shape == (128, 128, 0) for f in frames)
    assert main([*argv, "--output", str(tmp_path / "run.txt"), "--overwrite"]) == 0


def test_detect_video_mode_and_keyframes_choose_what_is_detected(video, tmp_path, monkeypatch):
    seen = []
    model = _fake_model()
    nothing = model.detect

    def counting(frames):
        seen.append(len(frames))
        return nothing(frames)

    model.detect = counting
    monkeypatch.setattr(common, "build_model", lambda args: model)
    argv = ["detect", "--weights", "w.pt", "--video", str(video), "--no-progress"]
    assert main([*argv, "--output", str(tmp_path / "a.txt")]) == 0
    assert seen == [2, 2, 1]  # tracked, every frame: IMAGES_PER_GPU frames a call
    seen.clear()
    flags = ["--video-mode", "stable", "--keyframe-interval", "2"]
    assert main([*argv, "--output", str(tmp_path / "b.txt"), *flags]) == 0
    assert seen == [1, 1, 1]  # keyframes 0, 2 and 4 only
    with pytest.raises(SystemExit):  # per-frame gives no track ids to write
        main([*argv, "--output", str(tmp_path / "c.txt"), "--video-mode", "per-frame"])


def test_detect_video_errors_are_one_line(weights, tmp_path, capsys, monkeypatch):
    built = []
    monkeypatch.setattr(common, "build_model", lambda args: built.append(args))
    argv = ["detect", "--weights", str(weights), "--output", str(tmp_path / "out")]
    assert main([*argv, "--video", str(tmp_path / "missing.mp4")]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"mrcnn detect: error: video file not found: {tmp_path / 'missing.mp4'}"
    (tmp_path / "notes.mp4").write_text("not a video")
    assert main([*argv, "--video", str(tmp_path / "notes.mp4")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mrcnn detect: error: cannot open video") and err.count("\n") == 1
    assert not built and not (tmp_path / "out").exists()  # refused before the model
    with pytest.raises(SystemExit):  # one source: --input or --video
        main([*argv, "--video", "a.mp4", "--input", "b.png"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_detect_input_that_is_a_video_points_to_video(weights, video, tmp_path, capsys):
    argv = ["detect", "--weights", str(weights), "--input", str(video), "--output", str(tmp_path)]
    assert main(argv) == 1
    assert f"mrcnn detect --video {video}" in capsys.readouterr().err


def test_detect_video_interrupted_writes_nothing(video, tmp_path, capsys, monkeypatch):
    def stop(frames):
        raise KeyboardInterrupt

    monkeypatch.setattr(common, "build_model", lambda args: _fake_model(stop))
    argv = ["detect", "--weights", "w.pt", "--video", str(video), "--output", str(tmp_path)]
    assert main([*argv, "--no-progress"]) == 130
    assert "interrupted: stopped after 0 frames; no track file written" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_build_analyser_tracks():
    from mrcnn.tracking.analysis import Tracked

    model = SimpleNamespace(detect=lambda frames: [], config=_fake_model().config)
    args = SimpleNamespace(video_mode="tracked", keyframe_interval=1)
    assert isinstance(detect.build_analyser(model, args), Tracked)
