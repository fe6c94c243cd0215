"""``mrcnn splash`` end to end with a tiny random-weight checkpoint: image, folder, video."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from mrcnn.cli import main
from tests.helpers.tiny_model import save_tiny_checkpoint

CLASS_NAMES = ["BG", "balloon", "kite"]


@pytest.fixture(scope="module")
def weights(module_tmp) -> Path:
    """A checkpoint of a tiny random model that stores its config and class names."""
    path = module_tmp.mktemp("weights") / "tiny.pt"
    return save_tiny_checkpoint(path, class_names=CLASS_NAMES)


_MODELS: dict = {}


@pytest.fixture(autouse=True)
def built_once(monkeypatch, weights):
    """Every command of this module gets the same model: building it is the slow part."""
    from mrcnn.commands import common

    real = common.build_model

    def build(args):
        if str(args.weights) != str(weights):  # a module that imported it now keeps this one
            return real(args)
        if "model" not in _MODELS:
            _MODELS["model"] = real(args)
        return _MODELS["model"]

    monkeypatch.setattr(common, "build_model", build)


def test_model_config_and_class_names_come_from_the_checkpoint(weights):
    import argparse

    from mrcnn.commands.common import build_model, class_names_for, inference_config

    args = argparse.Namespace(weights=str(weights), config=None, set=["CPU_THREADS=1"])
    config = inference_config(args)
    assert config.NUM_CLASSES == 3 and config.IMAGE_MAX_DIM == 128 and config.CPU_THREADS == 1
    model = build_model(args)
    assert class_names_for(model, args.weights) == CLASS_NAMES
    assert class_names_for(model, args.weights, "a,b") == ["BG", "a", "b"]
    with pytest.raises(ValueError, match="has 1 names but the model has 2 classes"):
        class_names_for(model, args.weights, "a")


def _image(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(path)
    return path


def _clip(path: Path, frames: int, fourcc: str) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, (96, 64))
    for i in range(frames):
        frame = np.full((64, 96, 3), 40 + 10 * i, dtype=np.uint8)
        frame[10:40, 5 + 5 * i : 35 + 5 * i] = (0, 0, 220)
        writer.write(frame)
    writer.release()
    return path


def _splash(weights: Path, *argv: str) -> int:
    return main(["splash", "--weights", str(weights), "--no-progress", *argv])


def _is_colour(image: np.ndarray) -> bool:
    """Whether any pixel of an RGB image has R, G, B not all equal."""
    image = image.astype(int)
    return bool((image.max(axis=2) != image.min(axis=2)).any())


def test_image_then_no_overwrite_then_overwrite(weights, tmp_path, capsys):
    photo = _image(tmp_path / "photo.jpg")
    out = tmp_path / "out"
    assert _splash(weights, "--image", str(photo), "--output", str(out)) == 0
    first = out / "photo_splash.png"
    assert Image.open(first).size == (96, 64)
    assert f"wrote {first}" in capsys.readouterr().out
    first.write_bytes(b"keep me")
    assert _splash(weights, "--image", str(photo), "--output", str(out)) == 0
    assert first.read_bytes() == b"keep me"
    assert (out / "photo_splash_1.png").is_file()
    argv = ["--image", str(photo), "--output", str(first), "--overwrite"]
    assert _splash(weights, *argv, "--effect", "dim") == 0
    assert Image.open(first).size == (96, 64)


def test_class_selection_by_name_from_the_checkpoint(weights, tmp_path, monkeypatch):
    from mrcnn.splash.filter import color_splash

    monkeypatch.chdir(tmp_path)
    photo = _image(tmp_path / "p.png", seed=3)
    image = np.asarray(Image.open(photo).convert("RGB"))
    for name in CLASS_NAMES[1:]:
        argv = ["--image", str(photo), "--output", str(tmp_path / f"{name}.png")]
        assert _splash(weights, *argv, "--classes", name, "--min-score", "0") == 0
    # The same detections splashed directly: only the selected class keeps its colour.
    r = _MODELS["model"].detect([image])[0]
    assert r["class_ids"].tolist() and set(r["class_ids"].tolist()) == {1}  # all "balloon"
    balloons = color_splash(image, r["masks"])
    assert _is_colour(balloons), "the detections must leave some colour"
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "balloon.png")), balloons)
    no_kites = color_splash(image, r["masks"][:, :, :0])
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "kite.png")), no_kites)
    assert _splash(weights, "--image", str(photo), "--classes", "cat", "--output", "x.png") == 1


def test_input_dir_with_images_and_a_video(weights, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    _image(folder / "a.png", 1)
    _image(folder / "b.jpg", 2)
    _clip(folder / "c.avi", 6, "MJPG")
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "splashed"
    argv = ["--input-dir", str(folder), "--output", str(out), "--effect", "blur"]
    assert _splash(weights, *argv, "--feather", "2") == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["a_splash.png", "b_splash.png", "c_splash.mp4"]
    capture = cv2.VideoCapture(str(out / "c_splash.mp4"))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 6
    assert capture.get(cv2.CAP_PROP_FPS) == 10.0
    capture.release()
    assert "6 frames" in capsys.readouterr().out


def test_truncated_video_reports_frames_written(weights, tmp_path, capsys):
    clip = _clip(tmp_path / "cut.avi", 10, "MJPG")
    clip.write_bytes(clip.read_bytes()[: int(clip.stat().st_size * 0.6)])
    assert _splash(weights, "--video", str(clip), "--output", str(tmp_path)) == 1
    err = capsys.readouterr().err
    assert "input ended early: only" in err and "of the 10 frames" in err
    written = int(err.split("only ")[1].split()[0])
    capture = cv2.VideoCapture(str(tmp_path / "cut_splash.mp4"))
    assert capture.isOpened()
    frames = 0
    while capture.read()[0]:
        frames += 1
    assert frames == written >= 0


def test_errors_are_reported_not_raised(weights, tmp_path, capsys):
    assert _splash(weights, "--image", str(tmp_path / "missing.jpg")) == 1
    assert "input not found" in capsys.readouterr().err
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    assert _splash(weights, "--video", str(bad), "--output", str(tmp_path / "o.mp4")) == 1
    assert "cannot open video" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()


def test_a_video_with_an_unlisted_extension_is_written_as_a_video(weights, tmp_path, capsys):
    clip = _clip(tmp_path / "recording.avi", 4, "MJPG").rename(tmp_path / "recording.vid")
    assert _splash(weights, "--video", str(clip), "--output", str(tmp_path / "out")) == 0
    written = tmp_path / "out" / "recording_splash.mp4"  # OpenCV reads it by its content
    capture = cv2.VideoCapture(str(written))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 4
    capture.release()
    assert f"wrote {written}: 4 frames" in capsys.readouterr().out


def test_outputs_of_the_wrong_kind_are_refused_before_any_file(weights, tmp_path, capsys):
    photo = _image(tmp_path / "photo.jpg")
    clip = _clip(tmp_path / "clip.avi", 3, "MJPG")
    assert _splash(weights, "--video", str(photo), "--output", str(tmp_path / "a.mp4")) == 1
    assert "photo.jpg is an image (.jpg), not a video" in capsys.readouterr().err
    assert _splash(weights, "--video", str(clip), "--output", str(tmp_path / "b.png")) == 1
    assert "the splash of video clip.avi is a video; name it .mp4" in capsys.readouterr().err
    assert _splash(weights, "--image", str(photo), "--output", str(tmp_path / "c.mp4")) == 1
    assert "the splash of image photo.jpg is an image" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.avi", "photo.jpg"]
