"""Voice → face inference: audio of any common format/rate/channels to 16 kHz mono, refusals with reasons, the 6 s
repetition the encoder was trained on, and the image the composite model returns."""

from __future__ import annotations

import io

import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from s2f.audio import SAMPLE_RATE
from s2f.inference import (AudioInputError, Speech2Face, b64decode_audio, b64encode, decode_audio, encode,
                           png_bytes)
from s2f.io import media
from tests.serving import IMAGE_SIZE, REAL_CLIP, audio_bytes, extract_wav, tiny_models, tone


@pytest.fixture(scope="module")
def real_wav(realsample, tmp_path_factory) -> bytes:
    return extract_wav(realsample / REAL_CLIP, tmp_path_factory.mktemp("wav") / "voice.wav").read_bytes()


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Speech2Face:
    return Speech2Face.from_files(*tiny_models(tmp_path_factory.mktemp("models")), device="cpu")


def dominant_hz(wave: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / rate)[spectrum.argmax()])


def test_real_clip_audio_matches_ffmpegs_own_16k_mono(real_wav, realsample):
    """The WAV ffmpeg extracted at 44.1 kHz stereo, decoded by us, is what ffmpeg itself gives at 16 kHz mono."""
    ours = decode_audio(real_wav, "voice.wav")
    theirs = media.read_audio(realsample / REAL_CLIP, SAMPLE_RATE, 30.0) / 32768.0
    assert ours.dtype == np.float32 and abs(len(ours) - len(theirs)) <= 2
    assert abs(len(ours) / SAMPLE_RATE - 6.13) < 0.05
    n = min(len(ours), len(theirs))
    assert np.corrcoef(ours[:n], theirs[:n])[0, 1] > 0.99
    assert np.abs(ours).max() <= 1 and ours.std() > 0.01


@pytest.mark.parametrize("rate, channels", [(44_100, 2), (8_000, 1), (48_000, 1), (22_050, 3), (SAMPLE_RATE, 1)])
def test_rates_and_channels_become_16k_mono_of_the_same_length(rate, channels):
    wave = np.stack([tone(2.0, rate)] * channels, axis=1)
    out = decode_audio(audio_bytes(wave, rate), f"{rate}.wav")
    assert out.dtype == np.float32 and out.ndim == 1 and len(out) == 2 * SAMPLE_RATE
    assert dominant_hz(out) == pytest.approx(440, abs=1)
    assert np.abs(out[1000:-1000]).max() == pytest.approx(0.3, abs=0.01)   # amplitude kept by the resampler


def test_channels_are_averaged():
    left = tone(1.5, 44_100)
    out = decode_audio(audio_bytes(np.stack([left, np.zeros_like(left)], axis=1), 44_100))
    assert np.abs(out[1000:-1000]).max() == pytest.approx(0.15, abs=0.01)


@pytest.mark.parametrize("fmt, subtype", [("FLAC", "PCM_16"), ("OGG", "VORBIS"), ("WAV", "FLOAT")])
def test_other_formats_decode(fmt, subtype):
    out = decode_audio(audio_bytes(tone(1.5, 44_100), 44_100, fmt, subtype), f"voice.{fmt.lower()}")
    assert abs(len(out) - 1.5 * SAMPLE_RATE) <= 2 and dominant_hz(out) == pytest.approx(440, abs=1)


def test_silence_is_accepted():
    assert not decode_audio(audio_bytes(np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)).any()


@pytest.mark.parametrize("data, reason", [
    (b"", "empty"),
    (audio_bytes(np.zeros(0, np.float32), 16_000), "empty"),
    (b"RIFF\x00\x00\x00\x00WAVEnot really", "not_audio"),
    (png_bytes(np.zeros((4, 4, 3), np.uint8)), "not_audio"),
    (audio_bytes(tone(30.5, 8_000), 8_000), "too_long"),
    (audio_bytes(tone(0.5, 44_100), 44_100), "too_short"),
])
def test_bad_audio_is_refused_with_its_reason(data, reason):
    with pytest.raises(AudioInputError, match=f"upload.wav: {reason}") as err:
        decode_audio(data, "upload.wav")
    assert err.value.reason == reason and isinstance(err.value, ValueError)


