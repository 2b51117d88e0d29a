"""The shard engine's finishing thread: shards are finished in order, at most one waits, and errors surface."""

import threading
import time

import pytest

from s2f.shard_engine import _Finisher


def test_threaded_finishing_runs_every_shard_in_order_off_the_calling_thread():
    finished, threads = [], set()

    def finish(i):
        time.sleep(0.01)
        finished.append(i)
        threads.add(threading.current_thread().name)

    with _Finisher(threaded=True) as finisher:
        for i in range(6):
            finisher.submit(finish, i)
    assert finished == list(range(6))
    assert threads and threading.current_thread().name not in threads


def test_at_most_one_finished_shard_waits_behind_the_one_being_written():
    release, waiting = threading.Event(), []

    def slow(i):
        release.wait(5)

    with _Finisher(threaded=True) as finisher:
        finisher.submit(slow, 0)
        finisher.submit(slow, 1)          # queued behind shard 0
        caller = threading.Thread(target=lambda: (finisher.submit(slow, 2), waiting.append("returned")))
        caller.start()
        caller.join(0.3)
        assert waiting == []              # the third submit blocks: its results stay with the caller
        release.set()
        caller.join(5)
    assert waiting == ["returned"]


def test_an_error_while_finishing_reaches_the_caller():
    def fail(i):
        raise ValueError(f"shard {i} is broken")

    with pytest.raises(ValueError, match="shard 0 is broken"):
        with _Finisher(threaded=True) as finisher:
            finisher.submit(fail, 0)


def test_without_threads_a_shard_is_finished_before_submit_returns():
    finished = []
    with _Finisher(threaded=False) as finisher:
        finisher.submit(finished.append, 1)
        assert finished == [1]
