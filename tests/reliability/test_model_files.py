"""A model file that is not one (garbage, a truncated copy, another model's weights, a broken JSON) is named with the
reason, by the loaders and in one line by the `s2f` command: torch alone says `IndexError: pop from empty list`."""

from __future__ import annotations

import random
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from s2f.io.checkpoints import ModelFileError, load_identity_head, load_model, save_identity_head, save_model
from s2f.models.face_decoder import FaceDecoder, FaceDecoderConfig
from s2f.models.voice_encoder import ConvBlock, VoiceEncoder, VoiceEncoderConfig
from tests.conftest import ROOT

# 64 bytes that torch.load(weights_only=True) fails on with "IndexError: pop from empty list" (the reported symptom)
GARBAGE = bytes(random.Random(8).randrange(256) for _ in range(64))


def _encoder() -> VoiceEncoder:
    return VoiceEncoder(VoiceEncoderConfig(blocks=(ConvBlock(4, True, 2),), last_channels=4, hidden=8, out_dim=6))


def _decoder() -> FaceDecoder:
    return FaceDecoder(FaceDecoderConfig(in_dim=6, hidden=8, image_size=8, texture_grid=4, texture_channels=16,
                                         landmark_hidden=8))


@pytest.fixture
def saved(tmp_path: Path) -> dict[str, Path]:
    """A real encoder and decoder written by save_model."""
    paths = {"encoder": tmp_path / "voice_encoder.pt", "decoder": tmp_path / "face_decoder.pt"}
    save_model(_encoder(), paths["encoder"])
    save_model(_decoder(), paths["decoder"])
    return paths


def test_garbage_weights_are_named_not_a_checkpoint(saved):
    saved["encoder"].write_bytes(GARBAGE)
    with pytest.raises(ModelFileError, match=rf"^{saved['encoder']}: not a torch checkpoint"):
        load_model(saved["encoder"])


def test_truncated_checkpoint_is_named_truncated(saved):
    data = saved["decoder"].read_bytes()
    saved["decoder"].write_bytes(data[: len(data) // 2])  # an interrupted copy
    with pytest.raises(ModelFileError, match=rf"^{saved['decoder']}: truncated or damaged torch checkpoint"):
        load_model(saved["decoder"])


def test_empty_weights_file(saved):
    saved["encoder"].write_bytes(b"")
    with pytest.raises(ModelFileError, match=rf"^{saved['encoder']}: empty file"):
        load_model(saved["encoder"])


def test_another_models_weights_name_the_keys(saved):
    """The encoder's .pt copied over the decoder's (its JSON still says FaceDecoder)."""
    saved["decoder"].write_bytes(saved["encoder"].read_bytes())
    with pytest.raises(ModelFileError, match=rf"^{saved['decoder']}: weights do not fit the FaceDecoder that "
                                             r"face_decoder\.json describes: missing: .*; unexpected: "):
        load_model(saved["decoder"])


def test_same_keys_other_shapes_name_the_shape(tmp_path):
    path = tmp_path / "dec.pt"
    save_model(_decoder(), path)
    wider = FaceDecoder(FaceDecoderConfig(in_dim=7, hidden=8, image_size=8, texture_grid=4, texture_channels=16,
                                          landmark_hidden=8))
    torch.save(wider.state_dict(), path)
    with pytest.raises(ModelFileError, match=r"wrong shape: .*\(8, 7\) ≠ \(8, 6\)"):
        load_model(path)


def test_a_torch_file_that_is_not_a_state_dict(saved):
    torch.save([1, 2, 3], saved["encoder"])
    with pytest.raises(ModelFileError, match=r"holding a list, not a model's weights"):
        load_model(saved["encoder"])


def test_objects_other_than_tensors_are_refused_by_name(saved):
    torch.save({"w": np.zeros(3)}, saved["encoder"])
    with pytest.raises(ModelFileError, match=r"objects other than tensors, refused by weights-only loading"):
        load_model(saved["encoder"])


def test_missing_json_names_the_json(saved):
    saved["encoder"].with_suffix(".json").unlink()
    with pytest.raises(ModelFileError, match=r"voice_encoder\.json: missing: the model's config"):
        load_model(saved["encoder"])


@pytest.mark.parametrize(("text", "reason"), [
    ("{not json", r"not a model config: Expecting property name"),
    ('["VoiceEncoder"]', r"not a model config: a JSON list"),
    ('{"kind": "Resnet", "config": {}}', r"unknown model kind 'Resnet'"),
    ('{"kind": "FaceDecoder"}', r"not a model config: no key 'config'"),
    ('{"kind": "FaceDecoder", "config": {"colour": 1}}', r"not a model config: .*colour"),
])
def test_a_broken_json_is_named_with_the_reason(saved, text, reason):
    saved["decoder"].with_suffix(".json").write_text(text)
    with pytest.raises(ModelFileError, match=rf"face_decoder\.json: .*{reason}"):
        load_model(saved["decoder"])


def test_identity_head_garbage_is_named(tmp_path):
    path = tmp_path / "identity_head.pt"
    save_identity_head(torch.nn.Linear(6, 3), path, {"speakers": ["a", "b", "c"]})
    assert load_identity_head(path).out_features == 3
    path.write_bytes(GARBAGE)
    with pytest.raises(ModelFileError, match=rf"^{path}: not a torch checkpoint"):
        load_identity_head(path)


def _voice(path: Path) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(16000)
        out.writeframes((np.sin(np.arange(16000) / 10) * 8000).astype(np.int16).tobytes())
    return path


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_s2f_infer_with_a_bad_encoder_prints_one_line(tmp_path, saved, damage):
    data = saved["encoder"].read_bytes()
    saved["encoder"].write_bytes(GARBAGE if damage == "garbage" else data[: len(data) // 3])
    proc = subprocess.run([sys.executable, "-m", "s2f.cli", "infer", str(_voice(tmp_path / "v.wav")), "-o",
                           str(tmp_path / "face.png"), "--encoder", str(saved["encoder"]),
                           "--decoder", str(saved["decoder"])], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"s2f infer: {saved['encoder']}: "), proc.stderr[-3000:]
    assert ("not a torch checkpoint" if damage == "garbage" else "truncated") in lines[0]
    assert not (tmp_path / "face.png").exists()
