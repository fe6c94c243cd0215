"""A stream through stages on threads joined by bounded queues, so that the stages overlap.

:class:`Pipeline` runs a source iterable and a chain of stages, each on its own thread; the
caller iterates over the last stage's items on its own thread. A video splash uses it to decode,
detect, render and encode at once, so that it runs at the speed of its slowest stage (detection)
rather than the sum of all. It is worth it because the heavy work of every stage (torch kernels,
OpenCV, numpy, FFmpeg) releases the GIL.

- **Bounded memory.** Each queue holds at most its ``size`` items; a stage that is ahead waits.
- **Order.** One thread per stage and FIFO queues: items come out in the order they went in.
- **Errors.** A stage that raises stops reading its input, so the stages before it stop too;
  the items it produced before the error still flow to the caller, and the caller's loop then
  raises that error (the first, when several stages fail). An error in the caller's loop, or
  Ctrl-C (KeyboardInterrupt reaches the caller's thread), aborts every stage at once.
  Leaving the ``with`` block always joins every thread: none is left behind.

A stage is a function from an iterator of input items to an iterable of output items, usually a
generator, so it may batch, split or drop items::

    def detect(batches):
        for batch in batches:
            yield batch, model.detect(batch)

    with Pipeline(decode(capture), [detect, render], sizes=[2, 2, 8]) as frames:
        for frame in frames:
            writer.write(frame)
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

__all__ = ["Pipeline", "Stage"]

#: items -> items; runs on its own thread.
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
    """Run ``source`` and ``stages`` on threads; iterate over the last stage's items.

    Args:
        source: the items fed to the first stage; iterated on its own thread (a generator
            reading a file, say).
        stages: functions ``items -> items``, each run on its own thread, in order.
        sizes: the capacity of the queue after the source and after each stage (one more
            than ``len(stages)``), in items; a single int sets them all.
        names: thread names, for the source then each stage (defaults: pipeline-0, -1, ...).

    Use it as a context manager and iterate over it once. The iteration raises the first
    error of a stage after the items produced before it; leaving the block stops and joins
    every thread.
    """

    def __init__(
        self,
        source: Iterable[Any],
        stages: Sequence[Stage],
        sizes: int | Sequence[int] = 2,
        names: Sequence[str] | None = None,
    ) -> None:
        count = len(stages) + 1
        sizes = [sizes] * count if isinstance(sizes, int) else list(sizes)
        if len(sizes) != count:
            raise ValueError(f"Pipeline: {len(sizes)} queue sizes for {count} queues")
        names = list(names) if names is not None else [f"pipeline-{i}" for i in range(count)]
        self._abort = threading.Event()
        self._errors: list[BaseException] = []
        self._channels = [_Channel(size, self._abort) for size in sizes]
        inboxes = [None, *self._channels[:-1]]
        works = [lambda _: source, *stages]
        self._threads = [
            threading.Thread(
                target=self._run_stage, args=(work, inbox, outbox), name=name, daemon=True
            )
            for work, inbox, outbox, name in zip(works, inboxes, self._channels, names, strict=True)
        ]

    def __enter__(self) -> Pipeline:
        for thread in self._threads:
            thread.start()
        return self

    def __iter__(self) -> Iterator[Any]:
        yield from self._channels[-1].items()
        self._join()
        if self._errors:
            raise self._errors[0]

    def __exit__(self, *exc_info) -> None:
        self._abort.set()  # a no-op after a complete run: every thread has ended
        self._channels[-1].close()
        self._join()

    def _join(self) -> None:
        for thread in self._threads:
            thread.join()

    def _run_stage(self, work, inbox: _Channel | None, outbox: _Channel) -> None:
        items = None
        try:
            items = iter(work(inbox.items(until=outbox) if inbox is not None else iter(())))
            for item in items:
                if not outbox.put(item):
                    break  # the consumer hung up, or abort
        except BaseException as error:  # handed to the caller's thread, which raises it
            self._errors.append(error)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                try:
                    close()  # the stage's own clean-up runs on its thread, now
                except BaseException as error:
                    self._errors.append(error)
            if inbox is not None:
                inbox.close()
            outbox.put(_END)
