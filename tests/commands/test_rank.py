"""``mrcnn rank``: the CSV best first, the copies never over a file, the labelled photos left
out, bad inputs in one line. A stand-in gives each photo the signals its colour encodes (the
network's pass is tested in tests/labelling/test_rank_signals.py); one test runs a real tiny
checkpoint end to end."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mrcnn.cli import main
from mrcnn.commands import common
from mrcnn.labelling import rank as rank_module
from mrcnn.labelling.signals import Signals
from tests.helpers.annotations import FakeModel, shapes_with_holes, write_project
from tests.helpers.tiny_model import save_tiny_checkpoint

#: Photo name -> (red: the detection uncertainty x 255, green: the feature's direction).
PHOTOS = {"calm.png": (20, 0), "doubtful.png": (230, 1), "middling.png": (120, 2)}


def _fake_signals(image: np.ndarray) -> Signals:
    red, green = int(image[0, 0, 0]), int(image[0, 0, 1])
    feature = np.zeros(4, dtype=np.float32)
    feature[green] = 10.0
    return Signals(red / 255, 0.0, 0.0, 0.0, feature, 1, 0.7, red / 255, None)


@pytest.fixture(autouse=True)
def _stand_in(request, monkeypatch):
    """Every test but the real one gets a stand-in model and signals."""
    if "real" in request.node.name:
        return
    monkeypatch.setattr(common, "build_model", lambda args: FakeModel(["cat", "dog"]))
    monkeypatch.setattr(rank_module, "network_pass", lambda model, image: image)
    monkeypatch.setattr(rank_module, "signals_of", _fake_signals)
    monkeypatch.setattr(
        rank_module, "pooled_features", lambda model, image: _fake_signals(image).feature
    )


def _photo(path: Path, red: int, green: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((32, 48, 3), (red, green, 0), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def photos(tmp_path) -> Path:
    for name, (red, green) in PHOTOS.items():
        _photo(tmp_path / "photos" / name, red, green)
    return tmp_path / "photos"


def _rank(folder: Path, *extra: str) -> int:
    return main(["rank", "--weights", "w.pt", "--input", str(folder), "--no-progress", *extra])


def _read(path: Path) -> list[dict]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def _last_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    return err[-1] if err else ""


def test_the_csv_lists_the_photos_best_first(photos, capsys):
    assert _rank(photos) == 0
    rows = _read(photos / "rank.csv")
    assert [Path(r["file"]).name for r in rows] == ["doubtful.png", "middling.png", "calm.png"]
    assert [r["rank"] for r in rows] == ["1", "2", "3"]
    assert rows[0]["detection_uncertainty"] == f"{230 / 255:.4f}"
    out = capsys.readouterr().out
    assert f"wrote {photos / 'rank.csv'}: 3 photos, best first" in out
    assert "   1  " in out and "doubtful.png: a detection scored 0.90, near the 0.70" in out


def test_an_existing_csv_is_kept_and_the_next_free_name_used(photos, capsys):
    (photos / "rank.csv").write_text("mine")
    assert _rank(photos) == 0
    assert (photos / "rank.csv").read_text() == "mine"
    assert len(_read(photos / "rank_1.csv")) == 3
    assert "writing" in capsys.readouterr().out


def test_top_copies_the_best_and_never_writes_over(photos, tmp_path, capsys):
    chosen = tmp_path / "to_label"
    _photo(chosen / "doubtful.png", 1, 1)
    before = (chosen / "doubtful.png").read_bytes()
    assert _rank(photos, "--top", "2", "--copy-to", str(chosen)) == 0
    assert (chosen / "doubtful.png").read_bytes() == before
    assert sorted(p.name for p in chosen.iterdir()) == [
        "doubtful.png",
        "doubtful_1.png",
        "middling.png",
    ]
    assert (chosen / "doubtful_1.png").read_bytes() == (photos / "doubtful.png").read_bytes()
    assert "copied 2 photos" in capsys.readouterr().out


def test_labelled_photos_are_left_out_and_their_likes_rank_lower(photos, tmp_path, capsys):
    # A labelled photo with the features of "doubtful.png" (green 1) and another in the folder.
    labelled = [_photo(photos / "done.png", 200, 1), _photo(photos / "done2.png", 50, 3)]
    project = write_project("coco", labelled, shapes_with_holes(), photos / "labelled.json")
    assert _rank(photos, "--labelled", f"coco:{project}") == 0
    rows = _read(photos / "rank.csv")
    assert "done.png" not in {Path(r["file"]).name for r in rows}
    # Without the labelled set it would come first: it is the most doubtful.
    assert [Path(r["file"]).name for r in rows] == ["middling.png", "doubtful.png", "calm.png"]
    assert float(rows[1]["diversity"]) == pytest.approx(0.0, abs=1e-4)
    assert "much like a labelled photo (done.png)" in rows[1]["reason"]
    assert "left out 2 photos of --labelled" in capsys.readouterr().out


def test_an_unreadable_photo_is_skipped_and_the_others_ranked(photos, capsys):
    (photos / "broken.png").write_bytes(b"not a picture")
    assert _rank(photos) == 1
    out = capsys.readouterr().out
    assert f"skipped {photos / 'broken.png'}: cannot read image" in out
    assert len(_read(photos / "rank.csv")) == 3


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--copy-to", "x"], "--copy-to needs --top N"),
        (["--top", "0"], "--top 0: give a number of photos, 1 or more"),
        (["--labelled", "coco:missing.json"], "missing.json"),
    ],
)
def test_bad_flags_are_one_line(photos, capsys, extra, message):
    assert _rank(photos, *extra) == 1
    error = _last_error(capsys)
    assert error.startswith("mrcnn rank: error:") and message in error


def test_a_missing_folder_is_one_line(tmp_path, capsys):
    assert _rank(tmp_path / "nowhere") == 1
    assert _last_error(capsys) == f"mrcnn rank: error: input not found: {tmp_path / 'nowhere'}"


def test_the_output_may_not_be_an_input(photos, capsys):
    assert _rank(photos, "--output", str(photos / "calm.png"), "--overwrite") == 1
    assert "inputs are never written over" in _last_error(capsys)


def test_a_real_tiny_checkpoint_ranks_a_folder(tmp_path, capsys):
    weights = save_tiny_checkpoint(
        tmp_path / "tiny.pt",
        class_names=["cat", "dog"],
        BACKBONE="resnet18",
        IMAGE_MIN_DIM=64,
        IMAGE_MAX_DIM=64,
    )
    folder = tmp_path / "photos"
    for k in range(2):
        _photo(folder / f"p{k}.png", 40 + 100 * k, 90)
    argv = ["rank", "--weights", str(weights), "--input", str(folder), "--no-progress"]
    assert main([*argv, "--set", "DETECTION_MIN_CONFIDENCE=0.3"]) == 0
    rows = _read(folder / "rank.csv")
    assert sorted(Path(r["file"]).name for r in rows) == ["p0.png", "p1.png"]
    assert all(0.0 <= float(r["score"]) <= 1.0 and r["reason"] for r in rows)
