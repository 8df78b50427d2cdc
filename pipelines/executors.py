"""Where a batch's studies run: in this process, in a local process pool, or on Dask.

An executor maps a picklable function over items and yields ``(item, result)`` pairs in
completion order; ``result`` is the function's return value or the exception that stopped
it (an executor never raises for one item's failure, so the batch goes on). Items are fed
lazily with a bounded number in flight, so a batch of thousands of studies neither queues
every task at once nor waits for the slowest before reporting progress.

Division of labour (the batch's choice, see :mod:`octoscan.pipelines.batch`): workers read
the inputs and return each study's files as bytes; only the parent process writes into the
output folder. On Dask, inputs must therefore be readable at the same paths on every worker
(a shared file system); the output folder need only exist where ``octoscan run`` runs.

* :class:`SerialExecutor`: in this process, one item at a time (``--workers 1``).
* :class:`LocalProcessExecutor`: a :class:`concurrent.futures.ProcessPoolExecutor` started
  with the ``spawn`` method (no state inherited from the parent). Workers start with
  BLAS/OpenMP limited to one thread each (unless the environment says otherwise): the
  variables are set in the environment the worker process is started with, since those
  libraries read them once, when they load, and a spawned worker loads numpy before its
  initializer runs (while re-importing the parent's main module). The initializer
  configures logging and imports the heavy modules (numpy, scipy, scikit-image, pydicom and the
  scoring code) once per worker. As with any ``spawn`` pool, a script calling the batch API
  must guard its entry point with ``if __name__ == "__main__":``. A worker that dies (a
  crash in a native decoder, the out-of-memory killer) breaks the pool: the pool is
  restarted and the items that were in flight are re-run one at a time, so the item that
  kills its worker again is reported with :class:`WorkerCrashedError` and the others
  complete.
* :class:`DaskExecutor`: a ``dask.distributed`` client connected to a running scheduler
  (``--dask tcp://HOST:PORT``); dask itself is imported only here.
"""

from __future__ import annotations

import abc
import atexit
import importlib
import logging
import multiprocessing
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

from octoscan.imaging.errors import InvalidInputError

__all__ = [
    "DASK_UNAVAILABLE",
    "HEAVY_MODULES",
    "DaskExecutor",
    "LocalProcessExecutor",
    "SerialExecutor",
    "StudyExecutor",
    "WorkerCrashedError",
    "default_workers",
    "make_executor",
]

T = TypeVar("T")
R = TypeVar("R")

DASK_UNAVAILABLE = "dask_unavailable"

# Imported once by each local worker process before its first study.
HEAVY_MODULES: tuple[str, ...] = (
    "numpy",
    "scipy.ndimage",
    "skimage.measure",
    "pydicom",
    "octoscan.pipelines.study",
    "octoscan.pipelines.outputs",
    "octoscan.pipelines.resume",
    "octoscan.pipelines.batch",
)

_LOG = logging.getLogger(__name__)
_IN_FLIGHT_PER_WORKER = 2
_ORPHAN_POLL_S = 1.0
_THREAD_ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


class WorkerCrashedError(RuntimeError):
    """The worker process died while running this item (it did so twice, once alone)."""


def default_workers() -> int:
    """Default number of local worker processes: the number of CPUs."""
    return os.cpu_count() or 1


def _exit_when_orphaned(parent_pid: int, interval_s: float) -> None:
    """Poll the parent's PID; end this worker when the parent is gone (e.g. SIGKILLed)."""
    while True:
        time.sleep(interval_s)
        if os.getppid() != parent_pid:
            os._exit(1)