def test_a_video_gives_its_audio_track_through_ffmpeg(realsample):
    video = sorted((realsample / "clips").glob("*.mp4"))[0]
    expected = media.read_audio(video, SAMPLE_RATE, 30.0).astype(np.float32) / 32768.0
    out = decode_audio(video.read_bytes(), video.name)
    assert out.dtype == np.float32 and np.array_equal(out, expected)  # the audio preprocessing reads, 16 kHz mono


def test_a_video_without_sound_is_not_audio(tmp_path):
    frames = np.zeros((10, 32, 32, 3), np.uint8)
    silent = tmp_path / "silent.wav"
    media.write_wav(silent, np.zeros(16_000, np.int16), 16_000)
    media.write_talking_video(tmp_path / "v.mp4", frames, 10, silent)
    mute = tmp_path / "mute.mp4"
    subprocess.run([media.ffmpeg_exe(), "-v", "error", "-i", str(tmp_path / "v.mp4"), "-an", "-c", "copy", str(mute)],
                   check=True)
    with pytest.raises(AudioInputError, match="mute.mp4: not_audio \\(a media file with no audio stream\\)"):
        decode_audio(mute.read_bytes(), "mute.mp4")


def test_more_bytes_than_any_clip_needs_are_refused_unread():
    from s2f.inference import MAX_BYTES

    with pytest.raises(AudioInputError, match=r"big.wav: too_large \(65 MiB > 64 MiB\)") as err:
        decode_audio(bytes(MAX_BYTES + (1 << 20)), "big.wav")
    assert err.value.reason == "too_large"


def test_length_comes_from_the_header_before_decoding(monkeypatch):
    """A long file is refused from its header: not one sample is read."""
    import soundfile as sf

    def no_read(*args, **kwargs):
        raise AssertionError("decoded samples of a file the header says is too long")

    data = audio_bytes(tone(3.0, 16_000), 16_000)
    monkeypatch.setattr(sf.SoundFile, "read", no_read)
    with pytest.raises(AudioInputError) as err:
        decode_audio(data, max_seconds=2.0)
    assert err.value.reason == "too_long" and "3.0 s > 2 s" in str(err.value)


def test_base64_helpers():
    assert b64decode_audio(b64encode(b"RIFF")) == b"RIFF"
    for text, reason in (("", "empty"), (None, "empty"), ("not base64!", "not_audio"), (3, "not_audio")):
        with pytest.raises(AudioInputError) as err:
            b64decode_audio(text, "row 0")
        assert err.value.reason == reason


def _short_and_long_clips() -> tuple[np.ndarray, np.ndarray]:
    """A 2 s and a 9 s noise clip: serving repeats the first to 6 s and cuts the second to 6 s."""
    rng = np.random.default_rng(0)
    return tuple((0.1 * rng.standard_normal(int(s * SAMPLE_RATE))).astype(np.float32) for s in (2.0, 9.0))


def test_clips_are_repeated_or_cut_to_6_seconds(model):
    """The encoder always sees 6 s: a 2 s clip as itself three times, a 9 s clip as its first 6 s."""
    seen = []
    hook = model.encoder.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape))
    short, longer = _short_and_long_clips()
    try:
        np.testing.assert_allclose(model.feature(short), model.feature(np.tile(short, 3)), atol=1e-5)
        np.testing.assert_allclose(model.feature(longer), model.feature(longer[:6 * SAMPLE_RATE]), atol=1e-5)
    finally:
        hook.remove()
    assert set(seen) == {torch.Size([1, 6 * SAMPLE_RATE])}


