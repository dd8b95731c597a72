"""``MicroBatcher`` on its own: batching, error isolation, top-k, cancellation, the wait
estimate and the worker threads, with a deterministic stand-in model (each "image" is a
number, its prediction names it), so every test runs in milliseconds.

Every wait in these tests is bounded by ``WAIT`` seconds (``$VASARI_TEST_WAIT_S``, 30 by
default for a loaded machine): ``scripts/mutation.py`` sets it to a few seconds, so a planted
bug that leaves a request unanswered fails its test quickly instead of hanging the run.
Requests are queued behind a batch that the test holds (``Model.gate``), so what is batched
with what is decided by the batcher's rules, never by thread timing.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import threading
import time

import pytest

from vasari.service.batching import MicroBatcher
from vasari.service.errors import ServiceError

WAIT = float(os.environ.get("VASARI_TEST_WAIT_S", "30"))
POISON = -1  # an image the model fails on


class Model:
    """Predictions of numbered images: ``top_k`` labels per image, the first names it.
    Records the images of every call; holds each call while ``gate`` is closed."""

    def __init__(self, short_by: int = 0):
        self.calls: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.short_by = short_by  # answer this many results too few (a broken model)
        self._lock = threading.Lock()

    def __call__(self, images: list, top_k: int) -> list[dict]:
        with self._lock:
            self.calls.append(list(images))
        assert self.gate.wait(WAIT), "the test never opened the gate"
        if POISON in images:
            raise ValueError("poisoned picture")
        out = [{"image": i, "predictions": {"t": [f"{i}-{r}" for r in range(top_k)]}} for i in images]
        return out[: len(out) - self.short_by]

    def sizes(self) -> list[int]:
        with self._lock:
            return [len(c) for c in self.calls]


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.002)


@pytest.fixture
def model() -> Model:
    return Model()


def started(model, **options) -> MicroBatcher:
    batcher = MicroBatcher(model, **options)
    batcher.start()
    return batcher


@contextlib.contextmanager
def running(model, **options):
    """A started batcher, stopped at the end of the block."""
    batcher = started(model, **options)
    try:
        yield batcher
    finally:
        batcher.stop(WAIT)


def hold_first(batcher: MicroBatcher, model: Model, image: int = 100) -> concurrent.futures.Future:
    """Close the gate and submit one picture; returns once the model holds it."""
    model.gate.clear()
    calls = len(model.calls)
    first = batcher.submit([image], 1)
    wait_until(lambda: len(model.calls) == calls + 1, "the first picture reached the model")
    return first


def held(batcher: MicroBatcher, model: Model, *jobs: list[int], top_k: int = 1) -> list[concurrent.futures.Future]:
    """Hold a first one-image batch in the model, queue ``jobs`` behind it, then let all run.
    Returns the futures of ``jobs``; the first batch's answer is checked here."""
    first = hold_first(batcher, model)
    futures = [batcher.submit(images, top_k) for images in jobs]
    assert batcher.pending_images == 1 + sum(len(j) for j in jobs)
    model.gate.set()
    assert first.result(WAIT) == [{"image": 100, "predictions": {"t": ["100-0"]}}]
    return futures


def taken(future: concurrent.futures.Future) -> bool:
    """Whether a worker has started the job (it may be waiting for more, or done)."""
    return future.running() or future.done()


def answers(future: concurrent.futures.Future) -> list:
    return [r["image"] for r in future.result(WAIT)]


def test_a_lone_request_is_answered_at_once_and_counted(model):
    # a window of 1000 s: a lone request must not wait for it (nobody is on the way)
    with running(model, window_s=1000) as batcher:
        result = batcher.submit([1, 2], 2).result(WAIT)
        assert result == [{"image": 1, "predictions": {"t": ["1-0", "1-1"]}},
                          {"image": 2, "predictions": {"t": ["2-0", "2-1"]}}]
        wait_until(lambda: batcher.pending_images == 0, "the batch is off the books")
        assert (batcher.batches, batcher.images, batcher.dropped) == (1, 2, 0)
        assert batcher.seconds_per_image is not None and batcher.seconds_per_image >= 0


