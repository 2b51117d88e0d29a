"""Synthesise a demo speaker's speech with a source-filter model whose parameters come from their traits.

Source: a glottal pulse train at a time-varying pitch (median and range set by `shape` and `size`) mixed with
aspiration noise (`tone` sets breathiness and spectral tilt). Filter: a cascade of formant resonators per vowel, with
every formant scaled by 1 / vocal-tract length (`size`), the relation real voices follow. Each clip says a fresh random
syllable sequence with its own intonation, rate and loudness, so only the speaker's traits recur across clips.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from s2f.demo.traits import SpeakerTraits

# (F1, F2, F3, F4) in Hz for a neutral adult vocal tract (after Peterson & Barney 1952, rounded).
VOWELS = np.array([
    (730, 1090, 2440, 3400),  # a
    (270, 2290, 3010, 3700),  # i
    (300, 870, 2240, 3300),   # u
    (530, 1840, 2480, 3500),  # e
    (570, 840, 2410, 3400),   # o
    (660, 1720, 2410, 3500),  # ae
], dtype=np.float64)
BANDWIDTHS = np.array([80.0, 100.0, 140.0, 200.0])


def speaker_voice(traits: SpeakerTraits) -> dict[str, float]:
    """The voice parameters a speaker keeps across all their clips."""
    return {
        "tract_scale": 1.0 + 0.09 * traits.size,            # longer tract → lower formants
        "f0": 150.0 * 2 ** (-0.45 * traits.shape - 0.15 * traits.size),
        "f0_range": 0.10 + 0.04 * (traits.shape + 2.5),       # relative pitch excursion
        "breathiness": 0.08 + 0.06 * (traits.tone + 2.5),     # aspiration noise share
    }


def _formant_filter(source: np.ndarray, formants: np.ndarray, sr: int) -> np.ndarray:
    out = source
    for f, bw in zip(formants, BANDWIDTHS):
        if f >= sr / 2 - 200:
            continue
        r = np.exp(-np.pi * bw / sr)
        a = [1.0, -2 * r * np.cos(2 * np.pi * f / sr), r * r]
        out = signal.lfilter([1 - r], a, out)
    return out


def synthesize_clip(traits: SpeakerTraits, seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One utterance of `seconds` at `sr` Hz as float32 in [-1, 1]."""
    voice = speaker_voice(traits)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    # intonation: declination plus slow random excursions, scaled by the speaker's pitch range
    wobble = np.interp(t, np.linspace(0, seconds, 8), rng.standard_normal(8))
    f0 = voice["f0"] * rng.uniform(0.93, 1.07) * 2 ** (voice["f0_range"] * wobble - 0.1 * t / seconds)
    phase = np.cumsum(f0 / sr)
    pulses = np.diff(np.floor(phase), prepend=0.0)  # one impulse per glottal cycle
    glottal = signal.lfilter([1.0], [1.0, -0.96], pulses)  # spectral tilt of the glottal pulse
    noise = signal.lfilter([1.0], [1.0, -0.5], rng.standard_normal(n)) * 0.6
    source = (1 - voice["breathiness"]) * glottal / (np.abs(glottal).max() + 1e-9) + voice["breathiness"] * noise

    out = np.zeros(n)
    start = int(rng.uniform(0.05, 0.2) * sr)
    rate = rng.uniform(0.8, 1.2)
    while start < n:
        length = int(rng.uniform(0.12, 0.28) * sr / rate)
        seg = slice(start, min(start + length, n))
        formants = VOWELS[rng.integers(len(VOWELS))] / voice["tract_scale"] * rng.uniform(0.97, 1.03)
        piece = _formant_filter(source[seg], formants, sr)
        out[seg] += piece * np.hanning(len(piece)) * rng.uniform(0.6, 1.0)
        gap = rng.uniform(0.02, 0.06) if rng.random() > 0.2 else rng.uniform(0.15, 0.3)  # syllable or word gap
        start += length + int(gap * sr / rate)
    out = signal.lfilter([1.0, -0.95], [1.0], out)  # lip radiation
    out = out / (np.abs(out).max() + 1e-9) * rng.uniform(0.3, 0.8)
    out += rng.standard_normal(n) * 0.002  # room noise floor
    return np.clip(out, -1, 1).astype(np.float32)
