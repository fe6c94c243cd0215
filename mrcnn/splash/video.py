"""Video through the model: read frames with OpenCV, detect in batches, write them back.

:func:`process_video` reads a video file, a camera or a stream (:mod:`mrcnn.splash.sources`)
with ``cv2.VideoCapture``, runs ``model.detect`` (or a frame analyser, such as
:class:`mrcnn.tracking.analysis.Tracked`) on ``config.IMAGES_PER_GPU`` frames at a time, renders
each frame with a callback and writes it with ``cv2.VideoWriter`` at the input's size and frame
rate. It knows nothing of what is drawn: :func:`mrcnn.splash.filter.splash_video` is it with the
color splash filter.

Frames go into the network with the least padding (:mod:`mrcnn.splash.network_input`: under
"square", a 640 x 360 frame is 1024 x 576, not 1024 x 1024) unless ``network_input="config"``.

The four steps overlap, as a :class:`mrcnn.splash.pipeline.Pipeline`: a thread decodes frames into
batches of ``IMAGES_PER_GPU``, the calling thread runs ``detect`` on each batch (so that the
caller's torch settings apply), a thread renders the frames (four beside a GPU, in order) and
one encodes them. Torch, OpenCV and numpy release the GIL in their heavy work, so a video runs
at the speed of detection alone; a few batches wait between two steps at most, so memory stays
bounded. The output is written through :func:`mrcnn.outputs.atomic_output`: it appears only
when complete. An error in any step stops every thread and is raised by :func:`process_video`,
and Ctrl-C stops every thread at once; either way the frames written so far are kept, playable,
as ``<stem>.partial<suffix>`` (named by a warning, or by the interrupt's message). Before the
output is renamed into place it is reopened and its frame count checked (OpenCV's writer does
not report failed writes, such as on a full disk). An input that ends before the frame count
its header announces (a truncated or corrupt file) stops the run cleanly: the frames read are
written and the report says how many.

A run may stop early, complete with the frames read: at ``max_frames`` or ``duration``, or when
the preview is closed. A live source (camera, stream) has no end of its own: there Ctrl-C is the
usual stop, and the frames written become the output itself (no ``.partial``, no exception).

OpenCV reads and writes pictures only. When the input has a sound track, the frames go to a
temporary file beside the output, and :func:`mrcnn.splash.audio.add_audio` then writes the
output from it and the input's audio (copied unchanged, or re-encoded to AAC when the output
container cannot hold the codec), in sync and cut to the frames written.
"""

from __future__ import annotations

import os
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from mrcnn.outputs import (
    atomic_output,
    keep_partial,
    temporary_beside,
    write_failure,
)
from mrcnn.splash import audio as sound_track
from mrcnn.splash.network_input import (
    NETWORK_INPUTS,
    network_input_note,
    resize_mode,
    video_resize_mode,
)
from mrcnn.splash.pipeline import Pipeline, Stage
from mrcnn.splash.preview import Preview
from mrcnn.splash.sources import (
    FALLBACK_FPS,
    VideoInfo,
    decoded_batches,
    frame_limit,
    open_source,
    open_video,
    require_frames,
)

__all__ = [
    "FALLBACK_FPS",
    "FOURCC_BY_SUFFIX",
    "NETWORK_INPUTS",
    "VideoInfo",
    "VideoReport",
    "check_frames_written",
    "open_video",
    "process_video",
    "require_frames",
]

#: Codec used for each output extension; others get "mp4v".
FOURCC_BY_SUFFIX = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG"}
#: Batches waiting between two stages of the pipeline (frames: this times the batch size).
QUEUED_BATCHES = 2
#: Batches waiting between detection and rendering: one, as their full-size masks are big
#: (bool [H, W, N] per frame: 90 MB for 100 instances in a 1280 x 720 frame).
QUEUED_DETECTIONS = 1
THREAD_NAMES = ("video-decode", "video-detect", "video-render", "video-encode")

#: (frame RGB [H, W, 3] uint8, detect result) -> rendered frame RGB [H, W, 3] uint8
RenderFn = Callable[[np.ndarray, dict], np.ndarray]


