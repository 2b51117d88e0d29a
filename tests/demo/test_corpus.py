"""The demo corpus is real media, deterministic, and its voices and faces share the speaker's traits."""

import hashlib

import numpy as np

from s2f.config import DemoSourceParams
from s2f.demo.corpus import generate_demo_corpus
from s2f.demo.traits import SpeakerTraits
from s2f.demo.voice import speaker_voice, synthesize_clip
from s2f.io.media import probe


def test_clips_are_talking_face_videos(demo_clips):
    raw, manifest = demo_clips
    assert len(manifest) == 6 and manifest["speaker"].nunique() == 3
    info = probe(raw / manifest["clip"].iloc[0])
    assert info.has_audio and info.has_video and info.audio_rate == 16000 and info.width == 320
    assert abs(info.duration - manifest["duration_s"].iloc[0]) < 0.3


def test_same_seed_gives_identical_files(tmp_path, demo_clips):
    raw, manifest = demo_clips
    again = generate_demo_corpus(DemoSourceParams(speakers=2, clips_per_speaker=2, min_seconds=3.0, max_seconds=4.5,
                                                  seed=5), tmp_path, workers=1)
    for clip in again["clip"]:
        assert hashlib.sha256((tmp_path / clip).read_bytes()).digest() == hashlib.sha256((raw / clip).read_bytes()).digest()


def test_bigger_vocal_tract_gives_lower_formants():
    """The spectral centroid of a voice falls as the `size` trait (vocal-tract length) grows."""
    def centroid(size: float) -> float:
        audio = synthesize_clip(SpeakerTraits(size, 0.0, 0.0, 0.0), 3.0, 16000, np.random.default_rng(0))
        power = np.abs(np.fft.rfft(audio)) ** 2
        return float((np.fft.rfftfreq(len(audio), 1 / 16000) * power).sum() / power.sum())
    assert centroid(-2.0) > centroid(0.0) > centroid(2.0)
    assert speaker_voice(SpeakerTraits(0, 2, 0, 0))["f0"] < speaker_voice(SpeakerTraits(0, -2, 0, 0))["f0"]
