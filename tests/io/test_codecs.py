"""Shards store audio as FLAC and crops as JPEG: audio comes back bit-exact, the sample's crop is the decoded JPEG
(what every later stage reads), and a shard is a fraction of the raw arrays' size."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from s2f.config import PreprocessParams
from s2f.io import codecs
from s2f.io.shards import read_shard, write_shard
from s2f.preprocess import preprocess_corpus, process_clip


@pytest.fixture(scope="module")
def real_sample(realsample, realsample_manifest):
    clip = realsample / realsample_manifest["clip"].iloc[0]
    return process_clip(clip, PreprocessParams())


def test_flac_is_lossless_and_deterministic_on_real_speech(real_sample):
    audio = real_sample.audio
    data = codecs.encode_flac(audio, 16000)
    np.testing.assert_array_equal(codecs.decode_flac(data), audio)
    assert codecs.encode_flac(audio, 16000) == data  # no timestamps or random ids: shards reproduce byte for byte
    assert len(data) < audio.nbytes * 0.9


def test_the_sample_crop_is_the_decoded_jpeg_it_is_stored_as(real_sample):
    np.testing.assert_array_equal(codecs.decode_jpeg(real_sample.face_jpeg), real_sample.face)
    assert len(real_sample.face_jpeg) < real_sample.face.nbytes / 4


def test_pack_and_unpack_keep_each_encoding_including_empty_ones():
    items = [b"abc", b"", b"\x00" * 7]
    assert codecs.unpack(*codecs.pack(items)) == items


def test_a_shard_reads_back_decoded_and_only_the_asked_columns(tmp_path, real_sample):
    arrays = {"sample_id": np.array(["a", "b"]),
              **codecs.encoded_columns("audio", "flac", [real_sample.audio_flac] * 2),
              **codecs.encoded_columns("face", "jpeg", [real_sample.face_jpeg] * 2)}
    write_shard(tmp_path / "s.npz", arrays)
    back = read_shard(tmp_path / "s.npz")
    assert set(back) == {"sample_id", "audio", "face"}
    np.testing.assert_array_equal(back["audio"][1], real_sample.audio)
    np.testing.assert_array_equal(back["face"][0], real_sample.face)
    assert set(read_shard(tmp_path / "s.npz", ["face"])) == {"face"}


def test_preprocessed_shards_store_compressed_columns_and_reproduce_byte_for_byte(tmp_path, demo_clips):
    raw_dir, manifest = demo_clips
    accepted, _ = preprocess_corpus(manifest, raw_dir, tmp_path / "a", PreprocessParams(), workers=1)
    preprocess_corpus(manifest, raw_dir, tmp_path / "b", PreprocessParams(), workers=1)
    shard = accepted["shard"].iloc[0]
    with zipfile.ZipFile(tmp_path / "a" / shard) as npz:
        members = set(npz.namelist())
    assert {"audio_flac.npy", "face_jpeg.npy"} <= members and "audio.npy" not in members
    assert (tmp_path / "a" / shard).read_bytes() == (tmp_path / "b" / shard).read_bytes()
    size = (tmp_path / "a" / shard).stat().st_size / len(accepted)
    assert size < (96000 * 2 + 224 * 224 * 3) / 2  # under half the raw int16 audio and uint8 crop


@pytest.mark.parametrize("start, stop", [(0, 24000), (12345, 36345), (70000, None), (95990, 96000)])
def test_a_window_of_flac_decodes_to_the_same_samples(real_sample, start, stop):
    """Training reads 1.5 s windows: FLAC seeks to the window and decodes only it, sample for sample the same."""
    np.testing.assert_array_equal(codecs.decode_flac(real_sample.audio_flac, start, stop),
                                  real_sample.audio[start:stop])


def test_flac_decodes_as_libsndfile_decodes_it(real_sample):
    """Shards are written by libsndfile and read by dr_flac: the writer's own reader is the oracle, on real speech,
    in stereo, and for windows starting at and around the boundaries of level 0's 1,152-sample blocks."""
    import soundfile

    rng = np.random.default_rng(0)
    stereo = rng.integers(-3000, 3000, (20000, 2)).astype(np.int16)
    out = io.BytesIO()
    soundfile.write(out, stereo, 16000, format="FLAC", subtype="PCM_16")
    np.testing.assert_array_equal(codecs.decode_flac(out.getvalue(), 1151, 19000), stereo[1151:19000])
    data = real_sample.audio_flac
    for start in (0, 1151, 1152, 1153, 2304, 50000):
        expected, _ = soundfile.read(io.BytesIO(data), dtype="int16", start=start, stop=start + 1152)
        np.testing.assert_array_equal(codecs.decode_flac(data, start, start + 1152), expected)
    assert codecs.decode_flac(data, 96000, None).shape == (0,)
    assert codecs.decode_flac(data, 95000, 10 ** 9).shape == (1000,)
    for start, stop in [(-100, None), (0, -5), (-200, -100), (500, 100)]:  # as a slice of the clip takes them
        np.testing.assert_array_equal(codecs.decode_flac(data, start, stop), real_sample.audio[start:stop])
    np.testing.assert_array_equal(codecs.decode_flac(memoryview(bytearray(data)), 10, 20), real_sample.audio[10:20])


def test_corrupt_or_cut_flac_is_an_error_not_fewer_samples(real_sample):
    data = real_sample.audio_flac
    damaged = bytearray(data)
    damaged[len(data) // 2] ^= 0xFF
    no_length = bytearray(data)  # STREAMINFO's 36-bit sample count (a streamed encoder's FLAC) set to 0
    no_length[21] &= 0xF0
    no_length[22:26] = bytes(4)
    for broken, reason in [(data[:len(data) // 2], "cut short or corrupt"), (bytes(damaged), "cut short or corrupt"),
                           (b"RIFF" + bytes(100), "not FLAC"), (bytes(no_length), "0 samples long")]:
        with pytest.raises(ValueError, match=reason):
            codecs.decode_flac(broken)


def test_every_stored_row_carries_a_checksum_that_catches_a_flipped_bit(real_sample):
    """A decoder is no integrity check (dr_flac skips a frame whose CRC fails and reads on): each stored row has its
    CRC-32 beside it, checked before it is decoded."""
    columns = codecs.encoded_columns("audio", "flac", [real_sample.audio_flac] * 3)
    np.testing.assert_array_equal(codecs.decode_column(columns["audio_flac"], columns["audio_flac_offsets"], "flac",
                                                       crc32=columns["audio_flac_crc32"])[2], real_sample.audio)
    data = columns["audio_flac"].copy()
    data[len(data) // 2 + 100] ^= 1  # inside row 1
    with pytest.raises(ValueError, match="row 1: its .* stored bytes fail their CRC-32 check"):
        codecs.decode_column(data, columns["audio_flac_offsets"], "flac", threads=2, crc32=columns["audio_flac_crc32"])
