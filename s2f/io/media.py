"""Read and write audio/video through the ffmpeg binary, one subprocess per operation.

Why a subprocess rather than an in-process decoder: a corrupt file can at worst make ffmpeg exit non-zero, never crash
or hang the stage, and every read is bounded (`-t`, `-frames:v N`) so a long file is never loaded whole. The binary
is the one pinned by `imageio-ffmpeg` (a static build from PyPI) unless `S2F_FFMPEG` names another, so encodes are
the same on every machine. Arguments are passed as a list, never through a shell.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


class MediaError(Exception):
    """A media file could not be read; `reason` is a short machine-readable cause for the quarantine table."""

    def __init__(self, path: Path | str, reason: str, detail: str = ""):
        self.path, self.reason, self.detail = str(path), reason, detail.strip()
        super().__init__(f"{path}: {reason}" + (f" ({self.detail})" if self.detail else ""))


def ffmpeg_exe() -> str:
    override = os.environ.get("S2F_FFMPEG")
    if override:
        return override
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


# A clip is always a local file (s3:// is fetched first): a playlist disguised as .mp4 must not make ffmpeg fetch URLs.
LOCAL_ONLY = ["-protocol_whitelist", "file,pipe"]


@dataclass(frozen=True)
class MediaInfo:
    duration: float
    has_audio: bool
    has_video: bool
    width: int = 0
    height: int = 0
    audio_rate: int = 0


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO = re.compile(r"Stream #\S+.*?: Video: .*?, (\d{2,5})x(\d{2,5})")
_AUDIO = re.compile(r"Stream #\S+.*?: Audio: .*?, (\d+) Hz")


def probe(path: Path, timeout: float = 30.0) -> MediaInfo:
    """Container duration and streams, parsed from `ffmpeg -i` (the static build ships no ffprobe)."""
    _check_file(path)
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", *LOCAL_ONLY, "-i", str(path)],
                          capture_output=True, text=True, errors="replace", timeout=timeout)
    return _media_info(path, proc.stderr)


def _check_file(path: Path) -> None:
    if not Path(path).is_file():
        raise MediaError(path, "missing_file")
    if Path(path).stat().st_size == 0:
        raise MediaError(path, "empty_file")


def _media_info(path: Path, stderr: str) -> MediaInfo:
    """What `ffmpeg -i` says of its input (only the input's part: the output's streams follow "Stream mapping")."""
    text = stderr.split("Stream mapping:", 1)[0]
    duration = _DURATION.search(text)
    if duration is None:
        last = text.strip().splitlines()[-1] if text.strip() else ""
        raise MediaError(path, "unreadable_container", last)
    h, m, s = duration.groups()
    video, audio = _VIDEO.search(text), _AUDIO.search(text)
    return MediaInfo(
        duration=int(h) * 3600 + int(m) * 60 + float(s),
        has_audio=audio is not None, has_video=video is not None,
        width=int(video.group(1)) if video else 0, height=int(video.group(2)) if video else 0,
        audio_rate=int(audio.group(1)) if audio else 0,
    )


def as_reported(seconds: float) -> float:
    """A duration as `ffmpeg -i` prints it (whole 10 ms, half rounded up) and `_media_info` reads it back."""
    return int((round(seconds * 1e6) + 5000) // 10000) / 100


def _run(cmd: list[str], path: Path, reason: str, timeout: float) -> bytes:
    proc = subprocess.run(cmd, capture_output=True, timeout=timeout)
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()
        raise MediaError(path, reason, tail[-1] if tail else f"ffmpeg exit {proc.returncode}")
    return proc.stdout


@dataclass(frozen=True)
class ProbedAudio:
    """`probe` and `read_audio` from one ffmpeg process: the container's info, and its first audio stream (None when
    it has none) or the decoding error (kept, not raised, so that a caller checks the container first)."""

    info: MediaInfo
    samples: np.ndarray | None
    error: MediaError | None = None


def _threads(threads: int) -> list[str]:
    """ffmpeg's decoder threads: `threads` (≥ 1), or ffmpeg's choice (one per core and more) when 0.

    Why a caller sets it: processes that already run one per core gain nothing from frame threads of their own,
    only their cost (12 % more CPU on the realsample clips), while a lone process gains from them. Decoded frames
    and samples are the same whatever the count: decoding is bit-exact.
    """
    return ["-threads", str(threads)] if threads > 0 else []


def _audio_output(sample_rate: int, max_seconds: float, target: str) -> list[str]:
    """Mono int16 at `sample_rate`, at most `max_seconds` (a bounded read), to `target`."""
    return ["-t", f"{max_seconds}", "-ac", "1", "-ar", str(sample_rate), "-f", "s16le", "-acodec", "pcm_s16le", target]


def probe_and_read_audio(path: Path, sample_rate: int, max_seconds: float, timeout: float = 60.0,
                         threads: int = 0) -> ProbedAudio:
    """What `probe` then `read_audio` give, from one process: the static ffmpeg binary takes about 16 ms just to
    start, a third of what a clip costs preprocessing when it is started once per question. The input's description
    comes from the same stderr that carries errors (ffmpeg prints it at its default log level); `0:a:0?` maps the
    audio stream only when there is one. A container that does not open raises MediaError, as `probe` does."""
    _check_file(path)
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", *LOCAL_ONLY, *_threads(threads), "-i", str(path),
           "-map", "0:a:0?", *_audio_output(sample_rate, max_seconds, "pipe:1")]
    proc = subprocess.run(cmd, capture_output=True, timeout=timeout)
    stderr = proc.stderr.decode(errors="replace")
    info = _media_info(path, stderr)
    if not info.has_audio:
        return ProbedAudio(info, None)
    if proc.returncode != 0:
        tail = stderr.strip().splitlines()
        return ProbedAudio(info, None, MediaError(path, "audio_decode_failed",
                                                  tail[-1] if tail else f"ffmpeg exit {proc.returncode}"))
    return ProbedAudio(info, np.frombuffer(proc.stdout, dtype="<i2").copy())


def read_audio(path: Path, sample_rate: int, max_seconds: float, timeout: float = 60.0) -> np.ndarray:
    """The first audio stream as mono int16 at `sample_rate`, at most `max_seconds` long (bounded read)."""
    cmd = [ffmpeg_exe(), "-v", "error", "-nostdin", *LOCAL_ONLY, "-i", str(path), "-map", "0:a:0",
           *_audio_output(sample_rate, max_seconds, "pipe:1")]
    raw = _run(cmd, path, "audio_decode_failed", timeout)
    return np.frombuffer(raw, dtype="<i2").copy()


def read_frames(path: Path, count: int, span: float, timeout: float = 120.0,
                threads: int = 0, reference_only: bool = False) -> list[tuple[float, np.ndarray]]:
    """`count` RGB frames spread evenly over the first `span` seconds, from ONE decoding pass, with their times.

    Why one pass: a seek decodes from the previous keyframe, so N seeks into a long-GOP clip decode it N times
    (1.2 s per 1080p frame here); the `fps` filter picks the frames while decoding once. PPM output carries each
    frame's size, so rotated or odd-sized video needs no guessing. `threads`: see `_threads`.

    `reference_only`: decode only the frames other frames are predicted from (`-skip_frame noref`: I and P frames
    and reference B frames; nothing that is decoded depends on what is skipped), so each frame returned is a
    reference frame next to its time rather than the exact one (the `fps` filter picks among those decoded).
    Why: decoding is most of a large frame's cost, and a face one or two frames away is as good a face; on
    realsample's 1080p H.264 clip it decodes in two thirds of the CPU time.
    """
    seek, output = _frame_args(count, span, reference_only)
    cmd = [ffmpeg_exe(), "-v", "error", "-nostdin", *seek, *LOCAL_ONLY, *_threads(threads), "-i", str(path),
           "-map", "0:v:0", *output]
    frames = _split_ppm(_run(cmd, path, "video_decode_failed", timeout))
    if not frames:
        raise MediaError(path, "video_decode_failed", f"no frame in the first {span:.2f} s")
    return _timed(frames, count, span)


def _frame_args(count: int, span: float, reference_only: bool = False) -> tuple[list[str], list[str]]:
    """The input options (seek, frames skipped) and the output options that pick `count` frames evenly over
    `span` s (see `read_frames`)."""
    step = span / count
    return (["-ss", f"{step / 2:.3f}", *(["-skip_frame:v", "noref"] if reference_only else [])],
            ["-t", f"{span:.3f}", "-vf", f"fps={count}/{span:.6f}:eof_action=pass", "-frames:v", str(count),
             "-pix_fmt", "rgb24", "-f", "image2pipe", "-vcodec", "ppm", "pipe:1"])  # 8-bit even from 10-bit video


def _timed(frames: list[np.ndarray], count: int, span: float) -> list[tuple[float, np.ndarray]]:
    """Each frame with the time it was asked for."""
    step = span / count
    return [(step / 2 + i * step, frame) for i, frame in enumerate(frames)]


def probe_audio_and_frames(path: Path, sample_rate: int, max_seconds: float, count: int, span: float,
                           timeout: float = 180.0, threads: int = 0, reference_only: bool = False
                           ) -> tuple[ProbedAudio, list[tuple[float, np.ndarray]]] | None:
    """`probe_and_read_audio` and `read_frames(path, count, span, reference_only=…)` from ONE ffmpeg process, or None
    when that one process cannot stand for the two: ffmpeg exited with an error, found no frame, or `span` (which
    the caller takes from the file's header, `s2f.io.movie_header`) is not min(the duration ffmpeg reports,
    `max_seconds`). A container ffmpeg cannot describe raises MediaError, as `probe_and_read_audio` does.

    Why: the static binary costs about 13 ms of CPU to start, and a second input open costs less than a second
    process (11-16 ms of CPU a clip saved on the realsample and demo clips). The same file is opened as two inputs,
    the second with the frames' seek, so each stream is decoded exactly as in the separate calls: the same samples
    and frames, bit for bit (tested). The audio goes to an unlinked temporary file passed as a descriptor (a pipe
    would need a reader thread not to block ffmpeg), the frames to stdout. On None the caller makes the two
    separate calls, whose errors say which part failed.
    """
    _check_file(path)
    seek, frame_output = _frame_args(count, span, reference_only)
    with tempfile.TemporaryFile() as audio:
        fd = audio.fileno()
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats",
               *LOCAL_ONLY, *_threads(threads), "-i", str(path),
               *seek, *LOCAL_ONLY, *_threads(threads), "-i", str(path),
               "-map", "0:a:0", *_audio_output(sample_rate, max_seconds, f"pipe:{fd}"),
               "-map", "1:v:0", *frame_output]
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, pass_fds=(fd,))
        if proc.returncode != 0:
            return None
        audio.seek(0)
        samples = np.frombuffer(audio.read(), dtype="<i2").copy()
    info = _media_info(path, proc.stderr.decode(errors="replace"))
    frames = _split_ppm(proc.stdout)
    reported = min(info.duration, max_seconds)
    if not (info.has_audio and info.has_video and frames):
        return None
    if _frame_args(count, reported, reference_only) != (seek, frame_output):  # not what `read_frames` would ask
        return None
    return ProbedAudio(info, samples), _timed(frames, count, reported)


def _split_ppm(raw: bytes) -> list[np.ndarray]:
    frames, pos = [], 0
    while pos < len(raw):
        magic, width, height, maxval = raw[pos:pos + 64].split(maxsplit=4)[:4]
        if magic != b"P6" or maxval != b"255":
            raise ValueError("unexpected PPM stream from ffmpeg")
        header = len(b" ".join([magic, width, height, maxval])) + 1
        w, h = int(width), int(height)
        frames.append(np.frombuffer(raw, np.uint8, w * h * 3, pos + header).reshape(h, w, 3))
        pos += header + w * h * 3
    return frames


def read_image(path: Path, max_pixels: int = 50_000_000) -> np.ndarray:
    """A still face photo (VGGFace-style folders) as RGB; a decompression bomb or a broken file is a MediaError."""
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except FileNotFoundError:
        raise MediaError(path, "missing_file") from None
    except (OSError, Image.DecompressionBombError, ValueError) as err:
        raise MediaError(path, "unreadable_image", str(err)) from None


def write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    """Float samples in [-1, 1] (or int16) to a 16-bit mono WAV file."""
    if samples.dtype != np.int16:
        samples = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(samples.tobytes())


def write_talking_video(path: Path, frames: np.ndarray, fps: int, wav_path: Path, timeout: float = 120.0) -> None:
    """Mux RGB frames (T, H, W, 3) and a WAV track into an H.264/AAC mp4, bit-exact for the same inputs."""
    t, h, w, _ = frames.shape
    cmd = [ffmpeg_exe(), "-v", "error", "-nostdin", "-y",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "pipe:0",
           "-i", str(wav_path), "-map", "0:v:0", "-map", "1:a:0",
           "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", "-threads", "1",
           "-c:a", "aac", "-b:a", "64k", "-shortest",
           "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact", "-map_metadata", "-1",
           str(path)]
    proc = subprocess.run(cmd, input=np.ascontiguousarray(frames, dtype=np.uint8).tobytes(),
                          capture_output=True, timeout=timeout)
    if proc.returncode != 0:
        raise MediaError(path, "encode_failed", proc.stderr.decode(errors="replace")[-400:])
