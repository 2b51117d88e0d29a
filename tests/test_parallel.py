"""Worker pools: results as they finish (a slow item idles no one), bounded look-ahead, errors reach the caller,
each worker on cores of its own, and shards still assembled in item order by the shard engine."""

import multiprocessing
import os
import time

import pytest

from s2f.parallel import _pin_to_next_share, core_shares, process_imap_unordered, process_map
from s2f.shard_engine import ShardEngine, ShardKind, ShardTask


def _nap(item: tuple[int, float]) -> int:
    number, seconds = item
    time.sleep(seconds)
    return number


def _fail_on_three(number: int) -> int:
    if number == 3:
        raise ValueError("item 3 is bad")
    return number


def test_a_slow_item_does_not_hold_back_the_results_after_it():
    items = [(0, 1.5)] + [(n, 0.05) for n in range(1, 8)]
    order = list(process_imap_unordered(2, _nap, items))
    assert sorted(order) == list(range(8))
    assert order.index(0) >= 5  # the other worker went on with the rest meanwhile


def test_the_pool_takes_at_most_a_window_of_items_ahead_of_the_results():
    pulled = []

    def items():
        for n in range(20):
            pulled.append(n)
            yield n, 0.01

    ahead = []
    for _ in process_imap_unordered(2, _nap, items(), window=3):
        ahead.append(len(pulled))
    assert len(ahead) == 20
    assert max(pulled_then - seen for seen, pulled_then in enumerate(ahead)) <= 3


def test_an_error_in_a_worker_reaches_the_caller():
    with pytest.raises(ValueError, match="item 3 is bad"):
        list(process_imap_unordered(2, _fail_on_three, range(6)))


def test_core_shares_split_the_cores_into_disjoint_even_sets():
    assert core_shares(2, [0, 1]) == [{0}, {1}]
    shares = core_shares(3, list(range(8)))
    assert [len(s) for s in shares] == [3, 3, 2]
    assert set().union(*shares) == set(range(8)) and sum(map(len, shares)) == 8  # every core once
    assert core_shares(1, [4, 5]) == [{4, 5}]
    assert core_shares(3, [0, 1]) is None  # more workers than cores: the scheduler balances them


def _where(item: float) -> tuple[int, frozenset[int]]:
    time.sleep(item)
    return os.getpid(), frozenset(os.sched_getaffinity(0))


def _mapped(items: list[float]) -> list:
    with process_map(2) as map_:
        return map_(_where, items)


def _can_pin() -> bool:
    """Linux, 2 cores or more, and allowed to pin (some containers forbid it)."""
    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        return False
    try:
        os.sched_setaffinity(0, os.sched_getaffinity(0))
    except OSError:
        return False
    return True


pinning = pytest.mark.skipif(not _can_pin(), reason="needs Linux, 2 cores and permission to pin a process to them")


@pinning
@pytest.mark.parametrize("run", [lambda items: list(process_imap_unordered(2, _where, items)), _mapped],
                         ids=["imap_unordered", "map"])
def test_each_worker_runs_on_its_own_cores(run):
    cores = os.sched_getaffinity(0)
    seen = dict(run([0.2] * 6))  # long enough that both workers take items
    assert len(seen) == 2
    first, second = seen.values()
    assert first and second and not first & second and first | second <= cores
    assert os.sched_getaffinity(0) == cores  # this process is not pinned


def _refuse(*args) -> None:
    raise PermissionError("sched_setaffinity: operation not permitted")


@pinning
def test_workers_that_may_not_pin_themselves_run_unpinned(monkeypatch):
    monkeypatch.setattr(os, "sched_setaffinity", _refuse)  # the forked workers inherit the refusal
    seen = dict(process_imap_unordered(2, _where, [0.2] * 6))
    assert set(seen.values()) == {frozenset(os.sched_getaffinity(0))}


@pinning
def test_a_replacement_worker_runs_unpinned_rather_than_on_a_share_in_use():
    shares, taken = [{0}, {1}], multiprocessing.Value("i", 2)  # both shares already handed out
    before = os.sched_getaffinity(0)
    _pin_to_next_share(taken, shares)
    assert os.sched_getaffinity(0) == before and taken.value == 3


def test_one_worker_runs_in_this_process_in_order():
    assert list(process_imap_unordered(1, _fail_on_three, [0, 1, 2])) == [0, 1, 2]


def test_shards_keep_their_items_order_when_results_come_back_out_of_order(tmp_path):
    # the first items of each shard are the slowest, so they finish last
    tasks = [ShardTask(f"shard-{s:05d}.npz", f"key{s}",
                       lambda s=s: [(10 * s + k, 0.3 if k == 0 else 0.01) for k in range(4)]) for s in range(3)]
    engine = ShardEngine(ShardKind("test", "sample_shard", rules=lambda: None), tmp_path / "work")
    records = engine.run(tasks, _nap, 2, finish=lambda task, results: {"name": task.name, "items": results})
    assert [r["items"] for r in records] == [[10 * s + k for k in range(4)] for s in range(3)]
