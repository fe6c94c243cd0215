"""mrcnn.pipeline.Pipeline: stages overlap, order kept, memory bounded, errors and Ctrl-C stop
every thread without a hang."""

from __future__ import annotations

import itertools
import signal
import threading
import time

import pytest

from mrcnn.pipeline import Pipeline

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


def test_items_come_out_in_order_through_stages_that_split_and_batch():
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

    with Pipeline(range(7), [doubled, pairs, unbatched], sizes=1) as items:
        assert list(items) == [0, 2, 4, 6, 8, 10, 12]
    with Pipeline(range(5), [doubled], sizes=[3, 2]) as items:
        assert list(items) == [0, 2, 4, 6, 8]
    assert not pipeline_threads()


def test_stages_run_at_the_same_time():
    """Each step below waits for a neighbour to be busy with another item: the run finishes
    only if the source, both stages and the caller work concurrently."""
    made_two, first_stage_at_one, second_stage_at_one = (threading.Event() for _ in range(3))

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
                first_stage_at_one.set()
            yield i

    def second(items):
        for i in items:
            if i == 0:
                assert first_stage_at_one.wait(WAIT), "the first stage waited for the second"
            if i == 1:
                second_stage_at_one.set()
            yield i

    with Pipeline(source(), [first, second], sizes=2) as items:
        for i in items:
            if i == 0:
                assert second_stage_at_one.wait(WAIT), "the second stage waited for the caller"
    assert not pipeline_threads()


def test_memory_is_bounded_by_the_queue_sizes():
    produced = []

    def endless():
        for i in itertools.count():
            produced.append(i)
            yield i

    with Pipeline(endless(), [doubled], sizes=[2, 3]) as items:
        for i, _ in enumerate(items):
            if i == 4:
                time.sleep(0.3)  # ample time for an unbounded source to run far ahead
                break
    # 5 consumed, 2 + 3 queued, one in each of the two threads' hands
    assert len(produced) <= 5 + 2 + 3 + 2
    assert not pipeline_threads()


@pytest.mark.parametrize("where", ["source", "stage", "last stage"])
def test_an_error_in_a_stage_comes_out_after_the_items_before_it(where):
    def source():
        for i in range(100):
            if where == "source" and i == 3:
                raise ValueError("bad input at 3")
            yield i

    def failing(items):
        for count, i in enumerate(items):
            if where != "source" and count == 3:
                raise ValueError("bad input at 3")
            yield i

    stages = [failing, doubled] if where == "stage" else [doubled, failing]
    got = []
    with pytest.raises(ValueError, match="bad input at 3"):
        with Pipeline(source(), stages, sizes=2) as items:
            got.extend(items)
    assert got == [0, 2, 4]
    assert not pipeline_threads()


def test_an_error_in_the_callers_loop_stops_every_stage():
    cleaned_up = threading.Event()

    def endless():
        try:
            yield from itertools.count()
        finally:
            cleaned_up.set()

    with pytest.raises(OSError, match="disk full"):
        with Pipeline(endless(), [doubled], sizes=2) as items:
            for i in items:
                if i == 10:
                    raise OSError("disk full")
    assert cleaned_up.is_set()  # the source's clean-up ran
    assert not pipeline_threads()


def test_ctrl_c_stops_the_pipeline():
    main = threading.main_thread().ident

    def interrupting(items):
        for i in items:
            if i == 5:
                signal.pthread_kill(main, signal.SIGINT)  # as a Ctrl-C would
            yield i

    got = []
    with pytest.raises(KeyboardInterrupt):
        with Pipeline(itertools.count(), [interrupting], sizes=2) as items:
            for i in items:
                got.append(i)
                time.sleep(0.01)  # the caller is slower: the stage is blocked on a full queue
    assert len(got) < 100
    assert not pipeline_threads()


def test_queue_sizes_must_match_the_stages():
    with pytest.raises(ValueError, match="2 queue sizes for 3 queues"):
        Pipeline(range(3), [doubled, doubled], sizes=[1, 1])