@dataclass
class VideoReport:
    """The outcome of :func:`process_video`.

    ``complete`` is False when fewer frames could be read than the input announced (truncated
    or corrupt input); ``frames_written`` frames are in the playable ``output`` either way.
    """

    output: Path
    info: VideoInfo
    frames_written: int
    seconds: float
    #: What happened to the input's sound: "" (none), "audio copied (aac)", ...
    audio: str = ""
    #: Why the run stopped before its input ended: "" (it did not), "stopped at the limit of
    #: 30 frames", "stopped by Ctrl-C", "stopped: the preview window was closed".
    stop: str = ""

    @property
    def complete(self) -> bool:
        count = self.info.frame_count
        return bool(self.stop) or count <= 0 or self.frames_written >= count

    @property
    def frames_per_second(self) -> float:
        return self.frames_written / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        audio = "".join(f"; {note}" for note in (self.stop, self.audio) if note)
        if self.complete:
            guessed = " (the source gave none)" if self.info.fps_guessed else ""
            return (
                f"wrote {self.output}: {self.frames_written} frames, {self.info.width}x"
                f"{self.info.height} at {self.info.fps:g} fps{guessed} "
                f"({self.frames_per_second:.1f} frames/s processed){audio}"
            )
        return (
            f"input ended early: only {self.frames_written} of the {self.info.frame_count} "
            f"frames announced could be decoded (truncated or corrupt file?); wrote those "
            f"{self.frames_written} frames to {self.output}, a playable partial video{audio}"
        )


def _open_writer(path: Path, info: VideoInfo, fourcc: str | None) -> cv2.VideoWriter:
    code = fourcc or FOURCC_BY_SUFFIX.get(path.suffix.lower(), "mp4v")
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter_fourcc(*code), info.fps, (info.width, info.height)
    )
    if not writer.isOpened():
        writer.release()
        raise RuntimeError(
            f"cannot write video {path} with codec {code!r}: OpenCV has no encoder for it; "
            "use an .mp4 (mp4v) or .avi (MJPG) output"
        )
    return writer


def _detect_stage(
    detect: Callable[[list[np.ndarray]], list[dict]],
    preview: Preview | None = None,
    on_close: Callable[[], None] | None = None,
) -> Stage:
    """Batches of RGB frames -> (batch, its results), one ``detect`` call per batch (a model's
    ``detect`` or a frame analyser). With a ``preview``, its window is refreshed before each
    batch, on this stage's thread (the calling one); closing it ends the run (``on_close()``)."""

    def run(batches: Iterator[list[np.ndarray]]) -> Iterator[tuple[list, list[dict]]]:
        for batch in batches:
            if preview is not None and not preview.refresh():
                if on_close is not None:
                    on_close()
                return
            yield batch, detect(batch)

    return run


#: Frames rendered at once when detection runs on a GPU: one thread renders a 1280 x 720 splash
#: at about 33 frames/s, slower than detection there (measured on an H100 machine).
RENDER_THREADS_BESIDE_GPU = 4


def _render_stage(render: RenderFn, threads: int = 1) -> Stage:
    """(batch, results) -> rendered BGR frames [H, W, 3] uint8 for the writer, in order, one at
    a time (so that the frames rendered before a failing one are still written). With several
    ``threads``, up to twice that many frames are rendered ahead."""

    def render_bgr(frame: np.ndarray, result: dict) -> np.ndarray:
        return cv2.cvtColor(render(frame, result), cv2.COLOR_RGB2BGR)

    def render_frames(detected: Iterator[tuple[list, list[dict]]]) -> Iterator[np.ndarray]:
        pairs = (pair for batch, results in detected for pair in zip(batch, results, strict=True))
        if threads == 1:
            for frame, result in pairs:
                yield render_bgr(frame, result)
            return
        with ThreadPoolExecutor(threads, thread_name_prefix="mrcnn-render") as pool:
            pending: deque[Future] = deque()
            for frame, result in pairs:
                pending.append(pool.submit(render_bgr, frame, result))
                if len(pending) >= 2 * threads:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    return render_frames


class _Encoder:
    """The last stage: writes BGR frames [H, W, 3] uint8, counts them on the progress bar and
    offers each to the preview, if any."""

    def __init__(self, writer: cv2.VideoWriter, bar, preview: Preview | None = None) -> None:
        self.writer, self.bar, self.frames_written = writer, bar, 0
        self.preview = preview

    def __call__(self, frames: Iterator[np.ndarray]) -> tuple:
        for frame in frames:
            self.writer.write(frame)
            self.frames_written += 1
            self.bar.update(1)
            if self.preview is not None:
                self.preview.offer(frame)
        return ()


