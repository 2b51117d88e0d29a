"""Progress of a long step (clips of a stage, epochs of training), shown the way its reader sees it.

On a terminal: a tqdm bar on stderr, redrawn in place. Anywhere else — CI logs, `dvc repro > log`, a Prefect worker
that forwards each line to the flow-run log — a redrawn bar would pile up, so a plain line goes to stdout at most
every `every` seconds and once at the end: the log stays short and a watcher still sees the step move.
`S2F_PROGRESS` overrides the choice: `bar`, `lines` or `off`.
"""

from __future__ import annotations

import os
import sys
import time


def progress_mode() -> str:
    """`bar` on a terminal, `lines` elsewhere, unless S2F_PROGRESS says otherwise."""
    chosen = os.environ.get("S2F_PROGRESS", "").strip().lower()
    if chosen in ("bar", "lines", "off"):
        return chosen
    return "bar" if sys.stderr.isatty() else "lines"


class Progress:
    """`update(n, **shown)` after each piece of work; `close()` (or the `with` block's end) prints the last line.

    `total` may be None when it is not known ahead (a line then gives the count and the rate only)."""

    def __init__(self, label: str, total: int | None = None, unit: str = "clips", every: float = 30.0,
                 mode: str | None = None):
        self.label, self.total, self.unit, self.every = label, total, unit, every
        self.mode = mode or progress_mode()
        self.done, self.shown = 0, ""
        self._start = self._last = time.monotonic()
        self._first: tuple[float, int] | None = None   # (when, done) at the first update: the rate is measured
        self._bar = None                                # from there, past the start-up before the first item
        if self.mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=label, unit=f" {unit}", file=sys.stderr, dynamic_ncols=True,
                             leave=True)  # the finished bar stays: how long the step took

    def update(self, n: int = 1, **shown: float | str) -> None:
        self.done += n
        if self._first is None:
            self._first = (time.monotonic(), self.done)
        self.shown = _shown(shown) if shown else self.shown
        if self._bar is not None:
            self._bar.update(n)
            if shown:
                self._bar.set_postfix_str(self.shown, refresh=False)
        elif self.mode == "lines" and time.monotonic() - self._last >= self.every:
            self._line()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.mode == "lines" and self.done and time.monotonic() - self._start >= self.every:
            self._line()  # a step that took longer than one interval ends with its total; a quick one stays silent

    def line(self) -> str:
        """What a line says now: done (of total), rate and time left once measurable, the step's own numbers."""
        text = f"{self.label}: {self.done}" + (f" of {self.total}" if self.total else "") + f" {self.unit}"
        if self.total:
            text += f" ({100 * self.done / self.total:.0f} %)"
        rate = self.rate()
        if rate is not None:
            text += f", {rate:.2f} {self.unit}/s" if rate < 10 else f", {rate:.0f} {self.unit}/s"
            if self.total and self.done < self.total and rate > 0:
                text += f", about {_duration((self.total - self.done) / rate)} left"
        return text + (f"; {self.shown}" if self.shown else "")

    def rate(self) -> float | None:
        """Items per second since the first update (None before a second item: one item has no rate)."""
        if self._first is None or self.done <= self._first[1]:
            return None
        return (self.done - self._first[1]) / max(time.monotonic() - self._first[0], 1e-9)

    def _line(self) -> None:
        print(self.line(), flush=True)
        self._last = time.monotonic()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _shown(values: dict[str, float | str]) -> str:
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"