@contextmanager
def _single_thread_env() -> Iterator[None]:
    """Within the block, the variables of ``_THREAD_ENV`` that are unset read "1", so that a
    process started there (a spawned worker) runs BLAS/OpenMP on one thread; the parent's
    environment is restored afterwards. A variable the user set is left as it is."""
    added = [name for name in _THREAD_ENV if name not in os.environ]
    for name in added:
        os.environ[name] = "1"
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def _exit_without_teardown() -> None:
    """End a worker process at once when it exits: flush logging and the standard streams,
    then ``os._exit(0)``, skipping the interpreter's teardown of every loaded module (about
    0.5 s per worker after a batch, during which ``shutdown(wait=True)`` waits). A pool
    worker has nothing left to do then: its results went back on a queue written
    synchronously, and it holds no files open for writing."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError, AttributeError):
            stream.flush()
    os._exit(0)


def _worker_init(log_level: int, modules: tuple[str, ...]) -> None:
    """Initializer of a local worker process: logging to stderr, heavy imports once, a
    watchdog thread so that a worker never outlives a killed parent by more than a second,
    and a fast exit (:func:`_exit_without_teardown`, registered first so that exit handlers
    added later, by modules a study imports, still run before it). (The one-thread
    BLAS/OpenMP variables come with the process's environment.)"""
    atexit.register(_exit_without_teardown)
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s [worker]: %(message)s")
    threading.Thread(
        target=_exit_when_orphaned,
        args=(os.getppid(), _ORPHAN_POLL_S),
        name="octoscan-orphan-watchdog",
        daemon=True,
    ).start()
    for name in modules:
        importlib.import_module(name)


class StudyExecutor(abc.ABC):
    """Runs ``fn`` over items; see the module docstring. Use as a context manager."""

    name: str = "executor"

    @property
    @abc.abstractmethod
    def slots(self) -> int:
        """How many items run at the same time."""

    @abc.abstractmethod
    def map_unordered(
        self, fn: Callable[[T], R], items: Iterable[T]
    ) -> Iterator[tuple[T, R | BaseException]]:
        """Yield ``(item, fn(item) or the exception it raised)`` as items finish."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release workers and connections."""

    def describe(self) -> str:
        return f"{self.name} ({self.slots} worker(s))"

    def __enter__(self) -> StudyExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SerialExecutor(StudyExecutor):
    """Runs every item in the calling process, in order."""

    name = "serial"

    @property
    def slots(self) -> int:
        return 1

    def map_unordered(
        self, fn: Callable[[T], R], items: Iterable[T]
    ) -> Iterator[tuple[T, R | BaseException]]:
        for item in items:
            try:
                result: R | BaseException = fn(item)
            except Exception as exc:
                result = exc
            yield item, result


class LocalProcessExecutor(StudyExecutor):
    """A pool of ``workers`` spawned processes on this machine."""

    name = "local processes"

    def __init__(
        self,
        workers: int | None = None,
        *,
        log_level: int | None = None,
        preload: tuple[str, ...] = HEAVY_MODULES,
    ) -> None:
        n = default_workers() if workers is None else workers
        if n < 1:
            raise InvalidInputError(
                f"workers {n}: expected 1 or more worker processes", code="invalid_option"
            )
        self._workers = n
        if log_level is None:
            log_level = logging.getLogger().getEffectiveLevel()
        self._log_level = log_level
        self._preload = preload
        self._pool: ProcessPoolExecutor | None = None
        self.n_pool_restarts = 0

    @property
    def slots(self) -> int:
        return self._workers

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self._workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init,
                initargs=(self._log_level, self._preload),
            )
        return self._pool

    def _submit(self, fn: Callable[[T], R], item: T) -> Future[R]:
        # the pool starts its worker processes on demand, inside submit
        with _single_thread_env():
            return self._ensure_pool().submit(fn, item)

    def _restart_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None
        self.n_pool_restarts += 1

    def map_unordered(
        self, fn: Callable[[T], R], items: Iterable[T]
    ) -> Iterator[tuple[T, R | BaseException]]:
        source = iter(items)
        suspects: deque[T] = deque()  # in flight when a worker died: re-run one at a time
        unsent: deque[T] = deque()  # refused by a pool that broke before they were sent
        pending: dict[Future[R], tuple[T, bool]] = {}  # future -> (item, running alone)
        window = self._workers * _IN_FLIGHT_PER_WORKER
        exhausted = False

        def send(item: T, alone: bool) -> bool:
            # a worker may die between two submits: the pool then refuses new items at once
            try:
                pending[self._submit(fn, item)] = (item, alone)
            except BrokenProcessPool:
                return False
            return True

        while True:
            if not pending and suspects:
                item = suspects.popleft()
                if not send(item, True):
                    suspects.appendleft(item)
                    self._restart_pool()
                    continue
            refused = False
            while not suspects and len(pending) < window and (unsent or not exhausted):
                if unsent:
                    item = unsent.popleft()
                else:
                    try:
                        item = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                if not send(item, False):
                    unsent.appendleft(item)
                    refused = True
                    break
            if refused and not pending:
                self._restart_pool()
                continue
            if not pending:
                if exhausted and not suspects and not unsent:
                    return
                continue
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                item, alone = pending.pop(future)
                try:
                    result: R | BaseException = future.result()
                except BrokenProcessPool:
                    broken = True
                    if alone:
                        yield (
                            item,
                            WorkerCrashedError(
                                "the worker process died while processing this item, twice "
                                "(the second time alone): a crash in native code or the "
                                "out-of-memory killer"
                            ),
                        )
                    else:
                        suspects.append(item)
                    continue
                except Exception as exc:
                    result = exc
                yield item, result
            if broken:
                # Every other future of the dead pool fails too: collect them as suspects.
                for future in list(pending):
                    item, alone = pending.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        suspects.append(item)
                        continue
                    except Exception as exc:
                        result = exc
                    yield item, result
                _LOG.warning(
                    "a worker process died; restarting the pool and re-running %d "
                    "item(s) one at a time",
                    len(suspects),
                )
                self._restart_pool()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class DaskExecutor(StudyExecutor):
    """Items run as tasks on a ``dask.distributed`` cluster reached at ``address``."""

    name = "dask"

    def __init__(self, address: str, *, timeout_s: float = 20.0) -> None:
        try:
            from distributed import Client
        except ImportError as exc:
            raise InvalidInputError(
                "--dask needs dask.distributed, which is not installed; install it with "
                "`pip install 'octoscan[dask]'`",
                code=DASK_UNAVAILABLE,
            ) from exc
        try:
            self._client = Client(address, timeout=timeout_s, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise InvalidInputError(
                f"cannot connect to the Dask scheduler at {address!r} within {timeout_s:g} s "
                f"({type(exc).__name__}: {exc}); expected a running scheduler, e.g. "
                "tcp://127.0.0.1:8786",
                code=DASK_UNAVAILABLE,
            ) from exc
        self.address = address

    @property
    def slots(self) -> int:
        info = self._client.scheduler_info()
        workers: dict[str, Any] = info.get("workers", {})
        return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))

    def map_unordered(
        self, fn: Callable[[T], R], items: Iterable[T]
    ) -> Iterator[tuple[T, R | BaseException]]:
        from distributed import as_completed

        source = iter(items)
        window = max(2, self.slots * _IN_FLIGHT_PER_WORKER)
        pending: dict[Any, T] = {}
        queue = as_completed(loop=self._client.loop)

        def submit_next() -> bool:
            try:
                item = next(source)
            except StopIteration:
                return False
            future = self._client.submit(fn, item, pure=False)
            pending[future] = item
            queue.add(future)
            return True

        for _ in range(window):
            if not submit_next():
                break
        for future in queue:
            item = pending.pop(future)
            try:
                result: R | BaseException = future.result()
            except Exception as exc:  # the task raised, or its workers died (KilledWorker)
                result = exc
            future.release()
            yield item, result
            submit_next()

    def describe(self) -> str:
        return f"dask at {self.address} ({self.slots} worker thread(s))"

    def close(self) -> None:
        self._client.close()


def make_executor(*, workers: int | None = None, dask_address: str | None = None) -> StudyExecutor:
    """The executor for ``octoscan run``: Dask when an address is given, otherwise serial
    for one worker and a local process pool for more (default: one per CPU)."""
    if dask_address is not None:
        if workers is not None:
            raise InvalidInputError(
                "--workers and --dask exclude each other: a Dask cluster's size is set when "
                "its workers are started",
                code="invalid_option",
            )
        return DaskExecutor(dask_address)
    n = default_workers() if workers is None else workers
    if n < 1:
        raise InvalidInputError(
            f"workers {n}: expected 1 or more worker processes", code="invalid_option"
        )
    return SerialExecutor() if n == 1 else LocalProcessExecutor(n)
