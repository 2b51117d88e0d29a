"""The shard protocol every per-shard stage shares (preprocess, features, and any later one).

A stage hands the engine its shards as tasks — a name, a work key (a content hash of everything the shard depends
on) and a loader of the shard's items — plus a per-item function and a function that turns a shard's results into
arrays. The engine does the rest, identically for every stage:

- **resume**: a shard counts as done only once its record is written (last, atomically, in the work folder, with
  its files' sizes and hashes); a run killed mid-way, or rerun with changed inputs, redoes exactly the shards whose
  record is missing, stale or no longer matches its files;
- **validation**: each shard is validated with Great Expectations as it is written; the deterministic verdict goes
  beside it, GX's full result (run ids, timestamps) to `gx/results/`, Data Docs to `gx/docs/`;
- **quarantine**: a shard failing its suite is moved to `quarantine/` with its verdict and never read as data;
- **stale removal**: files of shards that are no longer part of the corpus leave the work folder;
- **publishing**: finished shards and their verdicts are hard-linked into the DVC output.

Why a work folder apart from the output: DVC empties a stage's outputs before it runs, so records kept there would
be gone when a killed `dvc repro` is rerun. Why items flow through one bounded window across shards: a slow shard
does not idle the other processes, and memory is bounded by the window, not by the corpus.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s2f.io.data_docs import write_offline_index
from s2f.io.hashing import HashCache
from s2f.io.shards import (GX_DOCS, GX_RESULTS, link_or_copy, move_to_quarantine, read_record, read_shard, record_name,
                           verdict_name, write_record, write_shard)
from s2f.parallel import process_imap_unordered
from s2f.progress import Progress


@dataclass(frozen=True)
class ShardTask:
    """One shard to make: its file name, its work key, and its items (loaded only if the shard must be made)."""

    name: str
    key: str
    items: Callable[[], Sequence[Any]]


@dataclass(frozen=True)
class ShardKind:
    """What the engine needs to know about a stage's shards."""

    stage: str                    # for log lines: "preprocess", "features"
    suite: str                    # the Great Expectations suite: "sample_shard", "feature_shard"
    rules: Callable[[], Any]      # → ShardRules; called on first validation (a GX context takes seconds)
    unit: str = "items"           # what one item is, in progress lines: "clips", "faces"


class _Empty:
    """Stands for the one item of a shard with no items, so it still passes through the window and is finished."""

    def __reduce__(self) -> str:
        return "_EMPTY"  # the same singleton in every process


_EMPTY = _Empty()


@dataclass(frozen=True)
class _Placed:
    """Runs `work` on a (shard, position, item) triple in a worker and returns (shard, position, result), so that
    results, which come back in the order they finish, find their shard and their place in it."""

    work: Callable[[Any], Any]

    def __call__(self, placed: tuple[int, int, Any]) -> tuple[int, int, Any]:
        shard, position, item = placed
        return shard, position, item if item is _EMPTY else self.work(item)


class _Finisher:
    """Runs shard finishing in one thread beside the loop feeding the workers (or inline, when not `threaded`).

    At most one finished shard waits behind the one being written, so the results held in memory stay bounded by
    two shards however far the workers run ahead. Exceptions surface in the caller, at the latest on exit.
    """

    def __init__(self, threaded: bool):
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="shard-finisher") if threaded else None
        self._pending: deque[Future] = deque()
        self._beside: list[threading.Thread] = []

    def start_beside(self, fn: Callable[[], Any]) -> None:
        """Run `fn` on a thread of its own now, joined on exit (its error is not raised here: it resurfaces when
        the finishing thread makes the same call)."""
        thread = threading.Thread(target=_quietly(fn), name="shard-warm-up", daemon=True)
        thread.start()
        self._beside.append(thread)

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        if self._pool is None:
            fn(*args)
            return
        while self._pending and (self._pending[0].done() or len(self._pending) >= 2):
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(fn, *args))

    def __enter__(self) -> "_Finisher":
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._pool is not None and exc[0] is None:
                while self._pending:
                    self._pending.popleft().result()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
            for thread in self._beside:
                thread.join()


def _quietly(fn: Callable[[], Any]) -> Callable[[], None]:
    def run() -> None:
        try:
            fn()
        except Exception:  # noqa: BLE001 - the finishing thread makes the same call and reports the error
            pass
    return run


def published_files(name: str, validation: dict | None) -> list[str]:
    """The files a finished shard leaves, relative to its folder: the shard (or its quarantined copy) and its
    verdict; none when the shard had no rows to write."""
    if validation is None:
        return []
    return [name if validation["success"] else f"quarantine/{name}", verdict_name(name)]


