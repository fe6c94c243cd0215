"""A stream through stages on threads joined by bounded queues, so that the stages overlap.

:meth:`Pipeline.run` feeds a source iterable through a chain of stages, each on its own thread,
except one that may run on the calling thread. The video splash uses it to decode, detect,
render and encode at once, so that it runs at the speed of its slowest stage (detection) rather
than the sum of all; detection stays on the calling thread, where the caller's torch settings
(thread-local: device and autocast contexts, grad mode, the OpenMP team) apply and where Ctrl-C
arrives. It is worth it because the heavy work of every stage (torch kernels, OpenCV, numpy,
FFmpeg) releases the GIL.

- **Priority.** With ``background=True`` the stage threads run at the operating system's idle
  priority (Linux ``SCHED_IDLE``; elsewhere unchanged): they take only CPU time the calling
  thread's stage leaves free. Detection on the CPU keeps every core busy with torch's thread
  team, and threads competing with that team stall it (a pre-empted team member holds up the
  whole parallel region), so on the CPU the other stages should fill the gaps, not compete.
- **Bounded memory.** Each queue holds at most its ``size`` items; a stage that is ahead waits.
- **Order.** One thread per stage and FIFO queues: items go through in the order they came.
- **Errors.** A stage that raises an ``Exception`` stops reading its input, so the stages before
  it stop too; the items it produced before the error still go through the stages after it, and
  ``run`` then raises that error (the first, when several stages fail). KeyboardInterrupt (Ctrl-C)
  or SystemExit stops every stage at once and is raised. ``run`` returns or raises only when
  every thread has ended: none is left behind.

A stage is a function from an iterator of input items to an iterable of output items, usually a
generator, so it may batch, split or drop items. The last stage is the sink: what it yields is
dropped::

    def detect(batches):
        for batch in batches:
            yield batch, model.detect(batch)

    def write(frames):
        for frame in frames:
            writer.write(frame)
        return ()

    Pipeline(decode(capture), [detect, render, write], sizes=[2, 2, 8], caller=0).run()
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

__all__ = ["Pipeline", "Stage"]

#: items -> items; runs on its own thread (or the caller's).
Stage = Callable[[Iterator[Any]], Iterable[Any]]

#: How often a thread waiting on a queue checks whether the pipeline was stopped, seconds.
POLL_SECONDS = 0.05

_END = object()  # put after a stage's last item


class _Channel:
    """A bounded queue between two threads whose consumer can hang up (``close``), and whose
    waits end when the pipeline is aborted."""

    def __init__(self, size: int, abort: threading.Event) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(size)))
        self._closed = threading.Event()
        self._abort = abort

    def put(self, item: Any) -> bool:
        """Wait for room and put ``item``; False when the consumer is gone or on abort."""
        while not (self._closed.is_set() or self._abort.is_set()):
            try:
                self._queue.put(item, timeout=POLL_SECONDS)
                return True
            except queue.Full:
                pass
        return False

    def items(self, until: _Channel | None = None) -> Iterator[Any]:
        """The items up to the producer's end; stops early on abort, or once ``until`` (the
        reader's own output) is closed: nobody wants what the reader would make of them."""
        while not (self._abort.is_set() or (until is not None and until.closed)):
            try:
                item = self._queue.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
            if item is _END:
                return
            yield item

    def close(self) -> None:
        """The consumer reads no more: the producer's waits end."""
        self._closed.set()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()


