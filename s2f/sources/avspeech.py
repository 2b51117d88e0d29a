"""AVSpeech segments fetched from YouTube with yt-dlp: validated, rate-limited, resumable.

AVSpeech ships only (youtube_id, start, end, face_x, face_y) rows; the media lives on YouTube, where a large share of
the videos is gone by now. So the fetch is built for partial failure:

- every CSV row is validated before anything touches the network, so a malformed id never reaches yt-dlp or a
  filename (`read_avspeech_csv`);
- a sqlite ledger (`<out_dir>/ledger.sqlite`) remembers each segment's outcome, so a rerun never downloads a
  finished clip again, never retries a dead video, and retries a rate-limited or network failure only after
  `retry_after_hours`;
- requests are spaced to `requests_per_minute`, transient errors are retried with exponential backoff (or the
  server's Retry-After), and a run stops early when YouTube is plainly unreachable or rate-limiting us;
- only the [start, end] section is downloaded (yt-dlp `download_ranges`, cut by ffmpeg), never the whole video.

yt-dlp is used through its Python API (no shell, no config files, no cookies).
"""

from __future__ import annotations

import contextlib
import contextvars
import csv
import email.utils
import json
import math
import re
import shutil
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from s2f.config import AvspeechSourceParams
from s2f.partitions import Partition
from s2f.io.media import MediaError, ffmpeg_exe, probe
from s2f.progress import Progress

YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
REJECTED_COLUMNS = ["row", "reason", "detail"]
PERMANENT_REASONS = frozenset({"video_unavailable", "private_video", "copyright"})
# Consecutive segments ending in one of these mean the service (not the video) is the problem: stop the run
# rather than hammer an unreachable or rate-limiting server with the rest of the list.
_SERVICE_REASONS = frozenset({"network_error", "http_429"})
_MAX_SERVICE_FAILURES_IN_A_ROW = 3
_DETAIL_CHARS = 300

# --------------------------------------------------------------------------------------------------------- CSV rows


@dataclass(frozen=True)
class Segment:
    """One AVSpeech row: a [start, end] section of a YouTube video and the speaker's normalised face position."""

    youtube_id: str
    start: float
    end: float
    face_x: float
    face_y: float
    row: int  # 0-based position among the CSV's data rows (header excluded), for error reports

    @property
    def sample_id(self) -> str:
        """`yt<id>_<start ms>_<end ms>`: unique per section and safe as a filename (the id is validated); the
        prefix keeps ids that start with `-` or `_` (1 in 32 YouTube ids) from looking like options."""
        return f"yt{self.youtube_id}_{self.start * 1000:.0f}_{self.end * 1000:.0f}"


class RowError(ValueError):
    def __init__(self, reason: str, detail: str):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")


_ID_NAMES = ("id", "youtube_id", "ytid", "video_id")


def _column_positions(first_row: list[str]) -> tuple[list[int], bool]:
    """Where id, start, end, x, y sit, and whether `first_row` is a header.

    The official CSV has no header (`id,start,end,x,y`); Kaggle subsets add one, with a leading unnamed index column.
    """
    names = [c.strip().lower() for c in first_row]
    if "start" in names and "end" in names:
        id_col = next((i for i, n in enumerate(names) if n in _ID_NAMES), None)
        missing = [n for n in ("start", "end", "x", "y") if n not in names]
        if id_col is None or missing:
            raise ValueError(f"AVSpeech CSV header {first_row} lacks an id column or {missing}")
        return [id_col, names.index("start"), names.index("end"), names.index("x"), names.index("y")], True
    return [0, 1, 2, 3, 4], False