class ShardEngine:
    """Makes, validates, records and publishes one stage's shards in `work_dir`; one per run, in the parent process."""

    def __init__(self, kind: ShardKind, work_dir: Path):
        self.kind, self.work_dir = kind, Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._validator = None
        self._validator_lock = threading.Lock()  # made by a warm-up thread, used by the finishing one
        self._threads = 1                        # for decoding a shard read back: the run's worker count
        self._validated = False                  # a shard was validated in this run: its Data Docs are due

    @contextmanager
    def hash_cache(self) -> Iterator[HashCache]:
        """Content hashes keyed by file stat; open it only around key building and record checks, never across
        the fork of worker processes (a SQLite connection must not cross a fork)."""
        with HashCache(self.work_dir / "hashes.sqlite") as cache:
            yield cache

    @property
    def validator(self):
        with self._validator_lock:
            if self._validator is None:
                from s2f.validation import ShardValidator

                self._validator = ShardValidator(self.kind.rules())
            return self._validator

    # ------------------------------------------------------------------------------------------------ one shard

    def finish(self, name: str, key: str, arrays: dict | None,
               payload: Callable[[dict | None], dict] = lambda validation: {}) -> dict:
        """Write `arrays` as shard `name` (none when it has no rows), validate it as read back, quarantine it if it
        fails, and write its record last; `payload(validation)` adds the stage's own fields to the record."""
        from s2f.validation import write_result, write_verdict

        (self.work_dir / record_name(name)).unlink(missing_ok=True)  # no old record may vouch for new content
        (self.work_dir / name).unlink(missing_ok=True)
        validation = None
        if arrays is not None:
            write_shard(self.work_dir / name, arrays)
            stored = read_shard(self.work_dir / name, threads=self._threads)  # validate what later stages read
            outcome = self.validator.validate_arrays(self.kind.suite, stored, name)
            self._validated = True
            write_verdict(outcome, self.work_dir / verdict_name(name))
            write_result(outcome, self.work_dir / GX_RESULTS / f"{Path(name).stem}.json")
            if not outcome.success:
                move_to_quarantine(self.work_dir, name)
            validation = {"success": outcome.success, "failures": outcome.failures}
        record = {**payload(validation), "validation": validation}
        write_record(self.work_dir / record_name(name), key, record, self.work_dir,
                     published_files(name, validation))
        return record

    # ------------------------------------------------------------------------------------------------ the run

    def run(self, tasks: Sequence[ShardTask], work: Callable[[Any], Any], workers: int,
            finish: Callable[[ShardTask, list], dict],
            describe: Callable[[dict], str] = lambda record: "") -> list[dict]:
        """Every task's record, in task order: verified ones reused, the rest made now.

        The items of all unfinished shards flow through one window of worker processes, and come back as each is
        done (a slow clip does not idle the other workers); a shard is finished (`finish(task, results)`, results in
        item order, which calls `self.finish`) as soon as its last item is back. Memory is bounded by the window:
        at most that many shards wait for an item at a time. With more than one
        worker, what this process does alone is taken off the workers' path (issue 14: it capped the speed-up
        from 1 to 2 processes at 1.4×): the Great Expectations context (seconds to import and build) is made by a
        thread while the first items are worked on, and shards are finished by a thread of their own while the
        workers go on with the next shard, one shard waiting at most (memory stays bounded). With one worker
        everything runs in this thread, in order (the mode for debugging and profiling).
        """
        with self.hash_cache() as hashes:
            records = [read_record(self.work_dir / record_name(t.name), t.key, self.work_dir, hashes) for t in tasks]
        todo = [i for i, record in enumerate(records) if record is None]
        print(f"{self.kind.stage}: {len(tasks)} shards; {len(tasks) - len(todo)} already done, {len(todo)} to do "
              f"with {workers} processes", flush=True)
        self._threads = max(1, workers)
        results: dict[int, list] = {}
        waiting: dict[int, int] = {}  # items of shard i not back yet

        def placed_items() -> Iterator[tuple[int, int, Any]]:  # runs in this process, one shard loaded at a time
            for i in todo:
                loaded = tasks[i].items()
                results[i], waiting[i] = [None] * len(loaded), max(len(loaded), 1)
                yield from ((i, k, item) for k, item in enumerate(loaded)) if len(loaded) else [(i, 0, _EMPTY)]

        def finish_one(i: int, shard_results: list) -> None:
            records[i] = finish(tasks[i], shard_results)
            done.append(i)
            detail = describe(records[i])
            print(f"{self.kind.stage}: {tasks[i].name} done ({len(done)} of {len(todo)})"
                  + (f": {detail}" if detail else ""), flush=True)

        done: list[int] = []
        with _Finisher(threaded=workers > 1) as finisher, Progress(self.kind.stage, unit=self.kind.unit) as shown:
            warm_up = (lambda: finisher.start_beside(lambda: self.validator)) if workers > 1 and todo else None
            for i, k, result in process_imap_unordered(workers, _Placed(work), placed_items(), started=warm_up):
                if result is not _EMPTY:
                    results[i][k] = result
                    shown.update(1, shards=f"{len(done)} of {len(todo)} done")
                waiting[i] -= 1
                if not waiting[i]:
                    finisher.submit(finish_one, i, results.pop(i))
        return records

    def publish(self, out_dir: Path, tasks: Sequence[ShardTask], records: Sequence[dict],
                corpus: set[str] | None = None) -> None:
        """Drop files of shards no longer in the corpus (default: the tasks; a partition names all shards of the
        corpus, since other partitions may share the work folder), render Data Docs, link finished shards into
        `out_dir`."""
        self.remove_stale(corpus if corpus is not None else {t.name for t in tasks})
        if self._validated:  # pages for this run's shards (a resumed run keeps the earlier pages)
            self._validator.build_data_docs(self.work_dir / GX_DOCS)
        if (self.work_dir / GX_RESULTS).is_dir():  # every shard's verdict, also after a run that validated none
            write_offline_index(self.work_dir / GX_DOCS, self.work_dir / GX_RESULTS, self.kind.stage)
        if Path(out_dir).resolve() == self.work_dir.resolve():
            return
        for task, record in zip(tasks, records):
            for file in published_files(task.name, record["validation"]):
                link_or_copy(self.work_dir / file, Path(out_dir) / file)

    def remove_stale(self, names: set[str]) -> None:
        """Shards (and their records, verdicts, GX results) left from a larger or different earlier corpus."""
        stems = {Path(name).stem for name in names}
        prefix = next(iter(stems), "").rsplit("-", 1)[0]
        if not prefix:
            return
        for folder in (self.work_dir, self.work_dir / "quarantine", self.work_dir / "validation",
                       self.work_dir / GX_RESULTS):
            for path in folder.glob(f"{prefix}-*"):
                if path.name.split(".")[0] not in stems:
                    path.unlink()