def test_waiting_requests_share_one_batch_each_answered_in_order(model):
    with running(model) as batcher:
        futures = held(batcher, model, [1], [2, 3], [4])
        assert [answers(f) for f in futures] == [[1], [2, 3], [4]]
        assert model.sizes() == [1, 4]
        assert [f.job.batch_size for f in futures] == [4, 4, 4]
        assert all(f.job.submitted <= f.job.started <= f.job.finished for f in futures)
        assert (batcher.batches, batcher.images, batcher.pending_images) == (2, 5, 0)


def test_a_batch_stops_growing_at_max_batch(model):
    # jobs are never split: the batch takes whole jobs until it holds max_batch images or more
    with running(model, max_batch=3) as batcher:
        futures = held(batcher, model, [1, 2], [3, 4], [5, 6])
        assert [answers(f) for f in futures] == [[1, 2], [3, 4], [5, 6]]
        assert model.sizes() == [1, 4, 2]


def test_settings_below_their_minimum_are_raised_to_it(model):
    with running(model, max_batch=0, window_s=-1.0, workers=0) as batcher:
        assert (batcher.max_batch, batcher.window_s, batcher.workers) == (1, 0.0, 1)
        futures = held(batcher, model, [1], [2])
        assert [answers(f) for f in futures] == [[1], [2]]
        assert model.sizes() == [1, 1, 1]


def test_a_request_on_its_way_is_waited_for_while_another_batch_computes(model):
    model.gate.clear()  # the first batch holds the cores until the end
    with running(model, window_s=1000, workers=2) as batcher:
        busy = batcher.submit([0], 1)
        wait_until(lambda: model.sizes() == [1] and batcher.computing == 1, "the first batch is computing")
        with batcher.expecting():  # the third request is still decoding
            first = batcher.submit([1], 1)
            wait_until(lambda: taken(first), "the second worker took the second job")
            time.sleep(0.05)  # and decodes for longer than the worker's polling interval
        second = batcher.submit([2], 1)
        wait_until(lambda: model.sizes() == [1, 2], "the second worker ran the two jobs as one batch")
        model.gate.set()
        assert answers(busy) == [0] and answers(first) == [1] and answers(second) == [2]
        wait_until(lambda: batcher.computing == 0, "both batches are counted out")  # two at once, each counted once


def test_a_request_on_its_way_is_not_waited_for_when_nothing_else_computes(model):
    with running(model, window_s=1000) as batcher:
        with batcher.expecting():  # a request decoding: with idle cores the worker starts at once
            first = batcher.submit([1], 1)
            assert answers(first) == [1]
        assert answers(batcher.submit([2], 1)) == [2]
        assert model.sizes() == [1, 1]
        wait_until(lambda: batcher.computing == 0, "no batch is counted as computing")


@pytest.mark.parametrize("window_s, answered_while_announced", [(1000.0, False), (0.0, True)])
def test_no_wait_for_an_announced_request_that_never_comes_or_without_a_window(model, window_s, answered_while_announced):
    # the announced request's decoding failed (the announcement ends without a submit): the
    # worker stops waiting at once, long before a 1000 s window ends; without a window it
    # never waited at all
    with running(model, window_s=window_s) as batcher:
        with batcher.expecting():
            first = batcher.submit([1], 1)
            wait_until(lambda: taken(first), "the worker took the first job")
            if answered_while_announced:
                assert answers(first) == [1]
        assert answers(first) == [1]
        assert answers(batcher.submit([2], 1)) == [2]
        assert model.sizes() == [1, 1]
        wait_until(lambda: batcher.computing == 0, "no batch is counted as computing")


def test_one_failing_image_does_not_fail_its_batch(model):
    with running(model) as batcher:
        good, bad, other = held(batcher, model, [1, 2], [POISON], [3])
        assert answers(good) == [1, 2] and answers(other) == [3]
        with pytest.raises(ValueError, match="poisoned picture"):
            bad.result(WAIT)
        assert model.sizes() == [1, 4, 2, 1, 1]  # the batch failed, then each job alone
        assert batcher.pending_images == 0 and batcher.batches == 3  # failed calls are not measured
        assert answers(batcher.submit([4], 1)) == [4]  # the worker lives on


def test_a_failing_pair_is_retried_one_by_one_and_logged_once(model, caplog):
    with running(model) as batcher:
        bad, good = held(batcher, model, [POISON], [1])
        assert answers(good) == [1]
        with pytest.raises(ValueError, match="poisoned picture"):
            bad.result(WAIT)
        assert model.sizes() == [1, 2, 1, 1]
    assert [r.getMessage() for r in caplog.records if r.name == "vasari.service.batching"] == ["prediction failed"]