def _number(text: str, reason: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise RowError(reason, f"{what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise RowError(reason, f"{what} {text!r} is not finite")
    return value


def parse_row(fields: list[str], positions: list[int], row: int) -> Segment:
    """One validated segment, or `RowError` naming why the row is unusable."""
    if len(fields) <= max(positions):
        raise RowError("bad_row", f"{len(fields)} fields, expected at least {max(positions) + 1}")
    vid, start, end, x, y = (fields[i].strip() for i in positions)
    if not YOUTUBE_ID.match(vid):
        raise RowError("malformed_youtube_id", repr(vid[:40]))
    t0, t1 = _number(start, "bad_time", "start"), _number(end, "bad_time", "end")
    if t0 < 0:
        raise RowError("bad_time", f"start {t0} < 0")
    if t1 <= t0:
        raise RowError("end_before_start", f"start {t0} >= end {t1}")
    fx, fy = _number(x, "bad_face_position", "x"), _number(y, "bad_face_position", "y")
    if not (0 <= fx <= 1 and 0 <= fy <= 1):
        raise RowError("bad_face_position", f"({fx}, {fy}) outside [0, 1]")
    return Segment(vid, t0, t1, fx, fy, row)


def read_avspeech_csv(path: Path | str) -> tuple[list[Segment], pd.DataFrame]:
    """Valid segments in file order, and the rejected rows (`row`, `reason`, `detail`).

    Accepts the official header-less CSV, a UTF-8 BOM, CRLF line ends, and a header with an index column. Rows whose
    sample_id repeats an earlier one are rejected as `duplicate`.
    """
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [r for r in csv.reader(f) if any(c.strip() for c in r)]
    if not rows:
        return [], pd.DataFrame(columns=REJECTED_COLUMNS)
    positions, has_header = _column_positions(rows[0])
    segments: list[Segment] = []
    rejected: list[dict] = []
    seen: set[str] = set()
    for i, fields in enumerate(rows[1:] if has_header else rows):
        try:
            segment = parse_row(fields, positions, i)
        except RowError as err:
            rejected.append({"row": i, "reason": err.reason, "detail": err.detail})
            continue
        if segment.sample_id in seen:
            rejected.append({"row": i, "reason": "duplicate", "detail": segment.sample_id})
            continue
        seen.add(segment.sample_id)
        segments.append(segment)
    return segments, pd.DataFrame(rejected, columns=REJECTED_COLUMNS)


# ----------------------------------------------------------------------------------------------------------- ledger


@dataclass(frozen=True)
class LedgerEntry:
    sample_id: str
    status: str  # "done" | "failed"
    clip: str | None
    reason: str | None
    detail: str | None
    attempts: int
    permanent: bool
    retry_after: datetime | None

    def due(self, now: datetime) -> bool:
        """Whether a failed segment may be tried again now."""
        return not self.permanent and (self.retry_after is None or self.retry_after <= now)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    sample_id   TEXT PRIMARY KEY,
    youtube_id  TEXT NOT NULL,
    start       REAL NOT NULL,
    "end"       REAL NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    clip        TEXT,
    reason      TEXT,
    detail      TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    permanent   INTEGER NOT NULL DEFAULT 0,
    retry_after TEXT,
    updated     TEXT NOT NULL
)"""


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="seconds")


class Ledger:
    """One row per sample_id, committed after every segment so an interrupted run loses nothing.

    sqlite rather than a CSV/JSON file: updates are atomic, and the file stays consistent if the process is killed.
    """

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path)
        self._db.execute(_SCHEMA)
        self._db.commit()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, sample_id: str) -> LedgerEntry | None:
        row = self._db.execute(
            "SELECT sample_id, status, clip, reason, detail, attempts, permanent, retry_after "
            "FROM segments WHERE sample_id = ?", (sample_id,)).fetchone()
        if row is None:
            return None
        retry = datetime.fromisoformat(row[7]) if row[7] else None
        return LedgerEntry(row[0], row[1], row[2], row[3], row[4], int(row[5]), bool(row[6]), retry)

    def _upsert(self, segment: Segment, values: dict) -> None:
        values = {"sample_id": segment.sample_id, "youtube_id": segment.youtube_id, "start": segment.start,
                  "end": segment.end, "updated": _iso(datetime.now(UTC)), **values}
        names = ", ".join(f'"{k}"' for k in values)
        marks = ", ".join("?" for _ in values)
        self._db.execute(f"INSERT OR REPLACE INTO segments ({names}) VALUES ({marks})", list(values.values()))
        self._db.commit()

    def mark_done(self, segment: Segment, clip: str, attempts: int) -> None:
        self._upsert(segment, {"status": "done", "clip": clip, "attempts": attempts, "permanent": 0})

    def mark_failed(self, segment: Segment, failure: FetchFailure, attempts: int, retry_after: datetime | None) -> None:
        self._upsert(segment, {"status": "failed", "reason": failure.reason, "detail": failure.detail,
                               "attempts": attempts, "permanent": int(failure.permanent),
                               "retry_after": _iso(retry_after) if retry_after else None})


# ----------------------------------------------------------------------------------------------- error classifying


class FetchFailure(Exception):
    """A segment could not be fetched; `reason` is machine-readable, `permanent` means never retry."""

    def __init__(self, reason: str, detail: str = "", retry_after_s: float | None = None):
        self.reason, self.detail = reason, detail.strip()[:_DETAIL_CHARS]
        self.permanent = reason in PERMANENT_REASONS
        self.retry_after_s = retry_after_s
        super().__init__(f"{reason}: {self.detail}")


# What YouTube says about a dead video, checked before any HTTP status in the error chain (an "unavailable" page may
# come with an incidental 4xx) ...
_VIDEO_REASONS: list[tuple[str, re.Pattern[str]]] = [
    ("copyright", re.compile(r"copyright", re.I)),
    ("private_video", re.compile(r"private video|video is private", re.I)),
    ("video_unavailable", re.compile(
        r"video unavailable|video is unavailable|no longer available|has been removed|account .* terminated|"
        r"confirm your age|age.restricted|members.only|not available in your country|geo.?restrict", re.I)),
]
# ... and what the rest of the messages say when no exception object tells (first match wins).
_MESSAGE_REASONS: list[tuple[str, re.Pattern[str]]] = [
    ("http_429", re.compile(r"HTTP Error 429|Too Many Requests|confirm you.re not a bot", re.I)),
    ("http_5xx", re.compile(r"HTTP Error 5\d\d", re.I)),
    ("video_unavailable", re.compile(r"HTTP Error (404|410)", re.I)),
    ("network_error", re.compile(
        r"timed? ?out|connection (refused|reset|aborted)|failed to resolve|name or service not known|"
        r"network is unreachable|temporary failure in name resolution|failed to establish", re.I)),
]


def _causes(err: BaseException) -> Iterator[BaseException]:
    """The exception and what it wraps (yt-dlp's `exc_info` and `cause`, `raise ... from`), not `__context__`:
    an exception yt-dlp caught and handled on the way is no cause of the final error."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [err]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        exc_info = getattr(e, "exc_info", None)
        cause = getattr(e, "cause", None)
        stack += [cause if isinstance(cause, BaseException) else None, e.__cause__,
                  exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) > 1 else None]


def _first_match(patterns: list[tuple[str, re.Pattern[str]]], message: str) -> str | None:
    return next((reason for reason, pattern in patterns if pattern.search(message)), None)


def _retry_after_seconds(headers: object) -> float | None:
    """The Retry-After header (delta-seconds or an HTTP date) as seconds from now, if present."""
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def classify(err: BaseException) -> FetchFailure:
    """Map a yt-dlp error to a `FetchFailure`.

    Order: YouTube's own words about the video (dead, private, copyright), then the HTTP status or transport error
    in the exception chain, then message patterns; anything else is `download_failed` (transient).
    """
    from yt_dlp.networking.exceptions import HTTPError, TransportError

    message = str(err).removeprefix("ERROR: ")
    reason = _first_match(_VIDEO_REASONS, message)
    if reason:
        return FetchFailure(reason, message)
    for cause in _causes(err):
        if isinstance(cause, HTTPError):
            retry_after = _retry_after_seconds(cause.response.headers)
            if cause.status == 429:
                return FetchFailure("http_429", message, retry_after)
            if 500 <= cause.status < 600:
                return FetchFailure("http_5xx", message, retry_after)
            if cause.status in (404, 410):
                return FetchFailure("video_unavailable", message)
            return FetchFailure("download_failed", message)
    if any(isinstance(c, TransportError | TimeoutError | ConnectionError) for c in _causes(err)):
        return FetchFailure("network_error", message)
    return FetchFailure(_first_match(_MESSAGE_REASONS, message) or "download_failed", message)


# -------------------------------------------------------------------------------------------------------- fetching


@dataclass
class RateLimiter:
    """At most `per_minute` starts: each start waits until `60 / per_minute` s after the previous one."""

    per_minute: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _next: float = field(default=-math.inf, init=False)

    def wait(self) -> float:
        """Block until a start is allowed; the seconds waited."""
        now = self.clock()
        waited = max(self._next - now, 0.0)
        if waited:
            self.sleep(waited)
        self._next = max(now, self._next) + 60.0 / self.per_minute
        return waited


class _Log:
    """yt-dlp logger that keeps the last error instead of printing (quiet, and the message lands in the ledger)."""

    def __init__(self) -> None:
        self.last_error = ""

    def debug(self, msg: str) -> None:
        pass

    def info(self, msg: str) -> None:
        pass

    def warning(self, msg: str) -> None:
        pass

    def error(self, msg: str) -> None:
        self.last_error = msg


def ydl_options(params: AvspeechSourceParams, segment: Segment, work_dir: Path, log: _Log) -> dict:
    """yt-dlp options: only the segment, mp4, no cookies or config files, our own retries (so yt-dlp's are off)."""
    from yt_dlp.utils import download_range_func

    h = params.max_height
    return {
        "format": f"bv*[height<=?{h}]+ba/b[height<=?{h}]/b",
        "merge_output_format": "mp4",
        "postprocessors": [{"key": "FFmpegVideoRemuxer", "preferedformat": "mp4"}],
        "download_ranges": download_range_func(None, [(segment.start, segment.end)]),
        "force_keyframes_at_cuts": True,  # re-encode at the cut: the clip starts at `start`, not the keyframe before
        "ffmpeg_location": ffmpeg_exe(),
        "paths": {"home": str(work_dir), "temp": str(work_dir)},
        "outtmpl": {"default": "clip.%(ext)s"},
        "socket_timeout": params.timeout_seconds,
        "retries": 0, "extractor_retries": 0, "fragment_retries": 3,
        "noplaylist": True, "overwrites": True, "ignoreconfig": True,
        "quiet": True, "no_warnings": True, "noprogress": True, "logger": log,
    }


def _download(url: str, options: dict) -> None:
    """Run yt-dlp with our ffmpeg visible to its class-level checks too.

    yt-dlp asks `FFmpegFD.available()` (a classmethod that ignores the `ffmpeg_location` option; only the CLI sets the
    context variable it reads) whether a section can be cut; set it in a copied context so nothing leaks out.
    """
    import yt_dlp
    from yt_dlp.postprocessor.ffmpeg import FFmpegPostProcessor

    def run() -> None:
        FFmpegPostProcessor._ffmpeg_location.set(options["ffmpeg_location"])
        with yt_dlp.YoutubeDL(options) as ydl:
            ydl.download([url])

    contextvars.copy_context().run(run)


def fetch_segment(segment: Segment, out_path: Path, params: AvspeechSourceParams) -> None:
    """Download one segment to `out_path` (mp4), or raise `FetchFailure`.

    yt-dlp works in a private folder next to `out_path`; only a complete, readable clip is moved into place, so a
    killed run never leaves a half-written file that a rerun would take for finished.
    """
    import yt_dlp

    work_dir = out_path.parent / f".{segment.sample_id}.part"
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    log = _Log()
    try:
        try:
            _download(params.url_template.format(youtube_id=segment.youtube_id),
                      ydl_options(params, segment, work_dir, log))
        except (yt_dlp.utils.YoutubeDLError, OSError) as err:
            raise classify(err) from err
        except Exception as err:  # an extractor bug must cost this segment, not the run
            raise FetchFailure("download_failed", repr(err)[:300]) from err
        produced = sorted(work_dir.glob("*.mp4"))
        if not produced:
            raise FetchFailure("download_failed", log.last_error or "yt-dlp produced no mp4")
        try:
            probe(produced[0])
        except (MediaError, subprocess.TimeoutExpired) as err:
            raise FetchFailure("download_failed", str(err)) from err
        produced[0].replace(out_path)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def fetch_with_retries(segment: Segment, out_path: Path, params: AvspeechSourceParams, limiter: RateLimiter,
                       sleep: Callable[[float], None] = time.sleep) -> tuple[int, FetchFailure | None]:
    """Up to `max_attempts` tries of a transient failure; (tries made, the last failure or None on success).

    Backoff before try n+1 is `backoff_seconds * 2**(n-1)`, or the server's Retry-After when that is longer.
    """
    failure: FetchFailure | None = None
    for attempt in range(1, params.max_attempts + 1):
        if failure is not None:
            sleep(max(params.backoff_seconds * 2 ** (attempt - 2), failure.retry_after_s or 0.0))
        limiter.wait()
        try:
            fetch_segment(segment, out_path, params)
            return attempt, None
        except FetchFailure as err:
            failure = err
        if failure.permanent:
            return attempt, failure
    return params.max_attempts, failure


# ------------------------------------------------------------------------------------------------------- the stage


@dataclass
class _Tally:
    fetched_now: int = 0
    skipped_done: int = 0
    skipped_permanent: int = 0
    skipped_not_due: int = 0
    not_tried: int = 0
    stopped_early: str | None = None


def _clip_rel(segment: Segment) -> str:
    return f"clips/{segment.sample_id}.mp4"


def _skip(entry: LedgerEntry | None, out_dir: Path, now: datetime, tally: _Tally) -> bool:
    """Whether the ledger says this segment needs no try now (done with its clip present, dead, or not yet due)."""
    if entry is None:
        return False
    if entry.status == "done" and entry.clip and (out_dir / entry.clip).is_file():
        tally.skipped_done += 1
        return True
    if entry.status == "failed" and entry.permanent:
        tally.skipped_permanent += 1
        return True
    if entry.status == "failed" and not entry.due(now):
        tally.skipped_not_due += 1
        return True
    return False


def _fetch_all(segments: list[Segment], params: AvspeechSourceParams, out_dir: Path, ledger: Ledger,
               limiter: RateLimiter, sleep: Callable[[float], None], now: Callable[[], datetime]) -> _Tally:
    """Fetch, in order, each segment the ledger does not rule out; record every outcome as it happens."""
    tally, in_a_row = _Tally(), 0
    with Progress("download (avspeech)", len(segments), unit="segments") as shown:
        for segment in segments:
            in_a_row = _fetch_one(segment, params, out_dir, ledger, limiter, sleep, now, tally, in_a_row)
            shown.update(1, fetched=tally.fetched_now)
    return tally


def _fetch_one(segment: Segment, params: AvspeechSourceParams, out_dir: Path, ledger: Ledger, limiter: RateLimiter,
               sleep: Callable[[float], None], now: Callable[[], datetime], tally: _Tally, in_a_row: int) -> int:
    """One segment: skipped, fetched or failed, recorded in the ledger and the tally; → service failures in a row."""
    entry = ledger.get(segment.sample_id)
    if _skip(entry, out_dir, now(), tally):
        return in_a_row
    if tally.stopped_early:
        tally.not_tried += 1
        return in_a_row
    tries, failure = fetch_with_retries(segment, out_dir / _clip_rel(segment), params, limiter, sleep)
    attempts = (entry.attempts if entry else 0) + tries
    if failure is None:
        ledger.mark_done(segment, _clip_rel(segment), attempts)
        tally.fetched_now += 1
        return 0
    wait = max(params.retry_after_hours * 3600, failure.retry_after_s or 0.0)
    ledger.mark_failed(segment, failure, attempts, None if failure.permanent else now() + timedelta(seconds=wait))
    in_a_row = in_a_row + 1 if failure.reason in _SERVICE_REASONS else 0
    if in_a_row >= _MAX_SERVICE_FAILURES_IN_A_ROW:
        tally.stopped_early = (f"{in_a_row} segments in a row failed with {failure.reason}: the service is "
                               "unreachable or rate-limiting us; the rest is left for a later run")
    return in_a_row


def _summary(segments: list[Segment], rejected: pd.DataFrame, ledger: Ledger, tally: _Tally,
             out_dir: Path) -> dict:
    entries = [ledger.get(s.sample_id) for s in segments]
    done = [e for e in entries if e and e.status == "done" and e.clip and (out_dir / e.clip).is_file()]
    failed = [e for e in entries if e and e.status == "failed"]
    examples = {}
    for e in failed:
        examples.setdefault(e.reason, f"{e.sample_id}: {e.detail}")
    retry = [e.retry_after for e in failed if not e.permanent and e.retry_after]
    return {
        "ledger": str(ledger.path),
        "segments": len(segments), "done": len(done), "fetched_now": tally.fetched_now,
        "skipped_done": tally.skipped_done, "skipped_permanent": tally.skipped_permanent,
        "skipped_not_due": tally.skipped_not_due, "not_tried": tally.not_tried, "stopped_early": tally.stopped_early,
        "failed": dict(Counter(e.reason for e in failed)), "failed_permanent": sum(e.permanent for e in failed),
        "failed_examples": examples, "next_retry_after": _iso(min(retry)) if retry else None,
        "invalid_rows": dict(Counter(rejected["reason"])),
        "invalid_examples": rejected.head(20).to_dict("records"),
    }


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "none"


def _one_line(s: dict) -> str:
    return (f"avspeech: {s['done']}/{s['segments']} segments done ({s['fetched_now']} fetched now, "
            f"{s['skipped_done']} already done); failed: {_counts(s['failed'])}; "
            f"invalid rows: {_counts(s['invalid_rows'])}; ledger: {s['ledger']}")


class AvspeechFetchError(SystemExit):
    """No segment could be fetched: exits with a readable summary instead of a traceback; `.summary` has details."""

    def __init__(self, summary: dict):
        self.summary = summary
        lines = [f"avspeech: no segment could be fetched (0 of {summary['segments']} valid segments done).",
                 f"  failed: {_counts(summary['failed'])}; invalid rows: {_counts(summary['invalid_rows'])}"]
        lines += [f"  {reason}, e.g. {example}" for reason, example in summary["failed_examples"].items()]
        if summary["stopped_early"]:
            lines.append(f"  stopped early: {summary['stopped_early']} ({summary['not_tried']} not tried)")
        if summary["next_retry_after"]:
            lines.append(f"  transient failures are retried after {summary['next_retry_after']} "
                         "(delete their ledger rows to retry sooner)")
        lines.append(f"  ledger: {summary['ledger']}")
        super().__init__("\n".join(lines))


def _manifest(segments: list[Segment], ledger: Ledger, out_dir: Path, positions: list[int]) -> pd.DataFrame:
    rows, index = [], []
    for position, s in zip(positions, segments):
        entry = ledger.get(s.sample_id)
        if entry and entry.status == "done" and entry.clip and (out_dir / entry.clip).is_file():
            rows.append({"sample_id": s.sample_id, "clip": entry.clip, "speaker": s.youtube_id,
                         "face_x": s.face_x, "face_y": s.face_y})
            index.append(position)
    return pd.DataFrame(rows, columns=["sample_id", "clip", "speaker", "face_x", "face_y"], index=index)


def fetch_avspeech(params: AvspeechSourceParams, out_dir: Path, *, sleep: Callable[[float], None] = time.sleep,
                   clock: Callable[[], float] = time.monotonic,
                   now: Callable[[], datetime] = lambda: datetime.now(UTC),
                   partition: Partition | None = None) -> pd.DataFrame:
    """Fetch the first `params.limit` valid CSV segments into `out_dir/clips/`; the manifest of every done one.

    With a `partition` (a `download@K` stage, on its own worker) only the segments r ≡ K (mod P) are fetched, under
    this process's own rate limit and with its own ledger in `out_dir`; the manifest is indexed by each segment's
    position among all of them, so `collect` can merge the partitions in CSV order.

    `speaker` is the YouTube id: AVSpeech has no speaker ids, and one video is assumed to be one speaker (a channel
    with several videos then counts as several speakers, so identity-disjoint splits are only approximate).
    Writes `out_dir/fetch_summary.json` and prints a one-line summary. Raises `AvspeechFetchError` (a SystemExit)
    when no segment is done at all, `ValueError` when the CSV is missing or its header unusable. `sleep`, `clock`
    and `now` are injectable for tests.
    """
    out_dir = Path(out_dir)
    if not Path(params.csv).is_file():
        raise ValueError(f"AVSpeech CSV not found: {params.csv} (set data.avspeech.csv in params.yaml)")
    segments, rejected = read_avspeech_csv(params.csv)
    segments = segments[: params.limit] if params.limit else segments
    positions = [r for r in range(len(segments)) if partition is None or partition.owns(r)]
    segments = [segments[r] for r in positions]
    (out_dir / "clips").mkdir(parents=True, exist_ok=True)
    limiter = RateLimiter(params.requests_per_minute, clock=clock, sleep=sleep)
    with contextlib.closing(Ledger(out_dir / "ledger.sqlite")) as ledger:
        tally = _fetch_all(segments, params, out_dir, ledger, limiter, sleep, now)
        summary = _summary(segments, rejected, ledger, tally, out_dir)
        manifest = _manifest(segments, ledger, out_dir, positions)
    (out_dir / "fetch_summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(_one_line(summary), flush=True)
    if manifest.empty:
        raise AvspeechFetchError(summary)
    return manifest
