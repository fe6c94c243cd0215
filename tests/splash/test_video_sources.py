"""process_video beyond one file read to its end: live sources, frame and time limits, Ctrl-C
on a live source, a frame analyser in place of detect, the tight network input, a preview."""

from __future__ import annotations

import signal
import threading
import time

import numpy as np
import pytest

from mrcnn.splash.network_input import network_input_note, resize_mode, video_resize_mode
from mrcnn.splash.preview import Preview, open_preview
from mrcnn.splash.sources import VideoInfo
from mrcnn.splash.video import process_video
from tests.helpers.tiny_model import tiny_model
from tests.helpers.video_sources import NothingFound, count_frames, served, write_clip


def keep(frame, result):
    return frame


def test_a_stream_is_written_up_to_max_frames_as_a_complete_video(tmp_path):
    write_clip(tmp_path / "clip.mp4", frames=20)
    out = tmp_path / "out" / "live.mp4"
    out.parent.mkdir()
    with served(tmp_path) as base:
        report = process_video(
            NothingFound(), f"{base}/clip.mp4", out, keep, progress=False, max_frames=7
        )
    assert report.frames_written == 7 and count_frames(out) == 7
    assert report.complete and report.info.live and report.audio == ""
    assert report.stop == "stopped at the limit of 7 frames"
    assert "7 frames, 96x64 at 10 fps" in report.summary()
    assert "stopped at the limit of 7 frames" in report.summary()
    assert sorted(p.name for p in out.parent.iterdir()) == ["live.mp4"]


def test_a_stream_read_to_its_end_needs_no_limit(tmp_path):
    write_clip(tmp_path / "clip.avi", frames=9)
    with served(tmp_path) as base:
        report = process_video(NothingFound(), f"{base}/clip.avi", tmp_path / "o.avi", keep)
    assert report.frames_written == 9 and report.complete and report.stop == ""


@pytest.mark.parametrize(("seconds", "frames"), [(0.5, 5), (0.55, 6), (1.0, 10), (5.0, 12)])
def test_duration_counts_seconds_of_input(tmp_path, seconds, frames):
    clip = write_clip(tmp_path / "clip.avi", frames=12, fps=10.0)
    model = NothingFound(images_per_gpu=4)
    report = process_video(model, clip, tmp_path / "o.avi", keep, progress=False, duration=seconds)
    assert report.frames_written == frames == count_frames(tmp_path / "o.avi")
    assert sum(model.batches) == frames  # nothing read past the limit went through detect
    assert report.complete  # a file stopped at its limit is complete, not "ended early"
    assert bool(report.stop) == (frames < 12)


class SlowNothing(NothingFound):
    """Detects nothing, slowly; sends itself a Ctrl-C (SIGINT to the main thread) in batch
    ``interrupt_at`` (0-based), as a user's Ctrl-C would arrive."""

    def __init__(self, interrupt_at: int) -> None:
        super().__init__(images_per_gpu=2)
        self.interrupt_at = interrupt_at

    def detect(self, images):
        if len(self.batches) == self.interrupt_at:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        time.sleep(0.05)  # the encoder (idle priority) writes the frames before
        return super().detect(images)


@pytest.mark.serial  # it sends SIGINT to its own process: run alone, not in an xdist worker
def test_ctrl_c_ends_a_live_source_with_its_frames_as_the_output(tmp_path, ctrl_c_handler):
    write_clip(tmp_path / "clip.avi", frames=40)
    out = tmp_path / "live.avi"
    with served(tmp_path) as base:
        report = process_video(SlowNothing(5), f"{base}/clip.avi", out, keep, progress=False)
    assert report.stop == "stopped by Ctrl-C" and report.complete
    assert 0 < report.frames_written < 40 and count_frames(out) == report.frames_written
    assert not list(tmp_path.glob("*partial*")) and "stopped by Ctrl-C" in report.summary()
    assert not [t for t in threading.enumerate() if t.name.startswith("video-")]


@pytest.mark.serial  # it sends SIGINT to its own process: run alone, not in an xdist worker
def test_ctrl_c_on_a_file_still_keeps_a_partial_and_raises(tmp_path, ctrl_c_handler):
    clip = write_clip(tmp_path / "clip.avi", frames=40)
    with pytest.raises(KeyboardInterrupt, match=r"(partial video|no frame was written)"):
        process_video(SlowNothing(5), clip, tmp_path / "o.avi", keep, progress=False)
    assert not (tmp_path / "o.avi").exists()


class Recording:
    """A frame analyser that records its calls and marks each result with its frame number."""

    def __init__(self, model) -> None:
        self.model, self.calls, self.frames = model, [], 0

    def reset(self) -> None:
        self.calls.append("reset")
        self.frames = 0

    def __call__(self, frames):
        self.calls.append(len(frames))
        assert threading.current_thread() is threading.main_thread()  # the caller's thread
        results = self.model.detect(list(frames))
        for result in results:
            result["track_ids"] = np.full(len(result["scores"]), self.frames, np.int64)
            self.frames += 1
        return results


def test_a_frame_analyser_replaces_detect_and_starts_afresh(tmp_path):
    clip = write_clip(tmp_path / "clip.avi", frames=10)
    model = NothingFound(images_per_gpu=4)
    analyser = Recording(NothingFound())
    seen = []

    def render(frame, result):
        seen.append(result["track_ids"].shape)
        return frame

    for _ in range(2):
        report = process_video(model, clip, tmp_path / "o.avi", render, analyser=analyser)
        assert report.frames_written == 10
    assert analyser.calls == ["reset", 4, 4, 2] * 2  # batches of the model's IMAGES_PER_GPU
    assert model.batches == [] and len(seen) == 20  # model.detect itself was never called


