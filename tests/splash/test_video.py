"""The video path: frame count, size and fps kept, batching, truncated inputs, writer release."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from mrcnn.model import MaskRCNN
from mrcnn.outputs import OutputWriteError
from mrcnn.splash.filter import splash_video
from mrcnn.splash.video import open_video, process_video
from tests.helpers.tiny_model import tiny_model

SIZE = (96, 64)  # width, height
FPS = 12.0


@pytest.fixture(scope="module")
def model() -> MaskRCNN:
    return tiny_model()


def write_clip(path: Path, frames: int = 10, fourcc: str = "mp4v") -> Path:
    """A clip of a green square moving over a gray gradient, written with cv2.VideoWriter."""
    width, height = SIZE
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, SIZE)
    assert writer.isOpened()
    base = np.tile(np.linspace(30, 220, width, dtype=np.uint8), (height, 1))
    for i in range(frames):
        frame = cv2.cvtColor(base, cv2.COLOR_GRAY2BGR)
        frame[16:40, 4 + 6 * i : 28 + 6 * i] = (0, 200, 0)
        writer.write(frame)
    writer.release()
    return path


def count_frames(path: Path) -> tuple[int, tuple[int, int], float]:
    """(frames decoded, (width, height), fps) as cv2.VideoCapture sees the file."""
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), f"{path} does not open"
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    return frames, size, fps


def truncate(path: Path, keep: float = 0.6) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def test_splash_video_keeps_frames_size_and_fps(model, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4")
    report = splash_video(model, clip, tmp_path / "out", progress=False)
    assert report.output == tmp_path / "out" / "clip_splash.mp4"
    assert report.complete and report.frames_written == 10
    assert count_frames(report.output) == (10, SIZE, FPS)
    assert "10 frames" in report.summary()


class CountingModel:
    """Wraps a model, recording the batch sizes ``detect`` gets."""

    def __init__(self, model: MaskRCNN) -> None:
        self.model, self.config, self.batches = model, model.config, []

    def detect(self, images):
        self.batches.append(len(images))
        return self.model.detect(images)


def test_frames_go_through_the_model_in_batches(model, tmp_path):
    clip = write_clip(tmp_path / "clip.avi", frames=6, fourcc="MJPG")
    counting = CountingModel(model)
    seen = []

    def render(frame, result):
        assert frame.shape == (SIZE[1], SIZE[0], 3) and result["masks"].shape[:2] == frame.shape[:2]
        seen.append(frame[28, 50].copy())
        return frame

    report = process_video(counting, clip, tmp_path / "copy.avi", render, progress=False)
    assert counting.batches == [4, 2]
    assert report.frames_written == 6 and count_frames(report.output)[0] == 6
    assert tuple(seen[0]) != tuple(seen[-1])  # frames in order: the square moved


def test_truncated_video_stops_cleanly_with_a_playable_partial_output(model, tmp_path):
    # MJPG in AVI: a cut file still opens and decodes up to the cut (an MP4 loses its index)
    clip = truncate(write_clip(tmp_path / "cut.avi", frames=10, fourcc="MJPG"))
    report = splash_video(model, clip, tmp_path, progress=False)
    assert not report.complete
    assert report.frames_written < 10
    assert f"only {report.frames_written} of the 10 frames" in report.summary()
    frames, size, _ = count_frames(report.output)
    assert frames == report.frames_written and size == SIZE


def test_truncated_mp4_is_refused_before_any_output(model, tmp_path):
    clip = truncate(write_clip(tmp_path / "cut.mp4"))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="moov"):
        splash_video(model, clip, out / "x.mp4", progress=False)
    assert not out.exists() or not any(out.iterdir())
    with pytest.raises(FileNotFoundError, match="video file not found"):
        open_video(tmp_path / "missing.mp4")


def test_an_image_is_not_opened_as_a_one_frame_video(tmp_path):
    photo = tmp_path / "photo.JPG"
    cv2.imwrite(str(photo.with_suffix(".jpg")), np.zeros((8, 8, 3), np.uint8))
    photo.with_suffix(".jpg").rename(photo)
    assert cv2.VideoCapture(str(photo)).isOpened()  # what OpenCV alone would do
    with pytest.raises(ValueError, match=r"photo.JPG is an image \(.JPG\), not a video"):
        open_video(photo)


def test_writer_released_when_rendering_fails(model, tmp_path):
    clip = write_clip(tmp_path / "clip.avi", frames=6, fourcc="MJPG")
    calls = []

    def render(frame, result):
        calls.append(1)
        if len(calls) > 3:
            raise RuntimeError("render failed")
        return frame

    with pytest.raises(RuntimeError, match="render failed"), pytest.warns(UserWarning) as said:
        process_video(model, clip, tmp_path / "out.mp4", render, progress=False)
    # Issue 31: the output is atomic; the frames before the error are kept under a name that
    # says they are partial, and the warning names it.
    assert not (tmp_path / "out.mp4").exists()
    assert count_frames(tmp_path / "out.partial.mp4")[0] == 3
    assert "kept the 3 frames" in str(said[0].message) and "out.partial.mp4" in str(said[0].message)


def test_bad_splash_options_fail_before_output(model, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=2)
    with pytest.raises(ValueError, match="unknown class 'cat'"):
        splash_video(model, clip, tmp_path / "o.mp4", classes=["cat"], class_names=["BG", "a"])
    assert not (tmp_path / "o.mp4").exists()


def test_detect_and_color_splash_python_api(model, tmp_path, monkeypatch):
    from PIL import Image

    from mrcnn.splash.filter import detect_and_color_splash

    monkeypatch.chdir(tmp_path)
    photo = tmp_path / "photo.jpg"
    Image.fromarray(np.full((SIZE[1], SIZE[0], 3), 90, np.uint8)).save(photo)
    assert detect_and_color_splash(model, image_path=photo) == Path("photo_splash.png")
    assert Image.open(tmp_path / "photo_splash.png").size == SIZE
    clip = truncate(write_clip(tmp_path / "cut.avi", frames=10, fourcc="MJPG"))
    with pytest.warns(UserWarning, match="input ended early"):
        written = detect_and_color_splash(model, video_path=clip, out="videos/", progress=False)
    assert written == Path("videos/cut_splash.mp4") and written.is_file()
    with pytest.raises(ValueError, match="exactly one of image_path and video_path"):
        detect_and_color_splash(model)


# ------------------------------------------------------------------------------------------------
# The pipeline: the same frames as the sequential path; errors stop it without a hang
# ------------------------------------------------------------------------------------------------
def decode_all(path: Path) -> list[np.ndarray]:
    """Every frame of a video, RGB [H, W, 3] uint8, as cv2.VideoCapture decodes it."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while (got := capture.read())[0]:
        frames.append(cv2.cvtColor(got[1], cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def video_threads() -> list:
    import threading

    return [t for t in threading.enumerate() if t.name.startswith("video-")]


@pytest.mark.parametrize(("images_per_gpu", "frames"), [(1, 4), (2, 5)])
def test_pipelined_video_gives_the_frames_of_the_sequential_path(images_per_gpu, frames, tmp_path):
    from mrcnn.splash.filter import splash_detections

    model = tiny_model(IMAGES_PER_GPU=images_per_gpu)
    clip = write_clip(tmp_path / "clip.mp4", frames=frames)  # 5: not a multiple of 2
    # Sequential: decode every frame, detect them (IMAGES_PER_GPU at a time), splash each.
    decoded = decode_all(clip)
    results = model.detect(decoded)
    expected = [splash_detections(f, r, "gray") for f, r in zip(decoded, results, strict=True)]
    assert any(r["masks"].any() for r in results)  # frames with colour kept: a real splash
    counting = CountingModel(model)
    # FFV1 is lossless: the file decoded back holds exactly the frames the pipeline rendered.
    report = splash_video(counting, clip, tmp_path / "out.avi", fourcc="FFV1", progress=False)
    assert counting.batches == ([1] * 4 if images_per_gpu == 1 else [2, 2, 1])
    written = decode_all(report.output)
    assert report.frames_written == len(written) == frames
    for i, (got, want) in enumerate(zip(written, expected, strict=True)):
        assert np.array_equal(got, want), f"frame {i} differs from the sequential path"
    assert not video_threads()


class FailingModel:
    """A model whose ``detect`` raises on its ``fail_at``-th call (0-based)."""

    def __init__(self, model: MaskRCNN, fail_at: int, error: BaseException) -> None:
        self.model, self.config, self.calls = model, model.config, 0
        self.fail_at, self.error = fail_at, error

    def detect(self, images):
        self.calls += 1
        if self.calls - 1 == self.fail_at:
            raise self.error
        return self.model.detect(images)


@pytest.fixture
def deadline():
    """A hang becomes a failure: SIGALRM raises in the test's (main) thread after 60 s."""
    import signal

    def hung(signum, frame):
        raise TimeoutError("the video pipeline hung")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, 60.0)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def test_detect_error_stops_the_pipeline_after_writing_the_frames_before(model, tmp_path, deadline):
    clip = write_clip(tmp_path / "clip.avi", frames=10, fourcc="MJPG")
    failing = FailingModel(model, fail_at=1, error=RuntimeError("out of memory in detect"))
    with pytest.raises(RuntimeError, match="out of memory in detect"), pytest.warns(UserWarning):
        process_video(failing, clip, tmp_path / "out.avi", lambda f, r: f, progress=False)
    assert count_frames(tmp_path / "out.partial.avi")[0] == 4  # the first batch, playable
    assert not (tmp_path / "out.avi").exists()
    assert failing.calls == 2  # nothing detected after the error
    assert not video_threads()


def test_decode_error_stops_the_pipeline(model, tmp_path, deadline, monkeypatch):
    import mrcnn.splash.video

    real_open = mrcnn.splash.video.open_source

    class BreakingCapture:
        def __init__(self, capture) -> None:
            self.capture, self.reads = capture, 0

        def read(self):
            self.reads += 1
            if self.reads == 7:
                raise OSError("read error in frame 7")
            return self.capture.read()

        def release(self) -> None:
            self.capture.release()

    def open_breaking(path):
        capture, info = real_open(path)
        return BreakingCapture(capture), info

    monkeypatch.setattr(mrcnn.splash.video, "open_source", open_breaking)
    clip = write_clip(tmp_path / "clip.avi", frames=10, fourcc="MJPG")
    with pytest.raises(OSError, match="read error in frame 7"), pytest.warns(UserWarning):
        process_video(model, clip, tmp_path / "out.avi", lambda f, r: f, progress=False)
    assert count_frames(tmp_path / "out.partial.avi")[0] == 6  # decoded before the error
    assert not video_threads()


def test_encode_error_stops_the_pipeline(model, tmp_path, deadline, monkeypatch):
    import mrcnn.splash.video

    real_open_writer = mrcnn.splash.video._open_writer

    class BreakingWriter:
        def __init__(self, writer) -> None:
            self.writer, self.frames = writer, 0

        def write(self, frame) -> None:
            self.frames += 1
            if self.frames == 3:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.writer.write(frame)

        def release(self) -> None:
            self.writer.release()

    monkeypatch.setattr(
        mrcnn.splash.video, "_open_writer", lambda *a: BreakingWriter(real_open_writer(*a))
    )
    counting = CountingModel(model)
    clip = write_clip(tmp_path / "clip.avi", frames=40, fourcc="MJPG")
    with pytest.raises(OutputWriteError, match=r"cannot write .*out.avi: no space left on dev"):
        process_video(counting, clip, tmp_path / "out.avi", lambda f, r: f, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.avi"]  # nothing half-written
    assert sum(counting.batches) < 40  # detection stopped, it did not run to the end
    assert not video_threads()


@pytest.mark.serial  # it sends SIGINT to its own process: run alone, not in an xdist worker
def test_ctrl_c_stops_the_pipeline(model, tmp_path, deadline, ctrl_c_handler):
    import signal
    import threading

    class Interrupting(CountingModel):
        def detect(self, images):
            if len(self.batches) == 1:  # as a Ctrl-C during the second batch would
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            return super().detect(images)

    interrupting = Interrupting(model)
    clip = write_clip(tmp_path / "clip.avi", frames=40, fourcc="MJPG")
    kept = r"(wrote \d+ of 40 frames to .*out.partial.avi|no frame was written)"
    with pytest.raises(KeyboardInterrupt, match=kept):
        process_video(interrupting, clip, tmp_path / "out.avi", lambda f, r: f, progress=False)
    assert sum(interrupting.batches) < 40
    assert not (tmp_path / "out.avi").exists()  # only a complete output gets the name
    if (tmp_path / "out.partial.avi").exists():
        assert count_frames(tmp_path / "out.partial.avi")[0] < 40  # a playable partial output
    assert not video_threads()


def test_ctrl_c_keeps_the_frames_written_under_a_partial_name(model, tmp_path, monkeypatch):
    """Issue 31, rule 11: Ctrl-C says what was written, where and how much."""
    import mrcnn.splash.video

    def six_frames_then_ctrl_c(model, capture, render, encoder, batch_size):
        encoder(iter([cv2.cvtColor(capture.read()[1], cv2.COLOR_BGR2RGB) for _ in range(6)]))
        raise KeyboardInterrupt

    monkeypatch.setattr(mrcnn.splash.video, "_run_pipeline", six_frames_then_ctrl_c)
    clip = write_clip(tmp_path / "clip.avi", frames=15, fourcc="MJPG")
    with pytest.raises(KeyboardInterrupt) as stopped:
        process_video(model, clip, tmp_path / "out.avi", lambda f, r: f, progress=False)
    partial = tmp_path / "out.partial.avi"
    assert str(stopped.value) == (
        f"wrote 6 of 15 frames to {partial} (a partial video); {tmp_path / 'out.avi'} was not "
        "written"
    )
    assert count_frames(partial)[0] == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.avi", "out.partial.avi"]
    assert not video_threads()


def test_a_stage_error_is_one_line_from_the_cli(model, tmp_path, capsys, monkeypatch, deadline):
    from mrcnn.cli import main
    from mrcnn.commands import common

    failing = FailingModel(model, fail_at=1, error=RuntimeError("detect failed on batch 2"))
    monkeypatch.setattr(common, "build_model", lambda args: failing)
    clip = write_clip(tmp_path / "clip.mp4", frames=10)
    out = tmp_path / "out.mp4"
    args = ["--video", str(clip), "--output", str(out), "--weights", "built.pt", "--no-progress"]
    code = main(["splash", *args])
    assert code == 1
    said = capsys.readouterr().err.strip().splitlines()
    assert said[-1] == "mrcnn splash: error: detect failed on batch 2"
    assert said[:-1] == [
        f"warning: kept the 4 frames written before the error as {tmp_path / 'out.partial.mp4'}"
        " (a partial video)"
    ]
    assert not video_threads()


def test_rendering_on_several_threads_keeps_the_frames_in_order():
    """Beside a GPU frames are rendered on several threads: same frames, same order, and an
    error raised at its own frame, after every frame before it."""
    import threading

    from mrcnn.splash.video import _render_stage

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (8, 12, 3), dtype=np.uint8) for _ in range(11)]
    batches = [
        (frames[i : i + 3], [{"k": k} for k in range(i, min(i + 3, 11))]) for i in (0, 3, 6, 9)
    ]

    def render(frame, result):
        if result["k"] == 7 and result.get("fail"):
            raise ValueError("frame 7")
        time.sleep(0.01 * (result["k"] % 3 == 0))  # some frames finish after later ones
        return np.ascontiguousarray(frame[::-1]) + result["k"]

    one = list(_render_stage(render, 1)(iter(batches)))
    several = list(_render_stage(render, 3)(iter(batches)))
    assert len(several) == 11
    for got, want in zip(several, one, strict=True):
        assert np.array_equal(got, want)
    batches[2][1][1]["fail"] = True  # frame 7
    done = []
    with pytest.raises(ValueError, match="frame 7"):
        for frame in _render_stage(render, 3)(iter(batches)):
            done.append(frame)
    assert len(done) == 7
    assert not [t for t in threading.enumerate() if t.name.startswith("mrcnn-render")]


