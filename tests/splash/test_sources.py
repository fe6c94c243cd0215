"""Video sources: files, cameras and streams (a clip served over local HTTP, a named pipe)."""

from __future__ import annotations

import functools

import cv2
import pytest

from mrcnn.splash.sources import (
    FALLBACK_FPS,
    VideoInfo,
    decoded_batches,
    frame_limit,
    open_source,
    parse_source,
    require_frames,
)
from tests.helpers.video_sources import closed_port, fed_pipe, served, write_clip


@pytest.mark.parametrize(
    ("spec", "kind", "target", "label"),
    [
        ("0", "camera", 0, "camera0"),
        (2, "camera", 2, "camera2"),
        (
            "rtsp://user:pw@Cam.local:8554/live",
            "stream",
            "rtsp://user:pw@Cam.local:8554/live",
            "cam.local",
        ),  # fmt: skip
        ("http://127.0.0.1:8000/clip.mp4", "stream", "http://127.0.0.1:8000/clip.mp4", "127.0.0.1"),
        ("udp://@:1234", "stream", "udp://@:1234", "udp"),
        ("clips/a.mp4", "file", "clips/a.mp4", "a.mp4"),
        ("./0", "file", "./0", "0"),
    ],
)
def test_a_source_is_a_camera_a_stream_or_a_file(spec, kind, target, label):
    source = parse_source(spec)
    assert (source.kind, source.target, source.label) == (kind, target, label)
    assert source.live == (kind != "file")


def test_a_clip_served_over_http_is_read_as_a_live_stream(tmp_path):
    write_clip(tmp_path / "clip.mp4", frames=20, size=(96, 64), fps=10.0)
    with served(tmp_path) as base:
        url = f"{base}/clip.mp4"
        capture, info = open_source(url)
        try:
            frames = 0
            while capture.read()[0]:
                frames += 1
        finally:
            capture.release()
        assert require_frames(url) == info
    assert info == VideoInfo(96, 64, 10.0, -1, live=True, label="127.0.0.1")
    assert frames == 20


def test_a_named_pipe_is_read_as_a_live_stream(tmp_path):
    data = write_clip(tmp_path / "clip.avi", frames=12).read_bytes()
    with fed_pipe(tmp_path / "feed", data) as pipe:
        assert parse_source(pipe).kind == "stream"
        capture, info = open_source(pipe)
        try:
            batches = list(decoded_batches(capture, 5))
        finally:
            capture.release()
    assert [len(b) for b in batches] == [5, 5, 2]
    assert info.live and info.frame_count == -1 and info.label == "feed"


def test_an_unreachable_stream_is_one_line(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/clip.mp4"
    with pytest.raises(
        ValueError, match=r"^cannot open stream http://127\.0\.0\.1:\d+/clip.mp4: "
    ) as e:
        open_source(url)
    assert "\n" not in str(e.value) and "check the URL" in str(e.value)


def test_a_camera_index_without_a_camera_is_one_line(capfd):
    with pytest.raises(ValueError) as raised:
        open_source("99")
    assert str(raised.value).startswith("cannot open camera 99: OpenCV found no camera there")
    assert "\n" not in str(raised.value)
    assert capfd.readouterr().err == ""  # OpenCV's own warnings are kept quiet


def test_a_file_opens_with_its_frame_count(tmp_path):
    clip = write_clip(tmp_path / "clip.avi", frames=7, fps=12.0)
    capture, info = open_source(str(clip))
    capture.release()
    assert info == VideoInfo(96, 64, 12.0, 7, live=False, label="clip.avi")
    with pytest.raises(FileNotFoundError, match="video file not found"):
        open_source(tmp_path / "missing.mp4")


def test_frame_limits_count_frames_of_input_time():
    info = VideoInfo(96, 64, 10.0, -1)
    assert frame_limit(info) is None
    assert frame_limit(info, max_frames=7) == 7
    assert frame_limit(info, duration=1.5) == 15  # frames at 0.0, 0.1, ..., 1.4 s
    assert frame_limit(info, duration=1.55) == 16  # ... and 1.5 s
    assert frame_limit(info, duration=0.01) == 1
    assert frame_limit(info, max_frames=12, duration=2.0) == 12
    guessed = VideoInfo(96, 64, FALLBACK_FPS, -1, fps_guessed=True)
    assert frame_limit(guessed, duration=1.0) == 30
    with pytest.raises(ValueError, match="max_frames=0: give at least 1 frame"):
        frame_limit(info, max_frames=0)
    with pytest.raises(ValueError, match="duration=-1: give seconds of input above 0"):
        frame_limit(info, duration=-1)


def test_decoded_batches_stop_at_the_limit_and_say_so(tmp_path):
    clip = write_clip(tmp_path / "clip.avi", frames=10)
    for limit, sizes, reached in [
        (7, [3, 3, 1], True),
        (10, [3, 3, 3, 1], True),
        (20, None, False),
    ]:
        capture = cv2.VideoCapture(str(clip))
        said = []
        batches = list(decoded_batches(capture, 3, limit, functools.partial(said.append, 1)))
        capture.release()
        assert [len(b) for b in batches] == (sizes or [3, 3, 3, 1])
        assert bool(said) == reached
