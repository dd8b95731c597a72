"""``MicroBatcher``: the thread(s) that own the predictor and share forward passes.

Inference never runs on the event loop: images are decoded (and prepared for the network,
``ServiceState.prepare``) in the thread pool and handed to a ``MicroBatcher`` thread that
feeds the predictor. When several requests are waiting it runs them as one embedder batch,
so concurrent clients share one forward pass; while another batch is computing it also waits
at most ``window_s`` for requests still being decoded (a bigger batch then costs no idle
core), and with nothing else computing it starts at once.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from vasari.service.errors import ServiceError

log = logging.getLogger(__name__)


@dataclass
class _Job:
    images: list
    top_k: int
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    submitted: float = field(default_factory=time.perf_counter)
    started: float = 0.0  # when its batch began (queue wait = started - submitted)
    finished: float = 0.0
    batch_size: int = 0
    #: work run alone instead of a prediction (``submit_call``), and the pictures it embeds
    call: Callable[[], Any] | None = None
    cost: int = 0

    @property
    def count(self) -> int:
        """Pictures this job puts through the model (what ``pending_images`` counts)."""
        return self.cost if self.call is not None else len(self.images)


def _truncate(result: dict, top_k: int) -> dict:
    predictions = result.get("predictions")
    if isinstance(predictions, dict):
        result = dict(result)
        result["predictions"] = {task: list(items)[:top_k] for task, items in predictions.items()}
    return result


class MicroBatcher:
    """Worker thread(s) that own the predictor and group waiting requests into batches.

    ``submit`` returns a ``concurrent.futures.Future`` with one prediction dict per image.
    The worker takes every job already queued (up to ``max_batch`` images); if requests are
    known to be on their way (inside ``expecting()`` and not submitted yet) and another
    worker's batch is computing, it waits up to ``window_s`` for them. A lone request
    therefore never waits. ``workers`` > 1 runs that
    many batches at once (for predictors whose engine uses fewer threads than there are
    cores; the predictor must then be thread-safe, as onnxruntime sessions are).
    """

    def __init__(
        self,
        predict_fn: Callable[[list, int], list[dict]],
        max_batch: int = 8,
        window_s: float = 0.005,
        workers: int = 1,
        thread_setup: Callable[[], Callable[[], None] | None] | None = None,
    ):
        self._predict = predict_fn
        #: run in each worker thread before its first and after its first batch (libraries
        #: loaded by the first prediction); returns an undo function run when it stops
        self._thread_setup = thread_setup
        self.max_batch = max(1, max_batch)
        self.window_s = max(0.0, window_s)
        self.workers = max(1, workers)
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._incoming = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.batches = 0
        self.images = 0
        #: jobs dropped before computing because their client had left
        self.dropped = 0
        #: images queued or being computed (the work ahead of a new request)
        self.pending_images = 0
        #: batches being computed now (by as many workers)
        self.computing = 0
        #: moving average of seconds per image of the batches computed (None: none yet)
        self.seconds_per_image: float | None = None
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._threads = [
                threading.Thread(target=self._run, name=f"vasari-batcher-{i}", daemon=True) for i in range(self.workers)
            ]
            for thread in self._threads:
                thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self._started:
            for _ in self._threads:
                self._queue.put(None)
            for thread in self._threads:
                thread.join(timeout)
            self._started = False

    @contextlib.contextmanager
    def expecting(self):
        """Announce a request that is decoding and will ``submit`` soon (or fail)."""
        with self._lock:
            self._incoming += 1
        try:
            yield
        finally:
            with self._lock:
                self._incoming -= 1

    def submit(self, images: Sequence, top_k: int) -> concurrent.futures.Future:
        """Queue images for prediction; the future's ``job`` attribute has the timings.

        Cancelling the future before its batch starts drops the job (its client left)."""
        job = _Job(list(images), top_k)
        job.future.job = job  # type: ignore[attr-defined]
        return self._enqueue(job)

    def submit_call(self, fn: Callable[[], Any], cost: int) -> concurrent.futures.Future:
        """Run ``fn()`` on a worker thread, alone, in queue order; the future has its result.

        For heavy work on the model (an explanation embeds ``cost`` ~ 65 pictures): it takes
        a worker like a batch of ``cost`` pictures would, so the worker count, the queue and
        the shedding estimate (``expected_wait``) cover it instead of it running beside them."""
        job = _Job([], 0, call=fn, cost=max(1, int(cost)))
        return self._enqueue(job)

    def _enqueue(self, job: _Job) -> concurrent.futures.Future:
        """Book ``job``'s pictures as pending and queue it; 503 on its future when not running."""
        if not self._started:
            job.future.set_exception(ServiceError(503, "not_ready", "the model is not running"))
            return job.future
        with self._lock:
            self.pending_images += job.count
        self._queue.put(job)
        return job.future

    def expected_wait(self) -> float:
        """Seconds a new request would wait before its batch starts: the images already
        waiting or being computed (and requests still decoding) at the measured seconds per
        image. 0 when nothing is ahead, so an idle server never sheds."""
        with self._lock:
            ahead = self.pending_images + self._incoming
            per_image = self.seconds_per_image
        if per_image is None:
            return 0.0
        return ahead * per_image / self.workers

    def _record(self, images: int, seconds: float) -> None:
        """Count a computed batch and update the seconds-per-image average."""
        with self._lock:
            self.batches += 1
            self.images += images
            per_image = seconds / max(1, images)
            old = self.seconds_per_image
            self.seconds_per_image = per_image if old is None else 0.8 * old + 0.2 * per_image

    def _take(self, job: _Job) -> bool:
        """Start a queued job; False (and off the books) when its client left (cancelled)."""
        if job.future.set_running_or_notify_cancel():
            return True
        with self._lock:
            self.pending_images -= job.count
            self.dropped += 1
        return False

    def _run(self) -> None:
        undo: list[Callable[[], None]] = []

        def setup() -> None:
            if self._thread_setup is not None:
                try:
                    done = self._thread_setup()
                except Exception:  # noqa: BLE001 - tuning only
                    log.exception("worker thread set-up failed")
                    return
                if done is not None:
                    undo.append(done)

        setup()
        try:
            self._loop(after_first=setup)
        finally:
            for done in reversed(undo):
                try:
                    done()
                except Exception:  # noqa: BLE001
                    log.exception("worker thread clean-up failed")

    def _loop(self, after_first: Callable[[], None]) -> None:
        first_batch = True
        while True:
            first = self._queue.get()
            if first is None:
                return
            if not self._take(first):
                continue
            if first.call is not None:
                self._execute_call(first)
                continue
            jobs, stop, solo = self._gather(first)
            with self._computing(sum(len(job.images) for job in jobs)):
                self._execute(jobs)
            if solo is not None and self._take(solo):
                self._execute_call(solo)
            if first_batch:
                first_batch = False
                after_first()
            if stop:
                return

    @contextlib.contextmanager
    def _computing(self, images: int):
        """A worker computing ``images`` queued pictures (or a call costing that many): while
        it runs the cores are busy, so other workers may wait to gather bigger batches; after
        it the pictures are off the books (``expected_wait``), whatever happened."""
        with self._lock:
            self.computing += 1
        try:
            yield
        finally:
            with self._lock:
                self.computing -= 1
                self.pending_images -= images

    def _should_wait(self, deadline: float) -> bool:
        """Wait for requests still decoding? Only while another worker is computing (the
        cores have work, so a bigger batch costs no idle time: the heads and the gallery
        search cost less per picture in a bigger batch) and before ``deadline``. With no
        other batch running the worker starts at once: waiting would leave the cores idle."""
        with self._lock:
            wanted = self._incoming > 0 and self.computing > 0
        return wanted and time.monotonic() < deadline

    def _gather(self, first: _Job) -> tuple[list[_Job], bool, _Job | None]:
        """``first`` and the jobs that join its batch (up to ``max_batch`` images); True
        as the second item when the stop signal was met; third, a ``submit_call`` job met
        while gathering (it runs alone, right after this batch)."""
        jobs, count = [first], len(first.images)
        deadline = time.monotonic() + self.window_s
        while count < self.max_batch:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                if not self._should_wait(deadline):
                    break
                try:
                    job = self._queue.get(timeout=0.001)
                except queue.Empty:
                    continue
            if job is None:
                return jobs, True, None
            if job.call is not None:
                return jobs, False, job
            if self._take(job):
                jobs.append(job)
                count += len(job.images)
        return jobs, False, None

    def _execute_call(self, job: _Job) -> None:
        """Run a ``submit_call`` job (already taken) and settle its future."""
        job.started = time.perf_counter()
        with self._computing(job.cost):  # off the books before its caller hears (it may ask again at once)
            try:
                result, error = job.call(), None
            except Exception as exc:  # noqa: BLE001 - reported to its caller
                result, error = None, exc
            job.finished = time.perf_counter()
        if error is not None:
            job.future.set_exception(error)
            return
        self._record(job.cost, job.finished - job.started)
        job.future.set_result(result)

    def _execute(self, jobs: list[_Job]) -> None:
        images = [image for job in jobs for image in job.images]
        started = time.perf_counter()
        for job in jobs:
            job.started, job.batch_size = started, len(images)
        try:
            results = self._predict(images, max(job.top_k for job in jobs))
            if len(results) != len(images):
                raise RuntimeError(f"predictor returned {len(results)} results for {len(images)} images")
        except Exception as exc:  # noqa: BLE001 - one failing batch must not fail its neighbours
            if len(jobs) > 1:
                for job in jobs:
                    self._execute([job])
                return
            log.exception("prediction failed")
            jobs[0].future.set_exception(exc)
            return
        finished = time.perf_counter()
        self._record(len(images), finished - started)
        start = 0
        for job in jobs:
            chunk = results[start : start + len(job.images)]
            start += len(job.images)
            job.finished = finished
            job.future.set_result([_truncate(r, job.top_k) for r in chunk])