# ------------------------------------------------------------------------------------------------
# Issue 31: a video is checked before "wrote"; a full disk, no frames
# ------------------------------------------------------------------------------------------------
def _swap_for_dev_full_after(frames: int, monkeypatch) -> None:
    """From frame ``frames`` on, the file being written is /dev/full and OpenCV's writes fail
    silently, as they do on a full disk (OpenCV only logs "Failed to write frame")."""
    import mrcnn.splash.video

    real_open_writer = mrcnn.splash.video._open_writer

    class FillingDisk:
        def __init__(self, path, writer) -> None:
            self.path, self.writer, self.frames = path, writer, 0

        def write(self, frame) -> None:
            self.frames += 1
            if self.frames == frames:
                self.path.unlink()
                os.symlink("/dev/full", self.path)
            if self.frames < frames:
                self.writer.write(frame)

        def release(self) -> None:
            self.writer.release()

    def open_writer(path, info, fourcc):
        return FillingDisk(path, real_open_writer(path, info, fourcc))

    monkeypatch.setattr(mrcnn.splash.video, "_open_writer", open_writer)


def _drop_frames_after(frames: int, monkeypatch) -> None:
    """OpenCV's writer on a full disk: frames from ``frames`` on are lost without an error, and
    a write to the disk (the helper's probe) fails with ENOSPC."""
    import mrcnn.splash.video
    from mrcnn import outputs

    real_open_writer = mrcnn.splash.video._open_writer

    class LosingFrames:
        def __init__(self, writer) -> None:
            self.writer, self.frames = writer, 0

        def write(self, frame) -> None:
            self.frames += 1
            if self.frames < frames:
                self.writer.write(frame)

        def release(self) -> None:
            self.writer.release()

    monkeypatch.setattr(
        mrcnn.splash.video, "_open_writer", lambda *a: LosingFrames(real_open_writer(*a))
    )
    no_space = outputs._errno_cause(errno.ENOSPC)
    monkeypatch.setattr(outputs, "_out_of_space", lambda temporary: no_space)


