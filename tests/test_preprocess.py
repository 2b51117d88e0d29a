"""Bad inputs land in quarantine with a reason while the rest of the run succeeds."""

import shutil

import numpy as np
import pandas as pd
import pytest

from s2f.config import PreprocessParams
from s2f.io.shards import read_shard
from s2f.preprocess import preprocess_corpus
from tests.conftest import ffmpeg


@pytest.fixture()
def corpus_with_bad_clips(tmp_path, demo_clips):
    raw_dir, manifest = demo_clips
    raw = tmp_path / "raw"
    shutil.copytree(raw_dir, raw)
    good = raw / manifest["clip"].iloc[0]
    bad = raw / "clips"
    data = good.read_bytes()
    (bad / "truncated.mp4").write_bytes(data[: len(data) // 3])
    ffmpeg("-i", str(good), "-an", "-c:v", "copy", str(bad / "no_audio.mp4"))
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=320x320:d=3:r=5", "-f", "lavfi", "-i", "sine=frequency=300:duration=3",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(bad / "no_face.mp4"))
    (bad / "empty.mp4").write_bytes(b"")
    extra = pd.DataFrame([{"sample_id": n, "clip": f"clips/{n}.mp4", "speaker": "bad"}
                          for n in ("truncated", "no_audio", "no_face", "empty")])
    return raw, pd.concat([manifest, extra], ignore_index=True), manifest


def test_bad_clips_are_quarantined_with_reasons_and_good_ones_kept(tmp_path, corpus_with_bad_clips):
    raw, manifest, good = corpus_with_bad_clips
    accepted, quarantined = preprocess_corpus(manifest, raw, tmp_path / "pre", PreprocessParams(shard_size=4), workers=2)
    assert sorted(accepted["sample_id"]) == sorted(good["sample_id"])
    reasons = dict(zip(quarantined["sample_id"], quarantined["reason"]))
    assert reasons == {"truncated": "unreadable_container", "no_audio": "no_audio_stream", "no_face": "no_face",
                       "empty": "empty_file"}
    assert (quarantined["detail"].loc[quarantined["reason"] == "unreadable_container"].str.len() > 0).all()
    on_disk = pd.read_csv(tmp_path / "pre" / "quarantine.csv")
    assert set(on_disk["reason"]) == set(reasons.values())
    # every accepted sample is in the shard the manifest names, at its index
    for row in accepted.itertuples():
        shard = read_shard(tmp_path / "pre" / row.shard)
        assert shard["sample_id"][row.index] == row.sample_id
        assert shard["audio"].shape[1] == 96000 and shard["face"].shape[1:] == (224, 224, 3)


def test_short_clip_is_repeated_to_six_seconds(tmp_path, demo_clips):
    raw_dir, manifest = demo_clips
    params = PreprocessParams()
    accepted, _ = preprocess_corpus(manifest.head(1), raw_dir, tmp_path / "pre", params, workers=1)
    audio = read_shard(tmp_path / "pre" / accepted["shard"].iloc[0])["audio"][0]
    n = int(accepted["audio_samples"].iloc[0])
    assert n < 6 * 16000  # the fixture's clips are 3-4.5 s
    np.testing.assert_array_equal(audio[n:2 * n][:16000], audio[:16000])
