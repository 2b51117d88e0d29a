"""Turn raw clips into training samples: a 6 s 16 kHz mono waveform and a 224×224 face crop per clip.

Each clip either becomes a sample or a rejection with a reason (for the quarantine table); one bad clip never stops
the run. Work goes shard by shard (a chunk of `shard_size` manifest rows → one shard file), so memory stays bounded
and a rerun can skip shards that are already written.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from s2f.audio import repeat_to_length
from s2f.config import PreprocessParams
from s2f.faces.detect import crop_face, detect_faces, largest_face
from s2f.io import media
from s2f.parallel import process_map
from s2f.io.shards import quarantine_table, shard_name, write_shard, write_table


@dataclass
class Rejection:
    reason: str
    detail: str = ""


@dataclass
class Sample:
    audio: np.ndarray         # (seconds·sr,) int16
    face: np.ndarray          # (crop, crop, 3) uint8
    face_box: np.ndarray      # (4,) int32: left, top, right, bottom inside the crop
    stats: dict


def process_clip(path: Path, params: PreprocessParams) -> Sample | Rejection:
    try:
        info = media.probe(path)
        if not info.has_audio:
            return Rejection("no_audio_stream")
        if not info.has_video:
            return Rejection("no_video_stream")
        audio = media.read_audio(path, params.sample_rate, params.seconds)
        if len(audio) < params.sample_rate // 2:
            return Rejection("too_short", f"{len(audio) / params.sample_rate:.2f} s of audio")
        rms = float(np.sqrt(np.mean((audio / 32768.0) ** 2)))
        if rms < params.min_rms:
            return Rejection("silent_audio", f"rms {rms:.2e} < {params.min_rms:.0e}")
        frame = media.read_frame(path, min(params.face_time, info.duration / 2))
    except media.MediaError as err:
        return Rejection(err.reason, err.detail)
    except subprocess.TimeoutExpired:
        return Rejection("timeout")
    box = largest_face(detect_faces(frame, params.detector.upsample, params.detector.min_score))
    if box is None:
        return Rejection("no_face", f"no face scoring ≥ {params.detector.min_score} in the frame at {params.face_time} s")
    if min(box.width, box.height) < params.min_face_size:
        return Rejection("face_too_small", f"{box.width}×{box.height} px < {params.min_face_size} px")
    crop, inner = crop_face(frame, box, params.crop_size, params.crop_margin)
    samples = int(params.seconds * params.sample_rate)
    stats = {"duration_s": info.duration, "audio_rate": info.audio_rate, "audio_samples": len(audio), "audio_rms": rms,
             "frame_width": frame.shape[1], "frame_height": frame.shape[0], "face_score": box.score,
             "face_size": min(box.width, box.height)}
    return Sample(repeat_to_length(audio, samples).astype(np.int16), crop,
                  np.array([inner.left, inner.top, inner.right, inner.bottom], np.int32), stats)


def _process_row(row: dict, raw_dir: Path, params: PreprocessParams) -> tuple[dict, Sample | Rejection]:
    return row, process_clip(raw_dir / row["clip"], params)


def preprocess_corpus(manifest: pd.DataFrame, raw_dir: Path, out_dir: Path, params: PreprocessParams,
                      workers: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write `out_dir/shard-*.npz`, `manifest.parquet` and `quarantine.csv`; return (accepted, quarantined)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = manifest.sort_values("sample_id").to_dict("records")
    chunks = [rows[i:i + params.shard_size] for i in range(0, len(rows), params.shard_size)]
    accepted, rejected = [], []
    work = partial(_process_row, raw_dir=raw_dir, params=params)
    with process_map(workers) as pmap:
        for index, chunk in enumerate(chunks):
            results = pmap(work, chunk)
            samples = [(r, s) for r, s in results if isinstance(s, Sample)]
            rejected += [{"sample_id": r["sample_id"], "clip": r["clip"], "stage": "preprocess",
                          "reason": s.reason, "detail": s.detail} for r, s in results if isinstance(s, Rejection)]
            if not samples:
                continue
            name = shard_name(index)
            write_shard(out_dir / name, {
                "sample_id": np.array([r["sample_id"] for r, _ in samples]),
                "audio": np.stack([s.audio for _, s in samples]),
                "face": np.stack([s.face for _, s in samples]),
                "face_box": np.stack([s.face_box for _, s in samples]),
            })
            accepted += [{"sample_id": r["sample_id"], "speaker": r["speaker"], "clip": r["clip"], "shard": name,
                          "index": i, **s.stats} for i, (r, s) in enumerate(samples)]
    accepted_df = pd.DataFrame(accepted)
    quarantined = quarantine_table(rejected)
    write_table(out_dir / "manifest.parquet", accepted_df)
    write_table(out_dir / "quarantine.csv", quarantined)
    return accepted_df, quarantined
