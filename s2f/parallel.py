"""Run a function over items in worker processes, or in this process when one worker is asked for.

Each worker of a pool runs on its own share of the cores this process may use (`core_shares`), and the ffmpeg it
starts inherits that share. Why: since version 7, ffmpeg runs a clip's demuxer, decoder, filters and muxer as threads
that hand frames to each other. Left to the scheduler, two workers' ffmpeg threads hop between the cores and wait
for each other. On 2 cores, with the demo's two ffmpeg calls per clip:
- one loop of them alone took 1.32 s;
- two loops at once took 1.79 s unpinned;
- two loops at once took 1.31 s with each pinned to its own core.
docs/scale.md has what pinning did to preprocessing.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from multiprocessing.pool import Pool
from typing import Any

MapFn = Callable[[Callable[[Any], Any], list], list]


def core_shares(workers: int, cores: list[int]) -> list[set[int]] | None:
    """`workers` disjoint sets of `cores`, as even as they divide (leftover cores go to the first sets); None when
    there are more workers than cores, where pinning would only stop the scheduler from balancing them."""
    if workers < 1 or workers > len(cores):
        return None
    size, extra = divmod(len(cores), workers)
    shares, start = [], 0
    for i in range(workers):
        end = start + size + (i < extra)
        shares.append(set(cores[start:end]))
        start = end
    return shares


def _pin_to_next_share(taken: Any, shares: list[set[int]]) -> None:
    """Pool initializer: take the next share and run on it (ffmpeg children inherit it). A worker the pool starts to
    replace one that died runs unpinned: which share the dead one held is not known here, and a guess could put two
    workers on one share while another share idles."""
    with taken.get_lock():
        index, taken.value = taken.value, taken.value + 1
    if index >= len(shares):
        return
    try:
        os.sched_setaffinity(0, shares[index])
    except OSError:  # a container that forbids it, or cores taken away since: run unpinned, as before
        pass


@contextmanager
def pinned_pool(workers: int) -> Iterator[Pool]:
    """A `multiprocessing` pool of `workers` processes, each pinned to its `core_shares` share where the platform
    allows it (Linux), unpinned otherwise."""
    shares = core_shares(workers, sorted(os.sched_getaffinity(0))) if hasattr(os, "sched_setaffinity") else None
    if shares is None:
        with multiprocessing.Pool(workers) as pool:
            yield pool
        return
    with multiprocessing.Pool(workers, initializer=_pin_to_next_share,
                              initargs=(multiprocessing.Value("i", 0), shares)) as pool:
        yield pool


@contextmanager
def process_map(workers: int) -> Iterator[MapFn]:
    """A `map(fn, items)` that keeps order; with `workers` ≤ 1 no process is started (easier to debug and profile)."""
    if workers <= 1:
        yield lambda fn, items: [fn(item) for item in items]
        return
    with pinned_pool(workers) as pool:
        yield lambda fn, items: pool.map(fn, items, chunksize=max(1, min(8, len(items) // (4 * workers))))


def process_imap(workers: int, fn: Callable[[Any], Any], items: Iterable, window: int = 0,
                 started: Callable[[], None] | None = None) -> Iterator:
    """Results in order, each as soon as it and those before it are done (a caller can act per finished group).

    `items` may be a lazy iterable: at most `window` items (default 4 per worker) are taken from it ahead of the
    results, so memory is bounded by the window, not by the input. (`Pool.imap` would drain the whole iterable
    into its task queue at once.) `started()` is called once the worker processes exist: the place to start a
    thread in this process, since a fork while a thread holds a lock (an import's, say) can deadlock the child.
    """
    if workers <= 1:
        yield from map(fn, items)
        return
    window = window or 4 * workers
    with pinned_pool(workers) as pool:
        if started is not None:
            started()
        in_flight: deque = deque()
        for item in items:
            in_flight.append(pool.apply_async(fn, (item,)))
            if len(in_flight) >= window:
                yield in_flight.popleft().get()
        while in_flight:
            yield in_flight.popleft().get()


def process_imap_unordered(workers: int, fn: Callable[[Any], Any], items: Iterable, window: int = 0,
                           started: Callable[[], None] | None = None) -> Iterator:
    """`process_imap`, but each result as soon as it is done, whatever came before it (callers tag items to place
    them). Why: in order, one slow item (a 1080p clip among 224² ones) holds back every later result, the window
    fills, and the other workers wait for it with nothing to do. At most `window` items are in flight."""
    if workers <= 1:
        yield from map(fn, items)
        return
    window = window or 4 * workers
    done: queue.SimpleQueue = queue.SimpleQueue()
    with pinned_pool(workers) as pool:
        if started is not None:
            started()
        in_flight = 0
        for item in items:
            pool.apply_async(fn, (item,), callback=lambda r: done.put((r, None)),
                             error_callback=lambda e: done.put((None, e)))
            in_flight += 1
            if in_flight >= window:
                yield _result(done.get())
                in_flight -= 1
        for _ in range(in_flight):
            yield _result(done.get())


def _result(outcome: tuple[Any, BaseException | None]) -> Any:
    result, error = outcome
    if error is not None:
        raise error
    return result