def test_a_full_disk_while_encoding_is_one_line_and_leaves_nothing(
    model, tmp_path, monkeypatch, capsys
):
    """Rule 2: the file is reopened and its frames counted before "wrote"; the cause of the
    shortfall is found by the helper's probe write."""
    from mrcnn.cli import main
    from mrcnn.commands import common

    _drop_frames_after(4, monkeypatch)
    monkeypatch.setattr(common, "build_model", lambda args: model)
    clip = write_clip(tmp_path / "clip.avi", frames=10, fourcc="MJPG")
    out = tmp_path / "out.avi"
    args = ["--video", str(clip), "--output", str(out), "--weights", "built.pt", "--no-progress"]
    assert main(["splash", *args]) == 1
    assert capsys.readouterr().err.strip() == (
        f"mrcnn splash: error: cannot write {out}: no space left on device; free some space or "
        "write elsewhere"
    )
    assert names_in(tmp_path) == ["clip.avi"]


def names_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_full_disk_is_named_with_the_output_path(model, tmp_path, monkeypatch):
    """The same with the kernel's ENOSPC: the file turns into /dev/full part-way."""
    _swap_for_dev_full_after(3, monkeypatch)
    clip = write_clip(tmp_path / "clip.mp4", frames=6)
    out = tmp_path / "out.mp4"
    with pytest.raises(OutputWriteError) as raised:
        process_video(model, clip, out, lambda f, r: f, progress=False)
    assert str(raised.value) == (
        f"cannot write {out}: no space left on device; free some space or write elsewhere"
    )
    assert names_in(tmp_path) == ["clip.mp4"]