def test_a_model_answering_too_few_results_is_an_error_for_its_request():
    model = Model(short_by=1)
    with running(model) as batcher:
        with pytest.raises(RuntimeError, match="predictor returned 1 results for 2 images"):
            batcher.submit([1, 2], 1).result(WAIT)
        assert batcher.batches == 0


def test_each_request_gets_its_own_top_k_from_a_shared_batch(model):
    with running(model) as batcher:
        first = hold_first(batcher, model)
        one, three = batcher.submit([1], 1), batcher.submit([2], 3)
        model.gate.set()
        first.result(WAIT)
        assert one.result(WAIT)[0]["predictions"] == {"t": ["1-0"]}
        assert three.result(WAIT)[0]["predictions"] == {"t": ["2-0", "2-1", "2-2"]}
        assert model.sizes() == [1, 2]  # one batch, computed for the largest top_k


def test_results_without_predictions_pass_through_unchanged():
    def errors(images, top_k):
        return [{"image": i, "error": {"code": "corrupt"}} for i in images]

    with running(errors) as batcher:
        assert batcher.submit([1], 1).result(WAIT) == [{"image": 1, "error": {"code": "corrupt"}}]


def test_a_request_whose_client_left_is_dropped_unseen(model):
    with running(model) as batcher:
        first = hold_first(batcher, model)
        leaving, staying = batcher.submit([1, 2], 1), batcher.submit([3], 1)
        assert leaving.cancel()
        model.gate.set()
        first.result(WAIT)
        assert answers(staying) == [3]
        assert model.sizes() == [1, 1] and batcher.dropped == 1 and batcher.pending_images == 0
        # a cancelled job at the head of the queue is dropped too
        blocker = hold_first(batcher, model)
        gone = batcher.submit([4], 1)
        gone.cancel()
        model.gate.set()
        blocker.result(WAIT)
        wait_until(lambda: batcher.dropped == 2, "the second departure is dropped")
        assert batcher.pending_images == 0 and answers(batcher.submit([5], 1)) == [5]
        assert [c for c in model.calls if 4 in c] == []


def test_not_ready_before_start_and_after_stop(model):
    batcher = MicroBatcher(model)
    with pytest.raises(ServiceError) as caught:
        batcher.submit([1], 1).result(WAIT)
    assert (caught.value.status, caught.value.code) == (503, "not_ready")
    assert batcher.pending_images == 0
    batcher.start()
    batcher.start()  # a second start adds no threads
    assert answers(batcher.submit([1], 1)) == [1]
    batcher.stop(WAIT)
    with pytest.raises(ServiceError) as caught:
        batcher.submit([2], 1).result(WAIT)
    assert str(caught.value) == "the model is not running"
    assert model.sizes() == [1]


def test_stop_ends_every_worker_thread(model):
    before = set(threading.enumerate())
    batcher = started(model, workers=3)
    mine = [t for t in threading.enumerate() if t not in before]
    assert all(t.daemon for t in mine)  # the workers (and any helper thread) never block an exit
    named = sorted(t.name for t in mine if t.name.startswith("vasari-batcher-"))
    assert named == ["vasari-batcher-0", "vasari-batcher-1", "vasari-batcher-2"]  # as logs and stack dumps show them
    batcher.stop(WAIT)
    assert not any(t.is_alive() for t in mine)
    batcher.start()  # and it can run again
    assert answers(batcher.submit([1], 1)) == [1]
    batcher.stop(WAIT)


def test_a_request_queued_before_stop_is_answered_and_the_worker_ends(model):
    before = set(threading.enumerate())
    batcher = started(model)
    workers = [t for t in threading.enumerate() if t not in before]
    first = hold_first(batcher, model)
    queued = batcher.submit([1], 1)
    batcher.stop(0)  # the stop signal queues behind the waiting request
    model.gate.set()
    assert first.result(WAIT) and answers(queued) == [1]
    for worker in workers:
        worker.join(WAIT)
    assert workers and not any(w.is_alive() for w in workers)