def test_a_real_voice_gives_an_image_of_the_decoders_size(model, real_wav):
    face = model.face(decode_audio(real_wav))
    assert face.shape == (IMAGE_SIZE, IMAGE_SIZE, 3) and face.dtype == np.uint8
    assert face.std() > 0   # an untrained decoder still draws something, not a flat fill
    png = Image.open(io.BytesIO(png_bytes(face)))
    assert png.format == "PNG" and png.size == (IMAGE_SIZE, IMAGE_SIZE)
    np.testing.assert_array_equal(np.asarray(png), face)


def test_batches_equal_single_clips(model):
    waves = [tone(s, SAMPLE_RATE, hz) for s, hz in ((1.5, 200.0), (3.0, 300.0), (7.0, 150.0))]
    batch = model.faces(waves)
    assert batch.shape == (3, IMAGE_SIZE, IMAGE_SIZE, 3)
    for wave, face in zip(waves, batch):
        np.testing.assert_allclose(face.astype(int), model.face(wave).astype(int), atol=1)
    assert encode(model.encoder, []).shape == (0, model.encoder.config.out_dim)


def test_mismatched_models_are_refused(tmp_path):
    from s2f.io.checkpoints import load_model, save_model
    from s2f.models.face_decoder import FaceDecoder, FaceDecoderConfig

    encoder_pt, _ = tiny_models(tmp_path)
    save_model(FaceDecoder(FaceDecoderConfig(in_dim=64, hidden=16, texture_channels=32, landmark_hidden=8)),
               tmp_path / "other.pt")
    with pytest.raises(ValueError, match="128-d features but the decoder takes 64-d"):
        Speech2Face(load_model(encoder_pt), load_model(tmp_path / "other.pt"))


def test_every_refusal_reason_is_documented_in_serving_md():
    """docs/serving.md's table of reasons is what clients code against: exactly `REASONS`, no more, no fewer."""
    import re
    from pathlib import Path

    from s2f.inference import REASONS

    doc = (Path(__file__).resolve().parents[1] / "docs" / "serving.md").read_text()
    table = doc[doc.index("| reason | when |"):].split("\n\n")[0]
    assert set(re.findall(r"^\| `(\w+)` \|", table, re.M)) == set(REASONS)


@pytest.fixture(scope="module")
def gan(tmp_path_factory):
    from s2f.inference import GanFaces
    from tests.serving import tiny_gan

    return GanFaces.from_file(tiny_gan(tmp_path_factory.mktemp("gan")), device="cpu")


def test_a_gan_family_sees_6_seconds_and_draws_its_image_size(gan):
    """A GAN family's network gets serving's clip policy too: a 2 s clip as itself three times, 9 s cut to 6 s."""
    seen = []
    hook = gan.model.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape))
    short, longer = _short_and_long_clips()
    try:
        np.testing.assert_array_equal(gan.face(short), gan.face(np.tile(short, 3)))
        np.testing.assert_array_equal(gan.face(longer), gan.face(longer[:6 * SAMPLE_RATE]))
        faces = gan.faces([short, longer])
    finally:
        hook.remove()
    assert set(seen) == {torch.Size([1, 6 * SAMPLE_RATE]), torch.Size([2, 6 * SAMPLE_RATE])}
    assert faces.shape == (2, gan.image_size, gan.image_size, 3) == (2, 64, 64, 3) and faces.dtype == np.uint8
    assert gan.family == "wav2pix" and gan.faces([]).shape == (0, 64, 64, 3)


def test_a_gan_file_must_hold_a_gan_family(tmp_path):
    from s2f.inference import GanFaces
    from s2f.io.checkpoints import ModelFileError

    encoder_pt, _ = tiny_models(tmp_path)
    with pytest.raises(ModelFileError, match="voice_encoder.pt: a VoiceEncoder model, not a GAN family's"):
        GanFaces.from_file(encoder_pt)
