"""``mrcnn annotate``: each format written and read back by our loaders; bad inputs in one line;
nothing a user owns overwritten."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mrcnn.cli import main
from mrcnn.commands import common
from mrcnn.datasets import from_spec
from tests.helpers.annotations import FakeModel, write_images
from tests.helpers.tiny_model import save_tiny_checkpoint

SUFFIX = {"via": ".json", "coco": ".json", "cvat": ".xml", "labelme": ""}


@pytest.fixture(scope="module")
def weights(module_tmp) -> Path:
    return save_tiny_checkpoint(
        module_tmp.mktemp("weights") / "tiny.pt", class_names=["cat", "dog"]
    )


@pytest.fixture(autouse=True)
def _fake_model(request, monkeypatch):
    """Every test but those marked real gets a stand-in model (a tiny model's CPU run costs
    seconds per image on a busy machine; the command's logic does not need it)."""
    if "real" not in request.node.name and "missing" not in request.node.name:
        monkeypatch.setattr(common, "build_model", lambda args: FakeModel(["cat", "dog"]))


@pytest.fixture
def images(tmp_path) -> Path:
    write_images(tmp_path / "images", 2)
    return tmp_path / "images"


def _run(weights, images, *extra) -> int:
    argv = ["annotate", "--weights", str(weights), "--input", str(images), "--no-progress"]
    return main([*argv, "--min-score", "0", *extra])


def _last_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    return err[-1] if err else ""


def test_a_real_tiny_model_run_loads_back(weights, tmp_path, capsys):
    images = write_images(tmp_path / "images", 1)[0].parent
    output = tmp_path / "out.json"
    assert _run(weights, images, "--format", "coco", "--output", str(output)) == 0
    spec = capsys.readouterr().out.strip().splitlines()[-1].split("--dataset ")[1].strip("'")
    assert spec == f"coco:{output}"
    data = json.loads(output.read_text())
    assert [image["file_name"] for image in data["images"]] == ["images/img0.png"]
    assert {c["name"] for c in data["categories"]} == {"cat", "dog"}


@pytest.mark.parametrize("format_name", ["via", "labelme", "coco", "cvat"])
def test_each_format_loads_back(weights, images, tmp_path, capsys, format_name):
    output = tmp_path / f"out{SUFFIX[format_name]}"
    assert _run(weights, images, "--format", format_name, "--output", str(output)) == 0
    out = capsys.readouterr().out
    spec = out.strip().splitlines()[-1].split("--dataset ")[1].strip("'")
    written = int(out.split(" written")[0].split()[-1])
    dataset = from_spec(spec, None)
    assert written > 0 and dataset.load_report.regions_loaded >= written
    assert dataset.load_report.regions_skipped == 0


def test_via_projects_outside_the_image_folder_say_how_to_open_them(
    weights, images, tmp_path, capsys
):
    assert _run(weights, images, "--format", "via", "--output", str(tmp_path / "p.json")) == 0
    assert "note: 2 image names carry a folder (e.g. 'images/img0.png')" in capsys.readouterr().out
    assert _run(weights, images, "--format", "via", "--output", str(images / "p.json")) == 0
    assert "note:" not in capsys.readouterr().out


def test_dry_run_writes_nothing(weights, images, tmp_path, capsys):
    output = tmp_path / "out.json"
    assert _run(weights, images, "--format", "coco", "--output", str(output), "--dry-run") == 0
    assert "dry run: nothing written" in capsys.readouterr().out
    assert not output.exists()


def test_existing_output_and_merged_project_are_left_alone(weights, images, tmp_path, capsys):
    project = tmp_path / "project.json"
    assert _run(weights, images, "--format", "via", "--output", str(project)) == 0
    before = project.read_bytes()
    assert _run(weights, images, "--format", "via", "--output", str(project)) == 0
    assert project.read_bytes() == before and (tmp_path / "project_1.json").is_file()
    assert _run(weights, images, "--format", "via", "--merge", str(project)) == 0
    assert project.read_bytes() == before and (tmp_path / "project_2.json").is_file()
    assert "exists: writing" in capsys.readouterr().out
    assert _run(weights, images, "--format", "via", "--merge", str(project), "--overwrite") == 0
    merged = json.loads(project.read_text())
    # The rerun replaced its own regions instead of adding a second copy.
    counts = [len(e["regions"]) for e in merged["_via_img_metadata"].values()]
    assert counts == [len(e["regions"]) for e in json.loads(before)["_via_img_metadata"].values()]


def test_an_unreadable_image_is_named_and_skipped(weights, images, tmp_path, capsys):
    (images / "broken.png").write_bytes(b"not an image")
    assert _run(weights, images, "--format", "coco", "--output", str(tmp_path / "o.json")) == 1
    out = capsys.readouterr().out
    assert "skipped " in out and "broken.png" in out
    assert len(json.loads((tmp_path / "o.json").read_text())["images"]) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "via", "--output", "o.json", "--classes", "cow"], "unknown class 'cow'"),
        (["--format", "via"], "give --output PATH"),
        (["--format", "via", "--output", "o.json", "--skip-iou", "2"], "--skip-iou 2.0 is out"),
    ],
)
def test_bad_flags_are_one_line(weights, images, capsys, args, message):
    assert _run(weights, images, *args) == 1
    assert message in _last_error(capsys)


def test_bad_inputs_are_one_line(weights, images, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _run(weights, empty, "--format", "via", "--output", str(tmp_path / "o.json")) == 1
    assert "no .jpg" in _last_error(capsys)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert _run(weights, images, "--format", "via", "--merge", str(broken)) == 1
    assert "malformed JSON" in _last_error(capsys)
    image = images / "img0.png"
    args = ["--format", "via", "--output", str(image), "--overwrite"]
    assert _run(weights, images, *args) == 1
    assert "input of this run" in _last_error(capsys)
    with pytest.raises(SystemExit):
        _run(weights, images, "--format", "yolo", "--output", "o.json")


def test_missing_weights_are_one_line(images, tmp_path, capsys):
    missing = tmp_path / "missing.pt"
    assert _run(missing, images, "--format", "via", "--output", str(tmp_path / "o.json")) == 1
    assert str(missing) in _last_error(capsys)