def test_stop_gives_up_on_a_worker_stuck_in_the_model(model):
    batcher = started(model)
    first = hold_first(batcher, model)
    stopper = threading.Thread(target=batcher.stop, args=(0.01,))
    stopper.start()
    stopper.join(WAIT / 2)  # the model holds the worker for WAIT: stop must not wait for it
    stuck = stopper.is_alive()
    model.gate.set()
    first.result(WAIT)
    assert not stuck


def test_two_workers_compute_two_batches_at_once(model):
    with running(model, workers=2) as batcher:
        first = hold_first(batcher, model, image=1)
        second = batcher.submit([2], 1)
        wait_until(lambda: model.sizes() == [1, 1], "the second worker took the next request")
        model.gate.set()
        assert answers(first) == [1] and answers(second) == [2]


def test_expected_wait_is_the_work_ahead_at_the_measured_pace(model):
    with running(model, workers=2) as batcher:
        assert batcher.expected_wait() == 0.0  # nothing measured yet: an idle server never sheds
        futures = [hold_first(batcher, model, image=1)]
        futures.append(batcher.submit([2], 1))
        wait_until(lambda: model.sizes() == [1, 1], "both workers are busy")
        queued = batcher.submit([3, 4], 1)
        batcher.seconds_per_image = 2.0
        assert batcher.expected_wait() == pytest.approx(4 * 2.0 / 2)  # 4 images ahead, 2 workers
        with batcher.expecting():
            assert batcher.expected_wait() == pytest.approx(5 * 2.0 / 2)
        model.gate.set()
        assert [answers(f) for f in (*futures, queued)] == [[1], [2], [3, 4]]
        wait_until(lambda: batcher.pending_images == 0, "everything is computed")
        assert batcher.expected_wait() == 0.0


class StepClock:
    """A stand-in for the ``time`` module whose ``perf_counter`` moves 1 s per reading (so a
    batch, read at its start and its end, takes exactly 1 s); ``monotonic`` is the real one."""

    monotonic = staticmethod(time.monotonic)

    def __init__(self):
        self._now = 0.0

    def perf_counter(self) -> float:
        self._now += 1.0
        return self._now


def test_pace_is_a_moving_average_of_seconds_per_image(model, monkeypatch):
    import vasari.service.batching as batching

    with running(model) as batcher:
        monkeypatch.setattr(batching, "time", StepClock())
        pace = []
        for images in ([1, 2], [1], [1, 2, 3, 4]):  # 0.5, 1 and 0.25 s per image
            assert answers(batcher.submit(images, 1)) == images
            wait_until(lambda: batcher.batches == len(pace) + 1, "the batch is measured")
            pace.append(batcher.seconds_per_image)
        assert pace == pytest.approx([0.5, 0.8 * 0.5 + 0.2 * 1.0, 0.8 * 0.6 + 0.2 * 0.25])
        assert batcher.images == 7


def test_thread_setup_runs_before_and_after_the_first_batch_and_is_undone_at_stop(model):
    events: list[str] = []

    def setup():
        events.append("setup")
        return lambda: events.append("undo")

    batcher = started(model, thread_setup=setup)
    assert answers(batcher.submit([1], 1)) == [1]
    wait_until(lambda: events.count("setup") == 2, "the set-up after the first batch")
    assert answers(batcher.submit([2], 1)) == [2]
    batcher.stop(WAIT)
    assert events == ["setup", "setup", "undo", "undo"]


def test_a_failing_thread_setup_or_undo_does_not_stop_the_worker(model, caplog):
    def failing_setup():
        raise OSError("no such tuning knob")

    batcher = started(model, thread_setup=failing_setup)
    assert answers(batcher.submit([1], 1)) == [1]
    batcher.stop(WAIT)
    assert "worker thread set-up failed" in caplog.messages

    def failing_undo():
        def undo():
            raise OSError("cannot undo")
        return undo

    batcher = started(model, thread_setup=failing_undo)
    assert answers(batcher.submit([2], 1)) == [2]
    batcher.stop(WAIT)
    assert "worker thread clean-up failed" in caplog.messages
    assert model.sizes() == [1, 1]


# --------------------------------------------------------------------------- submit_call


