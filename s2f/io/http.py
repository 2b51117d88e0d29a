"""Waiting for a local server (Prefect, MLflow tracking, `mlflow models serve`) to answer: one loop, used by the
control plane, the tests and the benchmarks."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable


def answers(url: str, timeout: float = 2.0) -> bool:
    """Whether a GET of `url` returns 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def wait_until_answers(url: str, seconds: float, gave_up: Callable[[], bool] = lambda: False) -> bool:
    """Poll `url` every 0.5 s for up to `seconds`; False when it never answered or `gave_up()` (say, the server
    process exited) turned true first. Counted in polls, not by the clock, so a jumpy VM clock cannot stretch it."""
    for _ in range(max(int(seconds / 0.5), 1)):
        if answers(url):
            return True
        if gave_up():
            return False
        time.sleep(0.5)
    return answers(url)
