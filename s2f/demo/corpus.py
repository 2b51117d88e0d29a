"""Generate the demo corpus: real mp4 files (the speaker's face on screen, their voice on the audio track).

Everything is drawn from `np.random.default_rng([seed, speaker, clip])`, so a clip is the same whichever worker
makes it and in whatever order. Written as video so that preprocessing runs the same code path as on real data.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from s2f.config import DemoSourceParams
from s2f.demo.face import render_face
from s2f.demo.traits import draw_traits
from s2f.demo.voice import synthesize_clip
from s2f.parallel import process_imap
from s2f.progress import Progress
from s2f.io.media import write_talking_video, write_wav


@dataclass(frozen=True)
class _SpeakerJob:
    index: int
    params: DemoSourceParams
    clips_dir: Path


def _frames(face: np.ndarray, seconds: float, params: DemoSourceParams, rng: np.random.Generator) -> np.ndarray:
    """The face placed on a plain backdrop with a per-clip scale/offset/brightness and a slight per-frame sway."""
    size = params.frame_size
    face_px = int(size * rng.uniform(0.62, 0.78))
    face_img = np.asarray(Image.fromarray(face).resize((face_px, face_px), Image.Resampling.BILINEAR), np.float32)
    backdrop = np.empty((size, size, 3), np.float32)
    backdrop[:] = rng.uniform(60, 200, size=3)
    x0 = int(rng.uniform(0, size - face_px)); y0 = int(rng.uniform(0, size - face_px))
    gain = rng.uniform(0.9, 1.1)
    count = max(int(np.ceil(seconds * params.fps)), 1)
    frames = np.empty((count, size, size, 3), np.uint8)
    for t in range(count):
        dx = int(round(3 * np.sin(2 * np.pi * t / (params.fps * 2.0))))
        x = int(np.clip(x0 + dx, 0, size - face_px))
        frame = backdrop.copy()
        frame[y0:y0 + face_px, x:x + face_px] = face_img
        frames[t] = np.clip(frame * gain, 0, 255).astype(np.uint8)
    return frames


def _make_speaker(job: _SpeakerJob) -> list[dict]:
    p = job.params
    speaker = f"spk{job.index:03d}"
    traits = draw_traits(np.random.default_rng([p.seed, job.index]))
    face = render_face(traits)
    rows = []
    for c in range(p.clips_per_speaker):
        rng = np.random.default_rng([p.seed, job.index, c + 1])
        seconds = float(rng.uniform(p.min_seconds, p.max_seconds))
        audio = synthesize_clip(traits, seconds, p.sample_rate, rng)
        frames = _frames(face, seconds, p, rng)
        clip = job.clips_dir / f"{speaker}_{c:02d}.mp4"
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "voice.wav"
            write_wav(wav, audio, p.sample_rate)
            write_talking_video(clip, frames, p.fps, wav)
        rows.append({"sample_id": clip.stem, "clip": f"clips/{clip.name}", "speaker": speaker,
                     "duration_s": round(seconds, 3), **{f"trait_{k}": v for k, v in traits.as_dict().items()}})
    return rows


def generate_demo_corpus(params: DemoSourceParams, out_dir: Path, workers: int,
                         speakers: Sequence[int] | None = None) -> pd.DataFrame:
    """Write `out_dir/clips/*.mp4` and return the manifest (one row per clip, with the speaker's latent traits);
    `speakers`: only these speaker indices (a download partition), indexed by their rows in the whole corpus."""
    clips_dir = out_dir / "clips"
    clips_dir.mkdir(parents=True, exist_ok=True)
    chosen = range(params.speakers) if speakers is None else speakers
    jobs = [_SpeakerJob(i, params, clips_dir) for i in chosen]
    per_speaker = []
    with Progress("download (demo corpus)", len(jobs), unit="speakers") as shown:
        for made in process_imap(workers, _make_speaker, jobs):  # in order, each as soon as it is written
            per_speaker.append(made)
            shown.update(1)
    rows = [i * params.clips_per_speaker + c for i in chosen for c in range(params.clips_per_speaker)]
    return pd.DataFrame([row for rows in per_speaker for row in rows], index=rows)