def test_frames_lost_without_a_known_cause_are_refused(model, tmp_path, monkeypatch):
    """The same check when the disk is not full: the frame count, in one line."""
    from mrcnn.splash.video import check_frames_written

    clip = write_clip(tmp_path / "clip.mp4", frames=6)
    check_frames_written(clip, 6)
    with pytest.raises(RuntimeError, match=r"clip.mp4: reopened, it holds 6 of the 7 frames"):
        check_frames_written(clip, 7)


def test_a_video_without_frames_is_refused_and_nothing_written(model, tmp_path, capsys):
    """Rule 12: an AVI with no frames opens (its header has a size); it wrote a 257-byte file."""
    from mrcnn.cli import main

    empty = write_clip(tmp_path / "empty.avi", frames=0, fourcc="MJPG")
    assert cv2.VideoCapture(str(empty)).isOpened()
    with pytest.raises(ValueError, match="has no frames"):
        splash_video(model, empty, tmp_path / "out.mp4", progress=False)
    argv = ["splash", "--video", str(empty), "--output", str(tmp_path / "o.mp4"), "--weights", "x"]
    assert main(argv) == 1
    assert "has no frames" in capsys.readouterr().err
    # past the early check (a header that lies), process_video refuses too
    with pytest.raises(ValueError, match="gave no frames"):
        process_video(model, empty, tmp_path / "p.mp4", lambda f, r: f, progress=False)
    assert names_in(tmp_path) == ["empty.avi"]