class Pipeline:
    """``source`` through ``stages``, each on its own thread (``caller``: on the calling one).

    Args:
        source: the items fed to the first stage; iterated on its own thread (a generator
            reading a file, say).
        stages: functions ``items -> items``, in order; the last one's output is dropped.
        sizes: the capacity of the queue after the source and after each stage but the last
            (``len(stages)`` queues), in items; a single int sets them all.
        names: thread names, for the source then each stage (defaults: pipeline-0, -1, ...).
        caller: the index in ``stages`` of the stage to run on the thread calling
            :meth:`run` (None: all on threads of their own).
        background: run the threads (not the caller's) at idle priority, see above.
    """

    def __init__(
        self,
        source: Iterable[Any],
        stages: Sequence[Stage],
        sizes: int | Sequence[int] = 2,
        names: Sequence[str] | None = None,
        caller: int | None = None,
        background: bool = False,
    ) -> None:
        if not stages:
            raise ValueError("Pipeline: give at least one stage (the last one consumes)")
        count = len(stages)
        sizes = [sizes] * count if isinstance(sizes, int) else list(sizes)
        if len(sizes) != count:
            raise ValueError(f"Pipeline: {len(sizes)} queue sizes for {count} queues")
        if caller is not None and not 0 <= caller < count:
            raise ValueError(f"Pipeline: caller={caller}, but the stages are 0 to {count - 1}")
        self._names = list(names or [f"pipeline-{i}" for i in range(count + 1)])
        self._abort = threading.Event()
        self._errors: list[BaseException] = []
        channels = [_Channel(size, self._abort) for size in sizes]
        works = [lambda _: source, *stages]
        # (work, inbox, outbox) of the source and each stage
        self._steps = list(zip(works, [None, *channels], [*channels, None], strict=True))
        self._caller = None if caller is None else caller + 1
        self._background = background

    def run(self) -> None:
        """Run to the end (once). Raises the first error of a stage, once every thread has ended."""
        threads = [
            self._thread(step, name)
            for i, (step, name) in enumerate(zip(self._steps, self._names, strict=True))
            if i != self._caller
        ]
        try:
            for thread, _ in threads:
                thread.start()
            if self._caller is not None:
                self._run_step(*self._steps[self._caller])
            _wait_until_ended(threads)
        except BaseException:  # Ctrl-C while waiting, or out of the caller's stage's clean-up
            self._abort.set()
            _wait_until_ended([(thread, ended) for thread, ended in threads if thread.ident])
            raise
        stops = [e for e in self._errors if not isinstance(e, Exception)]
        if stops or self._errors:
            raise (stops or self._errors)[0]

    def _thread(self, step: tuple, name: str) -> tuple[threading.Thread, threading.Event]:
        """A daemon thread, not started, that runs ``step``; and the event it sets last."""
        ended = threading.Event()
        target, args = self._run_thread, (ended, *step)
        return threading.Thread(target=target, args=args, name=name, daemon=True), ended

    def _run_thread(self, ended: threading.Event, *step) -> None:
        try:
            if self._background:
                _idle_priority()
            self._run_step(*step)
        finally:
            ended.set()

    def _run_step(self, work, inbox: _Channel | None, outbox: _Channel | None) -> None:
        items = None
        try:
            items = iter(work(inbox.items(until=outbox) if inbox is not None else iter(())))
            for item in items:
                if outbox is not None and not outbox.put(item):
                    break  # the consumer hung up, or abort
        except BaseException as error:  # raised by run(), on the caller's thread
            self._errors.append(error)
            if not isinstance(error, Exception):  # Ctrl-C, SystemExit: stop everything now
                self._abort.set()
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                try:
                    close()  # the stage's own clean-up runs on its thread, now
                except Exception as error:
                    self._errors.append(error)
            if inbox is not None:
                inbox.close()
            if outbox is not None:
                outbox.put(_END)


def _wait_until_ended(threads: list[tuple[threading.Thread, threading.Event]]) -> None:
    """Join ``threads``, each given with the event its last line sets.

    Python 3.11's ``Thread.join``, when a Ctrl-C interrupts it, can mark a thread that is still
    running as ended (CPython issue 90882), and every later ``join`` then returns at once; so
    the waiting is on the events, and ``join`` only follows each one's last line.
    """
    for thread, ended in threads:
        ended.wait()
        thread.join()


def _idle_priority() -> None:
    """Lower the calling thread (only it: Linux schedules threads one by one) to SCHED_IDLE;
    nothing where the OS lacks it or refuses."""
    if not hasattr(os, "SCHED_IDLE"):
        return
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except OSError:
        pass
