"""Issue 12, data loss: detect never writes over inputs or files it did not create, and the demo
replaces only a folder an earlier demo wrote."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mrcnn.cli import main
from mrcnn.outputs import DEMO_MARKER, OutputError, prepare_demo_folder
from tests.helpers.tiny_model import save_tiny_checkpoint


@pytest.fixture(scope="module")
def weights(module_tmp) -> Path:
    return save_tiny_checkpoint(module_tmp.mktemp("w") / "tiny.pt")


def _photos(folder: Path, names=("party.png", "beach.jpg")) -> dict[str, bytes]:
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(folder / name)
    return _contents(folder)


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _detect(weights, source, out, *extra) -> int:
    argv = ["detect", "--weights", str(weights), "--input", str(source), "--output", str(out)]
    return main([*argv, *extra])


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


def test_detect_into_the_input_folder_never_replaces_an_input(weights, tmp_path, capsys):
    photos = tmp_path / "photos"
    _photos(photos, ("party.png",))
    (photos / "beach.jpg").write_bytes(b"")  # another input, unreadable
    (photos / "beach.json").write_text("my notes")  # a user's file named like an output
    before = _contents(photos)
    for extra in ((), ("--overwrite",)):
        assert _detect(weights, photos, photos, *extra) == 1
        err = _one_line(capsys)
        assert "over input files" in err and "party.png" in err and "even with" in err
        assert _contents(photos) == before


def test_detect_into_the_input_folder_without_collisions_works(weights, tmp_path, capsys):
    photos = tmp_path / "photos"
    _photos(photos, ("party.jpg",))
    assert _detect(weights, photos, photos) == 0
    assert sorted(p.name for p in photos.iterdir()) == [
        "detections.json",
        "party.jpg",
        "party.json",
        "party.png",
    ]


def test_detect_existing_outputs_need_overwrite(weights, tmp_path, capsys):
    photos = tmp_path / "in"
    _photos(photos)
    out = tmp_path / "out"
    assert _detect(weights, photos, out) == 0
    (out / "party.json").write_text("edited by hand")
    capsys.readouterr()
    before = _contents(out)
    assert _detect(weights, photos, out) == 1
    assert "--overwrite" in _one_line(capsys) and _contents(out) == before
    assert _detect(weights, photos, out, "--overwrite") == 0
    assert (out / "party.json").read_text().startswith("[")


def test_detect_an_image_named_like_the_summary_keeps_both(weights, tmp_path):
    photos = tmp_path / "in"
    _photos(photos, ("detections.png",))
    out = tmp_path / "out"
    assert _detect(weights, photos, out) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "detections.json",
        "detections_png.json",
        "detections_png.png",
    ]


def test_detect_output_that_is_a_file(weights, tmp_path, capsys):
    photos = tmp_path / "in"
    _photos(photos)
    target = tmp_path / "out.txt"
    target.write_text("keep")
    assert _detect(weights, photos, target) == 1
    assert "is an existing file" in _one_line(capsys) and target.read_text() == "keep"


def test_detect_of_a_video_points_to_splash_before_writing(weights, tmp_path, capsys):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"a video's bytes")
    assert _detect(weights, clip, tmp_path / "out") == 1
    assert "is a video; mrcnn detect reads images" in _one_line(capsys)
    assert not (tmp_path / "out").exists()


def test_detect_no_summary_when_no_image_was_read(weights, tmp_path, capsys):
    photos = tmp_path / "in"
    photos.mkdir()
    (photos / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    assert _detect(weights, photos, out) == 1
    assert not (out / "detections.json").exists()
    captured = capsys.readouterr()
    assert "skipped 1 of 1 files" in captured.out and "no detections.json" in captured.out


def test_detect_folder_counts_the_skipped_files(weights, tmp_path, capsys):
    photos = tmp_path / "in"
    _photos(photos)
    (photos / "zz_broken.png").write_bytes(b"not a png")
    assert _detect(weights, photos, tmp_path / "out") == 1
    captured = capsys.readouterr()
    assert "wrote 2 figures" in captured.out and "skipped 1 of 3 files" in captured.out
    assert "skipped " in captured.err and "zz_broken.png" in captured.err


# ------------------------------------------------------------------ demo --out
def test_demo_refuses_a_folder_it_did_not_write(tmp_path, capsys):
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("precious")
    assert main(["demo", "--out", str(mine), "--quiet"]) == 1
    err = _one_line(capsys)
    assert "was not written by mrcnn demo" in err and "nothing was deleted" in err
    assert _contents(mine) == {"chapter1.tex": b"precious"}
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        prepare_demo_folder(a_file)


def test_demo_replaces_its_own_earlier_output(tmp_path):
    out = prepare_demo_folder(tmp_path / "demo")
    (out / "report.md").write_text("old report")
    assert (out / DEMO_MARKER).is_file()
    again = prepare_demo_folder(out)
    assert sorted(p.name for p in again.iterdir()) == [DEMO_MARKER]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (prepare_demo_folder(empty) / DEMO_MARKER).is_file()  # an empty folder is fine
