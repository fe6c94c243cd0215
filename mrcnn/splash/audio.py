"""Audio for processed videos: put the input's sound track into the output, in sync (PyAV).

OpenCV reads and writes pictures only. :func:`add_audio` takes the silent video OpenCV wrote and
the original input and writes a file with the silent video's packets (unchanged) and the input's
first audio stream. The audio packets are copied as they are when the output container accepts
their codec; otherwise (e.g. PCM audio into .mp4) the audio is re-encoded to AAC.

Sync: OpenCV's output starts at the input's first video frame, so audio is shifted by the
input's video start time and cut at the output's video duration (a partial run of a truncated
input keeps the sound of the frames written).
"""

from __future__ import annotations

import heapq
import itertools
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

__all__ = ["AUDIO_FALLBACK_CODEC", "add_audio", "has_audio"]

#: The codec audio is re-encoded to when the output container cannot hold the input's.
AUDIO_FALLBACK_CODEC = "aac"


def has_audio(path: str | os.PathLike) -> bool:
    """Whether a media file has an audio stream PyAV can read (False when it cannot open it)."""
    import av

    try:
        with av.open(str(path)) as container:
            return bool(container.streams.audio)
    except (av.FFmpegError, OSError):
        return False


def add_audio(
    video_path: str | os.PathLike,
    audio_source: str | os.PathLike,
    output_path: str | os.PathLike,
    duration: float | None = None,
) -> str:
    """Write ``output_path``: the video of ``video_path`` with the audio of ``audio_source``.

    Args:
        video_path: the processed (silent) video; its packets are copied unchanged.
        audio_source: the original input; its first audio stream is used, shifted so that its
            first video frame's time becomes 0.
        output_path: the file to write (replaced); its extension picks the container.
        duration: cut the audio here, in seconds (default: the video's duration).
    Returns:
        what was done, e.g. "audio copied (aac)" or "audio re-encoded to aac (pcm_s16le does
        not fit in .mp4)".
    """
    import av

    video_path, output_path = Path(video_path), Path(output_path)
    with av.open(str(audio_source)) as source:
        audio = source.streams.audio[0]
        start = _video_start(source)
        codec = audio.codec_context.name
    try:
        _write(video_path, audio_source, output_path, start, duration, reencode=False)
        return f"audio copied ({codec})"
    except (av.FFmpegError, ValueError) as error:
        output_path.unlink(missing_ok=True)
        _write(video_path, audio_source, output_path, start, duration, reencode=True)
        why = f"{codec} does not fit in {output_path.suffix or 'this container'}: {error}"
        return f"audio re-encoded to {AUDIO_FALLBACK_CODEC} ({why})"


def _video_start(container) -> float:
    """Seconds at which the container's first video stream starts (0 when unknown)."""
    if not container.streams.video:
        return 0.0
    stream = container.streams.video[0]
    if stream.start_time is None or not stream.time_base:
        return 0.0
    return float(stream.start_time * stream.time_base)


def _write(
    video_path: Path,
    audio_source,
    output_path: Path,
    start: float,
    duration: float | None,
    reencode: bool,
) -> None:
    import av

    with (
        av.open(str(video_path)) as video_in,
        av.open(str(audio_source)) as audio_in,
        av.open(str(output_path), "w") as output,
    ):
        video = video_in.streams.video[0]
        audio = audio_in.streams.audio[0]
        if duration is None:
            duration = _duration(video_in, video)
        video_out = output.add_stream_from_template(video)
        if reencode:
            rate = audio.codec_context.sample_rate
            audio_out = output.add_stream(AUDIO_FALLBACK_CODEC, rate=rate)
            audio_out.layout = audio.codec_context.layout
            packets = _encoded(audio_in, audio, audio_out, start, duration)
        else:
            if audio.codec_context.name not in output.supported_codecs:
                raise ValueError("the container does not list the codec")
            audio_out = output.add_stream_from_template(audio)
            packets = _copied(audio_in, audio, audio_out, start, duration)
        streams = [_copied(video_in, video, video_out, 0.0, None), packets]
        # By time, so that the muxer need not buffer one stream while the other is written.
        for _, _, packet in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
            output.mux(packet)


def _duration(container, stream) -> float:
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return float("inf")


_order = itertools.count()  # ties in time keep their order


def _copied(container, stream, out_stream, start: float, end: float | None) -> Iterator[tuple]:
    """(time, order, packet) of a stream's packets, retimed by ``-start`` and cut at ``end``."""
    base = stream.time_base
    shift = round(Fraction(start).limit_denominator(1_000_000) / base) if start else 0
    for packet in container.demux(stream):
        if packet.dts is None and packet.pts is None:
            continue  # the demuxer's end-of-stream flush packet
        pts = packet.pts if packet.pts is not None else packet.dts
        if shift and pts - shift + (packet.duration or 0) <= 0:
            continue  # sound before the first picture (unshifted packets all stay: priming)
        if end is not None and (pts - shift) * base >= end:
            break
        if shift:
            packet.pts = None if packet.pts is None else packet.pts - shift
            packet.dts = None if packet.dts is None else packet.dts - shift
        packet.stream = out_stream
        order = packet.dts if packet.dts is not None else packet.pts  # muxers want dts order
        yield float(order * base), next(_order), packet


def _encoded(container, stream, out_stream, start: float, end: float) -> Iterator[tuple]:
    """(time, order, packet) of the stream re-encoded, retimed by ``-start``, cut at ``end``."""
    rate = stream.codec_context.sample_rate
    samples = 0
    for frame in container.decode(stream):
        if frame.time is None:
            continue
        time = frame.time - start
        if time + frame.samples / frame.sample_rate <= 0:
            continue
        if time >= end:
            break
        # Numbered by samples from 0, so that the encoder's priming gets a negative time that
        # the muxer trims (an edit list) instead of delaying the sound.
        frame.pts, frame.time_base = samples, Fraction(1, rate)
        samples += frame.samples
        for packet in out_stream.encode(frame):
            yield _packet_time(packet), next(_order), packet
    for packet in out_stream.encode(None):
        yield _packet_time(packet), next(_order), packet


def _packet_time(packet) -> float:
    return float(packet.pts * packet.time_base) if packet.pts is not None else 0.0
