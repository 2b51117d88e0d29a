"""The GAN loop: a killed run resumes bit-identical (both optimisers, the RNGs, Wen's pre-training phase);
two CPU processes under torchrun keep the replicas equal; the pairs data and the held-out clips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from s2f.split import unseen_speech
from s2f.training.pairs import FaceVoicePairs, dense_labels
from tests.training.runs import assert_killed_run_resumes, free_port, run, weights

FAMILIES = ("wen2019", "wav2pix")


@pytest.mark.reliability
@pytest.mark.parametrize("family", FAMILIES)
def test_killed_gan_run_resumes_to_the_same_weights(tmp_path, family):
    final, curve, _ = assert_killed_run_resumes(tmp_path, "tests.training.run_gan", "--family", family,
                                                kill_after_epoch=2)
    assert any(k.startswith("generator.") for k in final)
    assert len(curve) == 4 and {"loss_d_total", "loss_g_total"} <= set(curve[0])


def test_gan_under_torchrun_keeps_two_cpu_replicas_equal(tmp_path):
    ddp = run("-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2", "--master-addr",
              "127.0.0.1", "--master-port", str(free_port()), "-m", "tests.training.run_gan",
              "--family", "wav2pix", "--out", str(tmp_path))
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    rank0, rank1 = weights(tmp_path / "weights-rank0.pt"), weights(tmp_path / "weights-rank1.pt")
    params = [k for k in rank0 if "running_" not in k and "num_batches" not in k and "_u" not in k[-3:]]
    assert len(params) >= 10
    for key in params:  # each rank saw different samples: only the gradient all-reduce keeps them equal
        torch.testing.assert_close(rank0[key], rank1[key], msg=key)


def test_pairs_give_a_face_of_another_speaker_and_replay_by_key():
    rng = np.random.default_rng(0)
    audio = rng.integers(-3000, 3000, (9, 1600)).astype(np.int16)
    faces = rng.integers(0, 256, (9, 8, 8, 3), dtype=np.uint8)
    labels, ids = dense_labels(np.array(["b", "a", "c"] * 3))
    assert ids == ["a", "b", "c"] and labels.tolist()[:3] == [1, 0, 2]
    pairs = FaceVoicePairs(audio, faces, labels, seed=5)
    for i in range(9):
        sample = pairs[(0, i)]
        assert sample["face"].shape == (3, 8, 8) and -1 <= sample["face"].min() <= sample["face"].max() <= 1
        wrong = sample["wrong_face"]
        owners = [j for j in range(9) if torch.equal(torch.from_numpy(faces[j]).float().div(127.5).sub(1)
                                                     .permute(2, 0, 1), wrong)]
        assert owners and all(labels[j] != labels[i] for j in owners)
        again = pairs[(0, i)]
        assert all(torch.equal(sample[k], again[k]) for k in sample)


def test_unseen_speech_leaves_out_the_last_clips_of_each_speaker_with_enough_clips():
    manifest = pd.DataFrame({"speaker": ["a"] * 3 + ["b"] * 1 + ["c"] * 2, "shard": ["s0"] * 6,
                             "index": [2, 0, 1, 3, 5, 4]})
    held = unseen_speech(manifest, 1)
    assert held.tolist() == [True, False, False, False, True, False]  # a's index 2, c's index 5; b keeps its one
    assert not unseen_speech(manifest, 0).any()