def process_video(
    model,
    input_path: str | int | os.PathLike,
    output_path: str | os.PathLike,
    render: RenderFn,
    *,
    fourcc: str | None = None,
    batch_size: int | None = None,
    progress: bool = True,
    audio: bool = True,
    analyser=None,
    max_frames: int | None = None,
    duration: float | None = None,
    network_input: str = "tight",
    preview: Preview | None = None,
    say: Callable[[str], object] | None = None,
) -> VideoReport:
    """Detect in every frame of a video and write the rendered frames (and the input's sound).

    Args:
        model: has ``detect(list of [H, W, 3] uint8 RGB) -> list of dicts`` and ``config``
            (IMAGES_PER_GPU, the IMAGE_* resize settings).
        input_path: a video file, camera or stream URL (:func:`mrcnn.splash.sources.open_source`).
        output_path: the file to write (replaced if it exists, atomically, never the input);
            same size and frame rate as the input.
        render: (frame [H, W, 3] uint8 RGB, its detect result) -> [H, W, 3] uint8 RGB.
        fourcc: codec; default by extension (FOURCC_BY_SUFFIX: .mp4 mp4v, .avi MJPG).
        batch_size: frames per ``detect`` call (default ``config.IMAGES_PER_GPU``).
        progress: a tqdm bar with frames/s.
        audio: copy a file's sound track into the output (:mod:`mrcnn.splash.audio`).
        analyser: a frame analyser (:class:`mrcnn.tracking.analysis.FrameAnalyser`), called
            instead of ``model.detect`` on the calling thread, in frame order, after ``reset()``.
        max_frames, duration: read at most this many frames, seconds of input (index / fps).
        network_input: "tight" (default) or "config" (:mod:`mrcnn.splash.network_input`).
        preview: a :class:`mrcnn.splash.preview.Preview` shown the frames written; closing it
            ends the run like ``max_frames``.
        say: called with one line on the network input once the source is open (``print``).
    Returns:
        a :class:`VideoReport`; ``report.complete`` is False for an input that ended early.
    Raises:
        ValueError: no frame could be decoded (nothing is written), or a bad limit.
        RuntimeError: the file written does not hold the frames written (the encoder failed);
            :class:`mrcnn.outputs.OutputWriteError` when that was a full disk.
        KeyboardInterrupt: (a file) its message says how many frames were kept, and under
            which name. A live source stopped by Ctrl-C returns its report instead.
    """
    mode = video_resize_mode(model.config, network_input)  # a bad value fails before opening
    capture, info = open_source(input_path)
    try:
        job = _VideoJob(model, input_path, Path(output_path), info, render, fourcc)
        job.analyser, job.preview = analyser, preview
        job.limit = frame_limit(info, max_frames, duration)
        job.sound = audio and not info.live and sound_track.has_audio(input_path)
        job.batch_size = int(batch_size or model.config.IMAGES_PER_GPU)
        if say is not None:
            say(network_input_note(model.config, info, network_input))
        with resize_mode(model.config, mode):
            return job.run(capture, progress)
    finally:
        capture.release()


@dataclass
class _VideoJob:
    """One run of :func:`process_video`: what it reads, renders and writes."""

    model: object
    input_path: str | int | os.PathLike
    output_path: Path
    info: VideoInfo
    render: RenderFn
    fourcc: str | None
    analyser: object = None
    preview: Preview | None = None
    sound: bool = False
    batch_size: int = 1
    limit: int | None = None
    #: Why the run stopped before its input ended (:attr:`VideoReport.stop`).
    stop: str = ""

    def run(self, capture, progress: bool) -> VideoReport:
        """Read ``capture`` to its end (or the limit), write the output, report."""
        started = time.perf_counter()
        known = [n for n in (self.info.frame_count, self.limit or 0) if n > 0]
        total = min(known, default=None)
        bar = tqdm(total=total, unit="frame", desc=self.info.label, disable=not progress)
        inputs = [] if self.info.live else [self.input_path]
        try:
            with atomic_output(self.output_path, inputs) as temporary:
                if self.analyser is not None:
                    self.analyser.reset()
                written, audio_note = self.write(capture, temporary, bar)
        finally:
            bar.close()
        seconds = time.perf_counter() - started
        return VideoReport(self.output_path, self.info, written, seconds, audio_note, self.stop)

    def detect(self, frames: list[np.ndarray]) -> list[dict]:
        """The analyser's or the model's results for ``frames``."""
        if self.analyser is not None:
            return self.analyser(frames)
        return self.model.detect(frames)

    def stopped(self, why: str) -> Callable[[], None]:
        """A callback that records ``why`` as the reason the run stopped early."""

        def record() -> None:
            self.stop = why

        return record

    def write(self, capture, temporary: Path, bar) -> tuple[int, str]:
        """Write the frames (with sound: to a scratch file, then muxed) into ``temporary``,
        checked; return (frames written, audio note)."""
        frames_path = temporary_beside(self.output_path, "frames") if self.sound else temporary
        try:
            written = self._encode(capture, frames_path, bar)
            if written == 0:
                raise ValueError(
                    f"video {self.input_path} gave no frames (none could be decoded); nothing "
                    "was written"
                )
            check_frames_written(frames_path, written, self.output_path)
            if not self.sound:
                return written, ""
            duration = written / self.info.fps
            note = _join_audio(frames_path, self.input_path, temporary, duration, self.output_path)
            check_frames_written(temporary, written, self.output_path)
            return written, note
        finally:
            if self.sound:
                frames_path.unlink(missing_ok=True)

    def _encode(self, capture, frames_path: Path, bar) -> int:
        writer = _open_writer(frames_path, self.info, self.fourcc)
        encoder = _Encoder(writer, bar, self.preview)
        try:
            _run_pipeline(self, capture, self.render, encoder, self.batch_size)
        except KeyboardInterrupt:
            encoder.writer.release()  # a playable file of the frames so far
            if self.info.live and encoder.frames_written:  # the usual end of a live source
                self.stop = "stopped by Ctrl-C"
                return encoder.frames_written
            raise self._interrupted(frames_path, encoder.frames_written) from None
        except Exception as error:
            encoder.writer.release()
            if encoder.frames_written and not write_failure(error):  # else unplayable
                partial = self._keep_partial(frames_path, encoder.frames_written)
                warnings.warn(
                    f"kept the {encoder.frames_written} frames written before the error as "
                    f"{partial} (a partial video)",
                    UserWarning,
                    stacklevel=2,
                )
            raise
        finally:
            encoder.writer.release()
        return encoder.frames_written

    def _interrupted(self, frames_path: Path, written: int) -> KeyboardInterrupt:
        """Keep the frames written under a ``.partial`` name and say so."""
        if written == 0:
            return KeyboardInterrupt(f"no frame was written; {self.output_path} was not made")
        partial = self._keep_partial(frames_path, written)
        count = self.info.frame_count
        of = f" of {count}" if count > 0 else ""
        return KeyboardInterrupt(
            f"wrote {written}{of} frames to {partial} (a partial video); "
            f"{self.output_path} was not written"
        )

    def _keep_partial(self, frames_path: Path, written: int) -> Path:
        """The frames written (with their stretch of the input's sound) as a ``.partial``
        video beside the output."""
        if self.sound:
            muxed = temporary_beside(self.output_path, "partial")
            duration = written / self.info.fps
            _join_audio(frames_path, self.input_path, muxed, duration, self.output_path)
            frames_path = muxed
        return keep_partial(frames_path, self.output_path)


