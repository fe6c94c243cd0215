"""mrcnn.splash.pipeline.Pipeline: stages overlap, order kept, memory bounded, errors and Ctrl-C
stop
every thread without a hang."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time

import pytest

from mrcnn.splash.pipeline import Pipeline

WAIT = 10.0  # seconds; any wait this long means the pipeline is stuck


@pytest.fixture(autouse=True)
def deadline():
    """A hang becomes a failure: SIGALRM raises in the test's (main) thread after 30 s."""

    def hung(signum, frame):
        raise TimeoutError("the pipeline hung")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, 30.0)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def pipeline_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("pipeline-")]


def doubled(items):
    for item in items:
        yield 2 * item


def collect(into: list):
    """A sink stage appending what reaches it to ``into``."""

    def sink(items):
        into.extend(items)
        return ()

    return sink


@pytest.mark.parametrize("caller", [None, 0, 2])
def test_items_go_through_in_order_through_stages_that_split_and_batch(caller):
    def pairs(items):  # batches of 2, the last one short
        batch = []
        for item in items:
            batch.append(item)
            if len(batch) == 2:
                yield batch
                batch = []
        if batch:
            yield batch

    def unbatched(batches):
        for batch in batches:
            yield from batch

    got: list = []
    Pipeline(range(7), [doubled, pairs, unbatched, collect(got)], sizes=1, caller=caller).run()
    assert got == [0, 2, 4, 6, 8, 10, 12]
    got.clear()
    Pipeline(range(5), [doubled, collect(got)], sizes=[3, 2]).run()
    assert got == [0, 2, 4, 6, 8]
    assert not pipeline_threads()


def test_stages_run_at_the_same_time():
    """Each step below waits for a neighbour to be busy with another item: the run finishes
    only if the source and the three stages (the first on the caller's thread) work at once."""
    made_two, first_at_one, second_at_one = (threading.Event() for _ in range(3))

    def source():
        for i in range(4):
            if i == 2:
                made_two.set()
            yield i

    def first(items):
        for i in items:
            if i == 0:
                assert made_two.wait(WAIT), "the source did not run ahead of the first stage"
            if i == 1:
                first_at_one.set()
            yield i

    def second(items):
        for i in items:
            if i == 0:
                assert first_at_one.wait(WAIT), "the first stage waited for the second"
            if i == 1:
                second_at_one.set()
            yield i

    def sink(items):
        for i in items:
            if i == 0:
                assert second_at_one.wait(WAIT), "the second stage waited for the sink"
        return ()

    Pipeline(source(), [first, second, sink], sizes=2, caller=0).run()
    assert not pipeline_threads()


def test_memory_is_bounded_by_the_queue_sizes():
    produced = []

    def endless():
        for i in itertools.count():
            produced.append(i)
            yield i

    def five_then_stop(items):
        for i, _ in enumerate(items):
            if i == 4:
                time.sleep(0.3)  # ample time for an unbounded source to run far ahead
                raise RuntimeError("enough")
        return ()

    with pytest.raises(RuntimeError, match="enough"):
        Pipeline(endless(), [doubled, five_then_stop], sizes=[2, 3]).run()
    # 5 consumed, 2 + 3 queued, one in each of the two threads' hands before the sink
    assert len(produced) <= 5 + 2 + 3 + 2
    assert not pipeline_threads()


@pytest.mark.parametrize("where", ["source", "first stage", "caller's stage", "sink"])
def test_an_error_in_a_stage_is_raised_after_the_items_before_it(where):
    def source():
        for i in range(100):
            if where == "source" and i == 3:
                raise ValueError("bad input at 3")
            yield i

    def failing_at_fourth(items):
        for count, i in enumerate(items):
            if count == 3:
                raise ValueError("bad input at 3")
            yield i

    got: list = []

    def sink(items):
        for count, i in enumerate(items):
            if where == "sink" and count == 3:
                raise ValueError("bad input at 3")
            got.append(i)
        return ()

    first = failing_at_fourth if where == "first stage" else doubled
    second = failing_at_fourth if where == "caller's stage" else doubled
    with pytest.raises(ValueError, match="bad input at 3"):
        Pipeline(source(), [first, second, sink], sizes=2, caller=1).run()
    # three items through two doubling stages, or through the one left
    assert got == ([0, 2, 4] if "stage" in where else [0, 4, 8])
    assert not pipeline_threads()


def test_a_stage_error_stops_the_stages_before_it():
    cleaned_up = threading.Event()

    def endless():
        try:
            yield from itertools.count()
        finally:
            cleaned_up.set()

    def full_disk(items):
        for i in items:
            if i == 10:
                raise OSError("disk full")
        return ()

    with pytest.raises(OSError, match="disk full"):
        Pipeline(endless(), [doubled, full_disk], sizes=2, caller=0).run()
    assert cleaned_up.is_set()  # the source's clean-up ran
    assert not pipeline_threads()


@pytest.mark.serial  # it sends SIGINT to its own process: run alone, not in an xdist worker
@pytest.mark.parametrize("caller", [None, 0])
def test_ctrl_c_stops_the_pipeline(caller, ctrl_c_handler):
    main = threading.main_thread().ident
    sunk: list = []
    cleaned: list = []

    def counting():  # the source; its clean-up (a video file being closed, say) takes a while
        try:
            yield from itertools.count()
        finally:
            time.sleep(0.3)
            cleaned.append(True)

    def interrupting(items):
        for i in items:
            if i == 5:
                signal.pthread_kill(main, signal.SIGINT)  # as a Ctrl-C would
            yield i

    def slow_sink(items):  # the stages before it wait on full queues
        for i in items:
            sunk.append(i)
            time.sleep(0.01)
        return ()

    with pytest.raises(KeyboardInterrupt):
        Pipeline(counting(), [interrupting, slow_sink], sizes=2, caller=caller).run()
    assert len(sunk) < 100
    # Python 3.11's Thread.join, interrupted by Ctrl-C, marks a running thread as ended: run()
    # must still wait until every stage has cleaned up
    assert cleaned == [True]
    assert not pipeline_threads()


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="2 queue sizes for 3 queues"):
        Pipeline(range(3), [doubled, doubled, doubled], sizes=[1, 1])
    with pytest.raises(ValueError, match="caller=2, but the stages are 0 to 1"):
        Pipeline(range(3), [doubled, doubled], caller=2)
    with pytest.raises(ValueError, match="at least one stage"):
        Pipeline(range(3), [])


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux-only")
@pytest.mark.parametrize("background", [False, True])
def test_background_stages_run_at_idle_priority_and_the_caller_does_not(background):
    policies: dict[str, int] = {}

    def observe(name):
        def stage(items):
            policies[name] = os.sched_getscheduler(0)
            yield from items

        return stage

    before = os.sched_getscheduler(0)
    out: list[int] = []
    stages = [observe("first"), observe("caller"), lambda items: out.extend(items) or ()]
    Pipeline(range(5), stages, 1, caller=1, background=background).run()
    assert out == list(range(5))
    idle = os.SCHED_IDLE if background else before
    assert policies == {"first": idle, "caller": before}
    assert os.sched_getscheduler(0) == before  # the calling thread is left as it was