def test_the_tracked_analyser_gives_every_frame_track_ids(tmp_path):
    from mrcnn.tracking.analysis import Tracked

    model = tiny_model()
    clip = write_clip(tmp_path / "clip.avi", frames=6)
    ids = []
    process_video(
        model,
        clip,
        tmp_path / "o.avi",
        lambda f, r: ids.append(r["track_ids"]) or f,
        analyser=Tracked(model),
        progress=False,
    )
    assert len(ids) == 6 and all(i.dtype == np.int64 for i in ids)


# ------------------------------------------------------------------------------------------------
# The network input
# ------------------------------------------------------------------------------------------------
WIDE = {"IMAGE_MIN_DIM": 128, "IMAGE_MAX_DIM": 256}  # 96 x 64 frames: 192 x 128 at scale 2


@pytest.mark.parametrize(("choice", "shape"), [("tight", (128, 192)), ("config", (256, 256))])
def test_video_frames_go_in_tight_unless_asked_and_the_config_is_left_as_it_was(
    tmp_path, choice, shape
):
    model = tiny_model(**WIDE)
    assert "IMAGE_RESIZE_MODE" not in vars(model.config)  # Config.from_overrides: on the class
    clip = write_clip(tmp_path / "clip.avi", frames=3)
    said = []
    process_video(model, clip, tmp_path / "o.avi", keep, network_input=choice, say=said.append)
    assert model.anchor_shape == shape
    assert model.config.IMAGE_RESIZE_MODE == "square"
    assert "IMAGE_RESIZE_MODE" not in vars(model.config)
    assert said == [
        "video input: 96x64 frames -> 192x128 network input (IMAGE_RESIZE_MODE square, padded "
        "to multiples of 64 instead of 256x256)"
        if choice == "tight"
        else "video input: 96x64 frames -> 256x256 network input (IMAGE_RESIZE_MODE square)"
    ]


def test_the_resize_mode_comes_back_after_an_error():
    config = tiny_model().config
    config.IMAGE_RESIZE_MODE = "square"  # the instance's own attribute this time
    with pytest.raises(RuntimeError), resize_mode(config, "square_pad64"):
        assert config.IMAGE_RESIZE_MODE == "square_pad64"
        raise RuntimeError
    assert vars(config)["IMAGE_RESIZE_MODE"] == "square"
    with pytest.raises(ValueError, match="network_input='small': use 'tight'"):
        video_resize_mode(config, "small")


def test_the_balloon_frame_note(tmp_path):
    config = tiny_model().config.from_overrides({"IMAGE_MIN_DIM": 800, "IMAGE_MAX_DIM": 1024})
    info = VideoInfo(640, 360, 30.0, 100)
    assert network_input_note(config, info) == (
        "video input: 640x360 frames -> 1024x576 network input (IMAGE_RESIZE_MODE square, "
        "padded to multiples of 64 instead of 1024x1024)"
    )
    pad64 = config.from_overrides({"IMAGE_RESIZE_MODE": "pad64", "IMAGE_MIN_DIM": 768})
    assert video_resize_mode(pad64) == "pad64"  # already tight
    assert network_input_note(pad64, info).endswith("(IMAGE_RESIZE_MODE pad64)")


# ------------------------------------------------------------------------------------------------
# The preview
# ------------------------------------------------------------------------------------------------
class FakeGui:
    """OpenCV's HighGUI calls, recorded; ``q`` is pressed at refresh number ``quit_at``."""

    WINDOW_NORMAL, WND_PROP_VISIBLE = 0, 4

    def __init__(self, quit_at: int | None = None) -> None:
        self.quit_at, self.shown, self.keys, self.threads = quit_at, [], 0, set()

    def namedWindow(self, title, flags):  # noqa: N802 - OpenCV's names
        self.threads.add(threading.current_thread().name)

    def imshow(self, title, frame):
        self.threads.add(threading.current_thread().name)
        self.shown.append(frame.shape)

    def waitKey(self, delay):  # noqa: N802
        self.keys += 1
        return ord("q") if self.keys == self.quit_at else -1

    def getWindowProperty(self, title, prop):  # noqa: N802
        return 1.0

    def destroyWindow(self, title):  # noqa: N802
        self.shown.append("closed")


def test_the_preview_shows_frames_from_the_calling_thread_and_q_stops_the_run(tmp_path):
    clip = write_clip(tmp_path / "clip.avi", frames=40)
    gui = FakeGui(quit_at=4)
    preview = Preview("test", gui)
    report = process_video(SlowNothing(-1), clip, tmp_path / "o.avi", keep, preview=preview)
    preview.close()
    assert report.stop == "stopped: the preview window was closed" and report.complete
    assert report.frames_written == 6  # 3 batches of 2 before the 4th refresh said stop
    assert gui.threads == {threading.main_thread().name}
    assert set(gui.shown[:-1]) == {(64, 96, 3)} and gui.shown[-1] == "closed"


def test_without_a_display_or_a_gui_the_run_is_headless_and_says_why(monkeypatch):
    import sys

    monkeypatch.setattr(sys, "platform", "linux")
    preview, why = open_preview(environ={})
    assert preview is None
    assert why == (
        "no preview: no display to show it on (DISPLAY and WAYLAND_DISPLAY are unset); "
        "running headless"
    )
    preview, why = open_preview(environ={"DISPLAY": ":0"})
    if preview is not None:  # an OpenCV with a GUI and a display: nothing more to check
        preview.close()
        pytest.skip("this OpenCV has a GUI")
    assert why.startswith("no preview: this OpenCV has no GUI (the project installs opencv-")
    preview, why = open_preview(gui=FakeGui(), environ={"WAYLAND_DISPLAY": "wayland-0"})
    assert isinstance(preview, Preview) and why == ""