def check_frames_written(path: Path, expected: int, name: Path | None = None) -> None:
    """Reopen the video ``path`` and check it holds ``expected`` frames.

    Raises:
        RuntimeError: naming ``name`` (default ``path``) and the frames found.
    """
    capture = cv2.VideoCapture(str(path))
    try:
        found = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
        if capture.isOpened() and found != expected:  # some containers only estimate it
            found = 0
            while found <= expected and capture.grab():
                found += 1
    finally:
        capture.release()
    if found != expected:
        raise RuntimeError(
            f"cannot write {name or path}: reopened, it holds {found} of the {expected} frames "
            "written (OpenCV's encoder failed); nothing was kept"
        )


def _run_pipeline(
    job: _VideoJob, capture, render: RenderFn, encoder: _Encoder, batch_size: int
) -> None:
    """Decode, detect, render and encode every frame of ``capture`` (see the module doc), up to
    the job's frame limit."""
    on_cpu = getattr(getattr(job.model, "device", None), "type", "cpu") == "cpu"
    threads = 1 if on_cpu else RENDER_THREADS_BESIDE_GPU
    closed = job.stopped("stopped: the preview window was closed")
    detect = _detect_stage(job.detect, job.preview, closed)
    stages = [detect, _render_stage(render, threads), encoder]
    sizes = [QUEUED_BATCHES, QUEUED_DETECTIONS, QUEUED_BATCHES * batch_size]
    limited = job.stopped(f"stopped at the limit of {job.limit} frames")
    source = decoded_batches(capture, batch_size, job.limit, limited)
    # Detection on this thread (the caller's torch settings apply); the rest on threads of
    # their own, all ended when run() returns or raises. On the CPU those threads take only
    # the time detection leaves idle (competing, they stall torch's threads).
    Pipeline(source, stages, sizes, THREAD_NAMES, 0, background=on_cpu).run()


def _join_audio(
    frames_path: Path, input_path, output_path: Path, duration: float, name: Path
) -> str:
    """Write ``output_path`` from the frames file and the input's audio; the frames file is
    removed. If muxing fails, the silent frames file becomes the output, with a warning that
    names the output as ``name``."""
    try:
        return sound_track.add_audio(frames_path, input_path, output_path, duration)
    except Exception as error:  # the pictures must not be lost over the sound
        note = f"audio not copied ({type(error).__name__}: {error})"
        warnings.warn(f"{name}: {note}", UserWarning, stacklevel=3)
        os.replace(frames_path, output_path)
        return note
    finally:
        frames_path.unlink(missing_ok=True)
