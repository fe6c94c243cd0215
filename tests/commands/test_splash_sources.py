"""``mrcnn splash --video`` with a stream, a camera index, frame and time limits, --preview and
--video-size, end to end with a tiny random-weight checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from mrcnn.cli import main
from tests.helpers.tiny_model import save_tiny_checkpoint
from tests.helpers.video_sources import count_frames, served, write_clip

#: 160 x 64 frames under the tiny model's square 128/128: 128 x 51, padded to 128 x 64 (tight)
#: or 128 x 128 (square).
SIZE = (160, 64)


@pytest.fixture(scope="module")
def weights(module_tmp) -> Path:
    path = module_tmp.mktemp("weights") / "tiny.pt"
    return save_tiny_checkpoint(path, class_names=["BG", "balloon", "kite"])


_MODELS: dict = {}


@pytest.fixture(autouse=True)
def built_once(monkeypatch, weights):
    """Every command of this module gets the same model: building it is the slow part."""
    from mrcnn.commands import common

    real = common.build_model

    def build(args):
        if "model" not in _MODELS:
            _MODELS["model"] = real(args)
        return _MODELS["model"]

    monkeypatch.setattr(common, "build_model", build)


@pytest.fixture
def stream(tmp_path) -> str:
    """The URL of a 20-frame, 10 fps clip served over local HTTP."""
    folder = tmp_path / "served"
    folder.mkdir()
    write_clip(folder / "clip.mp4", frames=20, size=SIZE, fps=10.0)
    with served(folder) as base:
        yield f"{base}/clip.mp4"


def splash(weights: Path, *argv: str) -> int:
    return main(["splash", "--weights", str(weights), "--no-progress", *argv])


def test_a_stream_is_splashed_up_to_max_frames(weights, stream, tmp_path, capsys):
    out = tmp_path / "live.mp4"
    assert splash(weights, "--video", stream, "--max-frames", "7", "--output", str(out)) == 0
    said = capsys.readouterr().out.splitlines()
    assert said[0] == (
        "video input: 160x64 frames -> 128x64 network input (IMAGE_RESIZE_MODE square, padded "
        "to multiples of 64 instead of 128x128)"
    )
    assert said[1].startswith(f"wrote {out}: 7 frames, 160x64 at 10 fps")
    assert said[1].endswith("; stopped at the limit of 7 frames")
    assert count_frames(out) == 7


def test_a_stream_gets_a_name_from_its_host(weights, stream, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert splash(weights, "--video", stream, "--duration", "0.5") == 0
    assert count_frames(tmp_path / "127.0.0.1_splash.mp4") == 5  # frames at 0.0 ... 0.4 s
    assert splash(weights, "--video", stream, "--duration", "0.25", "--video-size", "config") == 0
    said = capsys.readouterr().out
    assert "160x64 frames -> 128x128 network input (IMAGE_RESIZE_MODE square)\n" in said
    assert count_frames(tmp_path / "127.0.0.1_splash_1.mp4") == 3  # never over the first


def test_max_frames_stops_a_file_too(weights, tmp_path, capsys):
    clip = write_clip(tmp_path / "clip.avi", frames=12)
    assert (
        splash(weights, "--video", str(clip), "--max-frames", "4", "--output", str(tmp_path)) == 0
    )
    assert count_frames(tmp_path / "clip_splash.mp4") == 4
    assert "stopped at the limit of 4 frames" in capsys.readouterr().out


def test_a_camera_index_without_a_camera_is_one_line_and_no_model(
    weights, tmp_path, capfd, monkeypatch
):
    from mrcnn.commands import common

    monkeypatch.setattr(common, "build_model", lambda args: pytest.fail("model built"))
    assert splash(weights, "--video", "99", "--output", str(tmp_path / "cam.mp4")) == 1
    err = capfd.readouterr().err
    assert err.startswith("mrcnn splash: error: cannot open camera 99: OpenCV found no camera")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_an_unreachable_stream_is_one_line(weights, tmp_path, capsys):
    from tests.helpers.video_sources import closed_port

    url = f"http://127.0.0.1:{closed_port()}/live"
    assert splash(weights, "--video", url, "--output", str(tmp_path / "o.mp4")) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"mrcnn splash: error: cannot open stream {url}: FFmpeg could not")
    assert err.count("\n") == 1 and not list(tmp_path.iterdir())


def test_preview_without_a_display_says_so_and_runs_headless(
    weights, stream, tmp_path, monkeypatch, capsys
):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    out = tmp_path / "o.mp4"
    assert (
        splash(weights, "--video", stream, "--max-frames", "3", "--preview", "--output", str(out))
        == 0
    )
    assert capsys.readouterr().err.splitlines() == [
        "note: no preview: no display to show it on (DISPLAY and WAYLAND_DISPLAY are unset); "
        "running headless"
    ]
    assert count_frames(out) == 3


@pytest.mark.parametrize("flag", ["--max-frames", "--duration"])
def test_limits_must_be_above_zero(weights, flag, capsys):
    with pytest.raises(SystemExit) as stopped:
        splash(weights, "--video", "0", flag, "0")
    assert stopped.value.code == 2
    assert f"{flag}: '0' is not a number above 0" in capsys.readouterr().err


def test_tracking_flags_run_end_to_end(weights, tmp_path, capsys):
    clip = write_clip(tmp_path / "clip.mp4", frames=8, size=SIZE, fps=10.0)
    out = tmp_path / "tracked.mp4"
    argv = ["--video", str(clip), "--output", str(out), "--draw-ids", "--tracks", "1,2"]
    assert splash(weights, *argv, "--keyframe-interval", "4") == 0
    assert count_frames(out) == 8


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--keyframe-interval", "0"], "whole number >= 1, or 'auto'"),
        (["--video-mode", "per-frame", "--draw-ids"], "need track ids"),
        (["--video-mode", "per-frame", "--keyframe-interval", "3"], "keyframes carry tracks"),
        (["--tracks", "one"], "--tracks 'one': give track ids"),
    ],
)
def test_bad_tracking_flags_say_what_to_do(weights, tmp_path, capsys, flags, message):
    clip = write_clip(tmp_path / "clip.mp4", frames=2, size=SIZE, fps=10.0)
    argv = ["--video", str(clip), "--output", str(tmp_path / "o.mp4"), *flags]
    if flags[0] == "--keyframe-interval":  # argparse's own error
        with pytest.raises(SystemExit):
            splash(weights, *argv)
    else:
        assert splash(weights, *argv) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()
