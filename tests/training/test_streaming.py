"""Training reads the same batches whether a split is in memory or streamed row by row from its shards: the trained
weights are equal bit for bit, so streaming changes what a run costs, never what it learns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from s2f.config import TrainEncoderParams, TrainGanParams
from s2f.dataset import ShardColumn
from s2f.io import codecs
from s2f.io.shards import write_shard
from s2f.training.distributed import Runtime
from s2f.training.encoder import train_encoder
from s2f.training.gan import train_gan
from tests.training import run_gan, run_training

CPU = Runtime(torch.device("cpu"))


def as_shards(folder: Path, columns: dict[str, np.ndarray], per_shard: int) -> dict[str, ShardColumn]:
    """Write `columns` into shards of `per_shard` rows as preprocessing stores them (audio FLAC, faces JPEG at
    quality 100: lossy, so the in-memory side takes what the column decodes) and open each as a column."""
    n = len(next(iter(columns.values())))
    locations = []
    for number, start in enumerate(range(0, n, per_shard)):
        part = {name: values[start:start + per_shard] for name, values in columns.items()}
        arrays = {name: values for name, values in part.items() if name not in ("audio", "face")}
        if "audio" in part:
            arrays |= codecs.encoded_columns("audio", "flac", [codecs.encode_flac(a, 16000) for a in part["audio"]])
        if "face" in part:
            arrays |= codecs.encoded_columns("face", "jpeg", [codecs.encode_jpeg(f, 100) for f in part["face"]])
        write_shard(folder / f"shard-{number:05d}.npz", arrays)
        locations.append(str(folder / f"shard-{number:05d}.npz"))
    rows = np.array([(k // per_shard, k % per_shard) for k in range(n)])
    return {name: ShardColumn(name, locations, rows) for name in columns}


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_the_encoder_learns_the_same_from_streamed_shards(tmp_path):
    audio, embedding, speakers = run_training.synthetic_data()
    streamed = as_shards(tmp_path, {"audio": audio, "embedding": embedding}, per_shard=7)
    p = TrainEncoderParams.model_validate({**run_training.PARAMS, "loop": {"checkpoint_every": 0, "amp": False}})
    names = np.array([f"s{k}" for k in speakers])
    states = []
    for a, e in ((streamed["audio"], streamed["embedding"]), (audio, embedding)):
        torch.manual_seed(1)
        f_dec, head = torch.nn.Linear(6, 10), torch.nn.Linear(6, 6)
        states.append(_state(train_encoder(a, e, f_dec, head, p, CPU, lambda *_: None, speakers=names).model))
    _assert_equal(*states)


@pytest.mark.parametrize("family", ["wen2019", "wav2pix"])
def test_a_gan_learns_the_same_from_streamed_shards(tmp_path, family):
    audio, faces, labels = run_gan.synthetic_data()
    streamed = as_shards(tmp_path, {"audio": audio, "face": faces}, per_shard=5)
    faces = np.asarray(streamed["face"])  # JPEG is lossy: both sides learn from the faces as stored
    p = TrainGanParams.model_validate({**run_gan.PARAMS, "loop": {"checkpoint_every": 0, "amp": False}})
    states = [_state(train_gan(family, a, f, labels, p, CPU, lambda *_: None))
              for a, f in ((streamed["audio"], streamed["face"]), (audio, faces))]
    _assert_equal(*states)


def test_the_decoder_targets_of_streamed_faces_match_the_aligned_arrays(tmp_path):
    from s2f.training.decoder import decoder_targets

    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (6, 96, 96, 3), dtype=np.uint8)
    marks = (rng.uniform(30, 66, (6, 68, 2))).astype(np.float32)
    embedding = rng.standard_normal((6, 5)).astype(np.float32)
    cols = as_shards(tmp_path, {"face": faces, "landmarks": marks, "embedding": embedding}, per_shard=4)
    streamed = decoder_targets(cols["embedding"], cols["face"], cols["landmarks"], 32)
    whole = decoder_targets(embedding, np.asarray(cols["face"]), marks, 32)
    torch.testing.assert_close(streamed.mean, whole.mean)
    for field in ("features", "images", "textures", "landmarks"):
        rows, array = getattr(streamed, field), getattr(whole, field)
        assert tuple(rows.shape) == tuple(array.shape), field
        # textures: one face's thin-plate solve against a batch's differs in float32 rounding (≤ 0.006 of the
        # [0, 1] range on these random, ill-conditioned landmark sets)
        atol = 1e-2 if field == "textures" else 1e-6
        for i in (0, 5):
            torch.testing.assert_close(rows[i], array[i], atol=atol, rtol=0, msg=field)
