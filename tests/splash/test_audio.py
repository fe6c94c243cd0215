"""Sound kept by the video splash: copied unchanged, re-encoded when the container needs it, in
sync, and never at the cost of the pictures."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from mrcnn.model import MaskRCNN
from mrcnn.splash.filter import splash_video
from tests.helpers.tiny_model import tiny_model

FPS, FRAMES, RATE, TONE = 12, 12, 16000, 440.0
FRAME = 1 / FPS


@pytest.fixture(scope="module")
def model() -> MaskRCNN:
    return tiny_model()


class NothingFound:
    """A model that detects nothing: the sound tests need no detections, only frames."""

    config = type("Config", (), {"IMAGES_PER_GPU": 4})()

    def detect(self, images):
        empty = np.zeros((0,), np.float32)
        return [
            {
                "rois": np.zeros((0, 4), np.int32),
                "class_ids": empty.astype(np.int32),
                "scores": empty,
                "masks": np.zeros((*image.shape[:2], 0), bool),
            }
            for image in images
        ]


def make_clip(
    path: Path,
    audio_codec: str = "aac",
    video_start: int = 0,
    beep_from: float = 0.0,
    audio_tail: float = 0.0,
) -> Path:
    """FRAMES frames of 96 x 64 at FPS, the first at ``video_start`` frames, and a mono track
    from 0 to ``audio_tail`` seconds after the last frame's end: silence, then a TONE Hz beep
    from ``beep_from`` seconds."""
    mjpeg = path.suffix == ".avi"  # AVI with MJPEG still decodes when cut short
    with av.open(str(path), "w") as out:
        video = out.add_stream("mjpeg" if mjpeg else "mpeg4", rate=FPS)
        video.width, video.height = 96, 64
        video.pix_fmt = "yuvj420p" if mjpeg else "yuv420p"
        audio = out.add_stream(audio_codec, rate=RATE)
        audio.layout = "mono"
        for i in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(np.full((64, 96, 3), 8 * i, np.uint8), "rgb24")
            frame.pts, frame.time_base = video_start + i, Fraction(1, FPS)
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        seconds = (video_start + FRAMES) / FPS + audio_tail
        t = np.arange(int(seconds * RATE)) / RATE
        wave = np.where(t >= beep_from, 0.4 * np.sin(2 * np.pi * TONE * t), 0.0)
        for start in range(0, len(t), 1024):
            block = (wave[start : start + 1024] * 32767).astype(np.int16)[None]
            frame = av.AudioFrame.from_ndarray(block, format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = RATE, start, Fraction(1, RATE)
            for packet in audio.encode(frame):
                out.mux(packet)
        for packet in audio.encode(None):
            out.mux(packet)
    return path


def decoded_audio(path: Path) -> tuple[np.ndarray, int, str]:
    """(mono float samples, sample rate, codec name) of a file's first audio stream."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        blocks = [f.to_ndarray().reshape(f.samples, -1)[:, 0] for f in container.decode(stream)]
        samples = np.concatenate(blocks).astype(np.float64)
        if np.abs(samples).max() > 2:  # integer samples
            samples /= 32768
        return samples, stream.codec_context.sample_rate, stream.codec_context.name


def video_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0)) / FPS


def loudest_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


def test_tone_is_copied_unchanged_with_the_same_duration(model, tmp_path):
    clip = make_clip(tmp_path / "tone.mp4")
    report = splash_video(model, clip, tmp_path / "out.mp4", progress=False)
    assert report.audio == "audio copied (aac)" and "audio copied" in report.summary()
    assert report.frames_written == FRAMES and video_seconds(report.output) == FRAMES / FPS
    samples, rate, codec = decoded_audio(report.output)
    source, _, _ = decoded_audio(clip)
    assert codec == "aac" and rate == RATE
    # The same duration (AAC pads to whole 1024-sample frames) and the same sound.
    assert abs(len(samples) / rate - FRAMES / FPS) <= FRAME
    assert len(samples) == len(source) and np.allclose(samples, source, atol=1e-6)
    assert abs(loudest_frequency(samples, rate) - TONE) < 2
    with av.open(str(clip)) as a, av.open(str(report.output)) as b:
        first_in = [bytes(p) for p in a.demux(audio=0) if p.size][:5]
        first_out = [bytes(p) for p in b.demux(audio=0) if p.size][:5]
    assert first_in == first_out  # remuxed packets, not a re-encode
    assert not list(tmp_path.glob(".*"))  # the temporary frames file is gone


