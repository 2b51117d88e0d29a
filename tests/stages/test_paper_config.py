"""The paper's configuration end to end: `features.backend: vggface` + `train_encoder.model.preset: paper` through a
real `dvc repro` of every stage, on a tiny demo corpus.

No VGG-Face weights ship with the repo, so the test writes a full-size file (VGG-16, 145M parameters, 4096-D fc7,
2,622-class fc8) in keras-vggface's HDF5 layout with seeded He-initialised weights: the same shapes, layout and
code paths as the real `rcmalli_vggface_tf_vgg16.h5`, only not trained. The encoder keeps the paper preset (its
kernel, frequency strides, pooled ReLU-BN, and an output sized by the 4096-D features) with its conv and FC widths
overridden to toy ones, so a 2-core CI machine trains it in seconds.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from s2f.config import PAPER_WEIGHTS
from s2f.faces.vggface import VggFaceConfig
from tests.tiny_repo import make_tiny_repo, run

STAGES = ("download@0", "collect", "preprocess@0", "features@0", "gather", "train_decoder", "train_encoder", "train_gan@wen2019",
          "train_gan@wav2pix", "evaluate", "register")
# the paper's layer layout (Table 1: pools after the 3rd-6th convs, frequency stride 2 on the last two) at 1/16 width
NARROW_PAPER_BLOCKS = [{"channels": 4}, {"channels": 4},
                       {"channels": 8, "time_pool": True}, {"channels": 8, "time_pool": True},
                       {"channels": 8, "time_pool": True}, {"channels": 16, "time_pool": True},
                       {"channels": 32}, {"channels": 32, "freq_stride": 2}]


def write_vggface_weights(path: Path, seed: int = 0, config: VggFaceConfig = VggFaceConfig()) -> Path:
    """A keras-vggface-layout HDF5 file (`s2f.faces.vggface` docstring) of `config`'s shapes, written with h5py
    from numpy: He-normal kernels (fc8 at 1/√fan_in) and zero biases, so every layer keeps its input's scale, with
    conv1_1 scaled by 1/100 for 0-255 pixel inputs: fc7 norms of order 10², inside the backend's `norm_range`
    (unscaled they are ~10⁴, and the features stage quarantines every shard).

    Much faster than building the 145M-parameter net in Keras (tests/faces/test_vggface.py's narrow nets do that).
    """
    rng = np.random.default_rng(seed)
    shapes = config.weight_shapes()
    layers = ["input_1"] + [name for name in shapes if name.startswith("conv")] + ["flatten", *shapes]
    layers = list(dict.fromkeys(layers))  # the file lists weightless layers too, with empty weight_names
    with h5py.File(path, "w") as handle:
        handle.attrs["layer_names"] = np.array([name.encode() for name in layers])
        handle.attrs["backend"] = b"tensorflow"
        handle.attrs["keras_version"] = b"2.1.5"
        for name in layers:
            group = handle.create_group(name)
            if name not in shapes:
                group.attrs["weight_names"] = np.array([], dtype="S1")
                continue
            kernel_shape, bias_shape = shapes[name]
            fan_in = int(np.prod(kernel_shape[:-1]))
            std = math.sqrt((1.0 if name == "fc8" else 2.0) / fan_in) * (0.01 if name == "conv1_1" else 1.0)
            kernel = rng.standard_normal(kernel_shape, dtype=np.float32) * np.float32(std)
            weight_names = [f"{name}/kernel:0", f"{name}/bias:0"]
            group.attrs["weight_names"] = np.array([w.encode() for w in weight_names])
            group.create_dataset(weight_names[0], data=kernel)
            group.create_dataset(weight_names[1], data=np.zeros(bias_shape, np.float32))
    return path


@pytest.fixture(scope="module")
def paper_repo(tmp_path_factory) -> tuple[Path, dict[str, float]]:
    """A tiny repo on the paper's configuration, reproduced stage by stage; (repo, seconds per stage)."""
    weights = write_vggface_weights(tmp_path_factory.mktemp("vggface") / "rcmalli_vggface_tf_vgg16.h5")
    overrides = {
        "features": {"backend": "vggface", "vggface_weights": str(weights)},
        "train_encoder": {"model": {"preset": "paper", "blocks": NARROW_PAPER_BLOCKS, "last_channels": 32,
                                    "hidden": 64},
                          "epochs": 2, "batch_size": 4},
    }
    repo = make_tiny_repo(tmp_path_factory.mktemp("s2f-paper"), overrides)
    seconds = {}
    for stage in STAGES:  # one at a time: a failure names its stage, and the report gives each one's time
        start = time.perf_counter()
        out = run([sys.executable, "-m", "dvc", "repro", "--single-item", stage], repo).stdout
        seconds[stage] = time.perf_counter() - start
        assert f"Running stage '{stage}'" in out, out
    print("paper configuration, seconds per stage: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))
    return repo, seconds


@pytest.mark.slow
def test_the_params_are_the_papers(paper_repo):
    repo, _ = paper_repo
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["features"]["backend"] == "vggface" and params["train_encoder"]["model"]["preset"] == "paper"
    assert params["train_encoder"]["loss"]["weights"] == "auto"  # auto + vggface: the paper's λ1, λ2


@pytest.mark.slow
def test_the_face_features_are_vggface_fc7(paper_repo):
    import pandas as pd
    import torch

    repo, _ = paper_repo
    manifest = pd.read_parquet(repo / "data/features/manifest.parquet")
    assert set(manifest["backend"]) == {"vggface"} and len(manifest) == 12  # 6 speakers × 2 clips, none quarantined
    shards = sorted((repo / "data/features").glob("features-*.npz"))
    assert shards
    embedding = np.concatenate([np.load(shard)["embedding"] for shard in shards])
    assert embedding.shape == (12, 4096) and np.isfinite(embedding).all()
    assert (embedding >= 0).all()  # fc7 after its ReLU
    head = torch.load(repo / "data/features/identity_head.pt", weights_only=True)  # VGG-Face's fc8 as the f_VGG
    assert {tuple(v.shape) for v in head.values()} == {(2622, 4096), (2622,)}


@pytest.mark.slow
def test_the_encoder_is_the_paper_preset_with_a_4096_d_output(paper_repo):
    import torch

    from s2f.io.checkpoints import load_model

    repo, _ = paper_repo
    meta = json.loads((repo / "models/voice_encoder.json").read_text())
    assert meta["preset"] == "paper"
    config = meta["config"]
    assert config["out_dim"] == 4096 and config["pooled_norm"] and config["last_freq_stride"] == 2
    assert config["kernel"] == 4
    encoder = load_model(repo / "models/voice_encoder.pt")
    with torch.no_grad():
        out = encoder(torch.zeros(2, 16000 * 2).uniform_(-0.1, 0.1))
    assert out.shape == (2, 4096) and torch.isfinite(out).all()


@pytest.mark.slow
def test_train_encoder_logged_the_papers_weights_and_finite_losses(paper_repo):
    repo, _ = paper_repo
    metrics = json.loads((repo / "reports/train_encoder.json").read_text())
    for term, weight in PAPER_WEIGHTS.items():  # λ1 = 0.025, λ2 = 200: fixed, never calibrated
        assert metrics[f"weight_{term}"] == pytest.approx(weight), term
    assert not any(key.startswith("calibration_") for key in metrics), metrics
    for term in ("loss_decoder_l1", "loss_normalized_l2", "loss_distill", "loss_total"):
        assert math.isfinite(metrics[term]), (term, metrics[term])
    assert metrics["loss_distill"] > 0  # the term trains (weight 200), it is not only reported
    with (repo / "reports/plots/train_encoder.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 2  # one per epoch
    for row in rows:
        assert float(row["weight_distill"]) == pytest.approx(PAPER_WEIGHTS["distill"])
        for term in ("loss_decoder_l1", "loss_normalized_l2", "loss_distill", "loss_total"):
            assert math.isfinite(float(row[term])), (row["epoch"], term, row[term])


@pytest.mark.slow
def test_evaluate_reports_the_speech2face_family(paper_repo):
    repo, _ = paper_repo
    report = json.loads((repo / "reports/metrics.json").read_text())
    assert {"speech2face", "ridge", "wen2019", "wav2pix"} <= set(report)
    s2f = report["speech2face"]
    for seconds in ("3s_repeated", "6s"):
        retrieval, features = s2f["retrieval"][seconds], s2f["features"][seconds]
        assert retrieval["gallery_size"] == 3 and retrieval["chance_at_1"] == pytest.approx(1 / 3, rel=2e-6)
        assert 0.0 <= retrieval["recall_at_1"] <= retrieval["recall_at_2"] <= 1.0
        assert all(math.isfinite(features[k]) for k in ("cosine_mean", "l1_mean", "l2_mean")), features
    assert s2f["decoded"]["images"]["generated"] == 6  # the decoded faces embedded by VGG-Face too
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert set(lock["stages"]) == set(STAGES)