class Call:
    """A ``submit_call`` function: records the batcher's books while it runs, waits for
    ``gate``, then returns ``value`` (or raises it when it is an exception)."""

    def __init__(self, batcher: MicroBatcher, value, gate: threading.Event | None = None):
        self.batcher, self.value, self.gate = batcher, value, gate
        self.seen: list[tuple[int, int, str]] = []  # (computing, pending_images, thread name)

    def __call__(self):
        self.seen.append((self.batcher.computing, self.batcher.pending_images, threading.current_thread().name))
        if self.gate is not None:
            assert self.gate.wait(WAIT), "the test never opened the call's gate"
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


def test_a_call_runs_alone_on_a_worker_booked_at_its_cost_and_off_the_books_before_its_caller_hears(model):
    with running(model, workers=1) as batcher:
        gate = threading.Event()
        call = Call(batcher, {"answer": 42}, gate)
        future = batcher.submit_call(call, cost=65)
        wait_until(lambda: call.seen, "the call started")
        assert call.seen[0][:2] == (1, 65) and call.seen[0][2] == "vasari-batcher-0"
        books: list[int] = []
        future.add_done_callback(lambda f: books.append(batcher.pending_images))
        gate.set()
        assert future.result(WAIT) == {"answer": 42}
        assert books == [0] and batcher.computing == 0
        assert (batcher.batches, batcher.images) == (1, 65)  # measured like a batch of 65 pictures
        assert model.calls == []  # the model's batch path never saw it
        # the worker goes on serving pictures after a call (it did not stop)
        assert answers(batcher.submit([7], 1)) == [7]


def test_a_call_that_fails_gives_its_error_and_leaves_the_pace_alone(model):
    with running(model, workers=1) as batcher:
        future = batcher.submit_call(Call(batcher, RuntimeError("explainer broke")), cost=3)
        with pytest.raises(RuntimeError, match="explainer broke"):
            future.result(WAIT)
        assert (batcher.pending_images, batcher.computing, batcher.batches, batcher.seconds_per_image) == (0, 0, 0, None)
        assert answers(batcher.submit([1], 1)) == [1]


def test_a_call_met_while_gathering_runs_after_that_batch_in_queue_order(model):
    with running(model, workers=1, window_s=1000, max_batch=8) as batcher:
        first = hold_first(batcher, model)
        before = batcher.submit([1, 2], 1)
        call = Call(batcher, "done")
        called = batcher.submit_call(call, cost=5)
        after = batcher.submit([3], 1)
        assert batcher.pending_images == 1 + 2 + 5 + 1
        model.gate.set()
        assert first.result(WAIT) and answers(before) == [1, 2]
        assert called.result(WAIT) == "done" and answers(after) == [3]
        # [100] held, then [1, 2] gathered up to the call, which ran alone; then [3]
        assert model.calls == [[100], [1, 2], [3]]
        assert call.seen[0][:2] == (1, 5 + 1)  # its own cost and the picture queued behind it
        wait_until(lambda: batcher.pending_images == 0, "everything is off the books")


def test_a_call_before_start_is_not_ready_and_a_cancelled_call_never_runs(model):
    batcher = MicroBatcher(model)
    never = Call(batcher, "x")
    with pytest.raises(ServiceError) as caught:
        batcher.submit_call(never, cost=2).result(WAIT)
    assert (caught.value.status, caught.value.code) == (503, "not_ready") and batcher.pending_images == 0
    assert str(caught.value) == "the model is not running"
    with running(model, workers=1) as batcher:
        first = hold_first(batcher, model)
        gone = batcher.submit_call(never, cost=4)
        assert batcher.pending_images == 1 + 4 and batcher.expected_wait() == 0.0
        assert gone.cancel()
        model.gate.set()
        first.result(WAIT)
        wait_until(lambda: batcher.dropped == 1, "the cancelled call is dropped")
        assert never.seen == [] and batcher.pending_images == 0
        assert batcher.submit_call(Call(batcher, 1), cost=0).result(WAIT) == 1
        assert batcher.images == 1 + 1  # a cost below one counts as one picture


def test_a_call_is_paced_like_a_batch_of_its_cost(model, monkeypatch):
    import vasari.service.batching as batching

    with running(model, workers=1) as batcher:
        monkeypatch.setattr(batching, "time", StepClock())  # each call takes exactly 1 s
        assert batcher.submit_call(Call(batcher, "a"), cost=4).result(WAIT) == "a"
        wait_until(lambda: batcher.batches == 1, "the call is measured")
        assert batcher.seconds_per_image == pytest.approx(1 / 4)