def test_codec_the_container_cannot_hold_is_reencoded_to_aac(tmp_path):
    clip = make_clip(tmp_path / "mulaw.mov", audio_codec="pcm_mulaw", audio_tail=0.5)
    report = splash_video(NothingFound(), clip, tmp_path / "out.mp4", progress=False)
    assert report.audio.startswith("audio re-encoded to aac (pcm_mulaw does not fit in .mp4")
    samples, rate, codec = decoded_audio(report.output)
    assert codec == "aac" and abs(len(samples) / rate - FRAMES / FPS) <= FRAME
    assert abs(loudest_frequency(samples, rate) - TONE) < 2


def test_audio_stays_in_sync_when_the_video_starts_late(tmp_path):
    # The pictures start at 0.5 s, the beep at 1.0 s: in the output the beep starts at 0.5 s.
    # The sound goes on 0.5 s after the last picture: the output's ends with the pictures.
    clip = make_clip(tmp_path / "late.mp4", video_start=6, beep_from=1.0, audio_tail=0.5)
    report = splash_video(NothingFound(), clip, tmp_path / "out.mp4", progress=False)
    samples, rate, _ = decoded_audio(report.output)
    assert abs(len(samples) / rate - FRAMES / FPS) <= FRAME
    onset = np.flatnonzero(np.abs(samples) > 0.2)[0] / rate
    assert abs(onset - 0.5) <= FRAME / 2


def test_truncated_input_keeps_the_sound_of_the_frames_written(tmp_path):
    clip = make_clip(tmp_path / "cut.avi", audio_codec="pcm_s16le")
    clip.write_bytes(clip.read_bytes()[: int(clip.stat().st_size * 0.6)])
    report = splash_video(NothingFound(), clip, tmp_path / "out.mp4", progress=False)
    assert not report.complete and 0 < report.frames_written < FRAMES
    samples, rate, _ = decoded_audio(report.output)
    assert abs(len(samples) / rate - report.frames_written / FPS) <= FRAME


def test_failed_run_keeps_the_sound_of_the_frames_written(tmp_path):
    from mrcnn.splash.video import process_video

    clip = make_clip(tmp_path / "tone.mp4")
    rendered = []

    def render(frame, result):
        if len(rendered) == 4:
            raise RuntimeError("render failed")
        rendered.append(1)
        return frame

    with pytest.raises(RuntimeError, match="render failed"), pytest.warns(UserWarning):
        process_video(NothingFound(), clip, tmp_path / "out.mp4", render, progress=False)
    assert not (tmp_path / "out.mp4").exists()  # issue 31: kept under a name saying "partial"
    assert video_seconds(tmp_path / "out.partial.mp4") == 4 / FPS
    samples, rate, _ = decoded_audio(tmp_path / "out.partial.mp4")
    assert abs(len(samples) / rate - 4 / FPS) <= FRAME
    assert not list(tmp_path.glob(".*"))


def test_pictures_kept_when_the_sound_cannot_be_written(tmp_path, monkeypatch):
    import mrcnn.splash.audio

    def broken(*args, **kwargs):
        raise RuntimeError("no muxer today")

    monkeypatch.setattr(mrcnn.splash.audio, "add_audio", broken)
    clip = make_clip(tmp_path / "tone.mp4")
    with pytest.warns(UserWarning, match="audio not copied \\(RuntimeError: no muxer today\\)"):
        report = splash_video(NothingFound(), clip, tmp_path / "out.mp4", progress=False)
    assert video_seconds(report.output) == FRAMES / FPS
    with av.open(str(report.output)) as container:
        assert not container.streams.audio
    assert not list(tmp_path.glob(".*"))


def test_audio_can_be_left_out(tmp_path):
    clip = make_clip(tmp_path / "tone.mp4")
    report = splash_video(NothingFound(), clip, tmp_path / "out.mp4", progress=False, audio=False)
    assert report.audio == ""
    with av.open(str(report.output)) as container:
        assert not container.streams.audio and container.streams.video
