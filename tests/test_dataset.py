"""A split read row by row from its shards gives exactly the arrays the shards hold, locally and from S3."""

from __future__ import annotations

import numpy as np
import pytest

from s2f.config import FeaturesParams, PreprocessParams
from s2f.dataset import load_split
from s2f.features import compute_features
from s2f.io.shards import read_shard
from s2f.preprocess import preprocess_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, demo_clips):
    raw_dir, manifest = demo_clips
    root = tmp_path_factory.mktemp("split")
    preprocess_corpus(manifest, raw_dir, root / "pre", PreprocessParams(shard_size=2), workers=1)
    compute_features(root / "pre", root / "feat", FeaturesParams(), workers=1)
    return root / "pre", root / "feat"


def _expected(pre, feat, data, column: str) -> np.ndarray:
    folder, name = (feat, "features_shard") if column in ("embedding", "landmarks") else (pre, "shard")
    return np.stack([read_shard(folder / row[name], [column])[column][row["index"]]
                     for _, row in data.manifest.iterrows()])


@pytest.mark.parametrize("split", ["train", "test"])
def test_every_column_equals_the_shards_rows(corpus, split):
    pre, feat = corpus
    data = load_split(pre, feat, split, audio=True, faces=True, landmarks=True)
    assert len({*data.manifest["shard"]}) >= 1
    for column in ("embedding", "audio", "face", "landmarks"):
        col = getattr(data, column)
        expected = _expected(pre, feat, data, column)
        assert col.shape == expected.shape and col.dtype == expected.dtype
        np.testing.assert_array_equal(np.asarray(col), expected)
        np.testing.assert_array_equal(col[1], expected[1])
        np.testing.assert_array_equal(col[-1], expected[-1])
        np.testing.assert_array_equal(col[0:2], expected[0:2])
    np.testing.assert_array_equal(data.audio[1, 100:200], _expected(pre, feat, data, "audio")[1, 100:200])


def test_a_masked_subset_stays_lazy_and_reads_the_right_rows(corpus):
    pre, feat = corpus
    data = load_split(pre, feat, "train", audio=True)
    mask = np.arange(len(data.audio)) % 2 == 1
    sub = data.subset(mask)
    assert len(sub.audio) == mask.sum() and type(sub.audio) is type(data.audio)
    np.testing.assert_array_equal(np.asarray(sub.audio), np.asarray(data.audio)[mask])
    assert list(sub.speakers) == list(data.speakers[mask])


def test_the_digest_names_the_rows_and_files(corpus):
    pre, feat = corpus
    data = load_split(pre, feat, "train", audio=True)
    assert data.audio.digest() == load_split(pre, feat, "train").audio.digest()
    assert data.audio[np.arange(len(data.audio)) > 0].digest() != data.audio.digest()


def test_rows_stream_from_s3_shards(corpus, s3_env):
    from s2f.io.storage import upload_file

    _, bucket = s3_env
    pre, feat = corpus
    for shard in sorted(pre.glob("shard-*.npz")):
        upload_file(shard, f"s3://{bucket}/pre/{shard.name}")
    local = load_split(pre, feat, "train", audio=True, faces=True)
    remote = load_split(f"s3://{bucket}/pre", feat, "train", audio=True, faces=True)
    np.testing.assert_array_equal(np.asarray(remote.audio), np.asarray(local.audio))
    np.testing.assert_array_equal(remote.face[0], local.face[0])


@pytest.mark.parametrize("column", ["audio", "face"])
def test_a_damaged_row_is_an_error_naming_its_shard_and_row(corpus, tmp_path, column):
    """A bit flipped inside a stored row (a bad disk, a partial copy) must stop training with where it is, not hand
    the model a different clip or crop: dr_flac skips a damaged FLAC frame and fills the window from the frames
    after it, so only the row's stored checksum catches a window read across the damage."""
    from s2f.io.shard_rows import ShardRows
    from s2f.io.shards import ShardError

    pre, _ = corpus
    shard = tmp_path / "shard.npz"
    shard.write_bytes(sorted(pre.glob("shard-*.npz"))[0].read_bytes())
    rows = ShardRows(shard, [column])
    clean = rows.row(column, 0)
    start, end = rows.offsets[column][1:3]
    damaged = bytearray(shard.read_bytes())
    damaged[rows.members[column].offset + int(start + end) // 2] ^= 0x10
    shard.write_bytes(bytes(damaged))
    window = slice(0, 96000) if column == "audio" else None  # the whole clip: the damage lies inside the window
    with pytest.raises(ValueError, match=rf"{shard}: row 1 of '{column}' is unusable \(row 1: its \d+ stored bytes "
                                         r"fail their CRC-32 check"):
        rows.row(column, 1, window)
    np.testing.assert_array_equal(rows.row(column, 0), clean)  # the other rows still read
    with pytest.raises(ShardError, match=f"{shard}: not a readable shard"):  # whole: the ZIP's CRC-32 says so first
        read_shard(shard, [column])
