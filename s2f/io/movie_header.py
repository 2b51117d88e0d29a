"""What an MP4/MOV file's header says, read in Python without starting ffmpeg: its duration and which tracks it has.

Why: the frames preprocessing searches for a face are spread over min(duration, 6 s), so a clip's frames could only
be asked for once ffmpeg had told its duration, which cost a second ffmpeg process per clip (about 20 ms of CPU,
an eighth of what a clip costs). With the duration read here, one ffmpeg process decodes the audio and those frames
together (`s2f.io.media.probe_audio_and_frames`), and the caller checks the duration ffmpeg then reports: a header
this reader misjudges costs time, never a different sample.

Only ISO base media files (MP4, MOV, M4V, 3GP: what yt-dlp, VoxCeleb2 and our demo corpus write) are read; anything
else, or anything unexpected inside, gives None. The reader follows box sizes and reads a few bytes per box, so its
cost is bounded by the number of boxes, never by the file's size.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

MAX_BOXES = 4096           # a header with more boxes than this is not one we can trust to be cheap
CONTAINERS = (b"moov", b"trak", b"mdia", b"edts")


@dataclass(frozen=True)
class MovieHeader:
    duration: float        # seconds, as ffmpeg reports it: the longest track after its edit list
    has_audio: bool
    has_video: bool
    pixels: int = 0        # width × height of the first video track (its header's presentation size)


@dataclass
class _Track:
    kind: bytes = b""              # hdlr handler type: b"soun", b"vide", ...
    header_duration: int = 0       # tkhd, in the movie's time scale
    pixels: int = 0                # tkhd width × height
    edit_duration: int | None = None   # the edit list's segments summed, in the movie's time scale


def read_movie_header(path: Path) -> MovieHeader | None:
    """The header of an ISO base media file, or None when `path` is not one or its header is not as expected."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            if _first_box(f) != b"ftyp":
                return None
            return _movie(f, size)
    except (OSError, struct.error, ValueError):
        return None


def _first_box(f: BinaryIO) -> bytes:
    f.seek(4)
    return f.read(4)


def _boxes(f: BinaryIO, start: int, end: int, budget: list[int]) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, end) of the boxes between `start` and `end`; a size that does not fit raises ValueError."""
    pos = start
    while pos + 8 <= end:
        budget[0] -= 1
        if budget[0] < 0:
            raise ValueError("too many boxes")
        f.seek(pos)
        size, kind = struct.unpack(">I4s", f.read(8))
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", f.read(8))[0], 16
        elif size == 0:        # extends to the end of its parent
            size = end - pos
        if size < header or pos + size > end:
            raise ValueError("box size out of range")
        yield kind, pos + header, pos + size
        pos += size


def _movie(f: BinaryIO, size: int) -> MovieHeader | None:
    budget = [MAX_BOXES]
    moov = next(((s, e) for kind, s, e in _boxes(f, 0, size, budget) if kind == b"moov"), None)
    if moov is None:
        return None
    timescale, movie_duration, tracks = 0, 0, []
    for kind, start, end in _boxes(f, *moov, budget):
        if kind == b"mvhd":
            timescale, movie_duration = _time_fields(f, start, 12, 20)
        elif kind == b"trak":
            tracks.append(_track(f, start, end, budget))
    if timescale <= 0:
        return None
    durations = [t.edit_duration if t.edit_duration is not None else t.header_duration for t in tracks]
    duration = max(durations, default=movie_duration) or movie_duration
    kinds = {t.kind for t in tracks}
    video = next((t for t in tracks if t.kind == b"vide"), None)
    return MovieHeader(duration / timescale, b"soun" in kinds, video is not None, video.pixels if video else 0)


def _track(f: BinaryIO, start: int, end: int, budget: list[int]) -> _Track:
    track = _Track()
    for kind, s, e in _boxes(f, start, end, budget):
        if kind == b"tkhd":
            track.header_duration, track.pixels = _tkhd(f, s)
        elif kind == b"hdlr":
            f.seek(s + 8)
            track.kind = f.read(4)
        elif kind == b"elst":
            track.edit_duration = _edit_duration(f, s)
        elif kind in CONTAINERS:
            inner = _track(f, s, e, budget)
            track.kind = inner.kind or track.kind
            track.edit_duration = inner.edit_duration if inner.edit_duration is not None else track.edit_duration
    return track


def _version(f: BinaryIO, start: int) -> int:
    f.seek(start)
    return f.read(1)[0]


def _time_fields(f: BinaryIO, start: int, offset_v0: int, offset_v1: int) -> tuple[int, int]:
    """(time scale, duration) of an mvhd-style full box: 32-bit fields in version 0, a 64-bit duration in 1."""
    if _version(f, start) == 1:
        f.seek(start + offset_v1)
        return struct.unpack(">IQ", f.read(12))
    f.seek(start + offset_v0)
    return struct.unpack(">II", f.read(8))


def _tkhd(f: BinaryIO, start: int) -> tuple[int, int]:
    """(duration, width × height) of a track header; the size is 16.16 fixed point after the 3×3 matrix."""
    if _version(f, start) == 1:
        f.seek(start + 28)
        duration, size_at = struct.unpack(">Q", f.read(8))[0], start + 88
    else:
        f.seek(start + 20)
        duration, size_at = struct.unpack(">I", f.read(4))[0], start + 76
    f.seek(size_at)
    width, height = struct.unpack(">II", f.read(8))
    return duration, (width >> 16) * (height >> 16)


def _edit_duration(f: BinaryIO, start: int) -> int:
    """The edit list's segment durations summed (the track's presented length, after e.g. AAC priming is cut)."""
    version = _version(f, start)
    f.seek(start + 4)
    (count,) = struct.unpack(">I", f.read(4))
    entry = ">QqI" if version == 1 else ">IiI"
    if count > MAX_BOXES:
        raise ValueError("edit list too long")
    return sum(struct.unpack(entry, f.read(struct.calcsize(entry)))[0] for _ in range(count))
