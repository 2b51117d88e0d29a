"""A GAN family as one audio → face model: the same call for every family, saved and loaded without pickle."""

from __future__ import annotations

import json

import pytest
import torch

from s2f.io.checkpoints import ModelFileError, load_model, save_model
from s2f.models.voice_to_face import VoiceToFace, VoiceToFaceConfig, voice_to_face_config
from s2f.models.wav2pix import Wav2PixConfig
from s2f.models.wen2019 import Wen2019Config

TINY = {"wen2019": Wen2019Config(variant="bn_tanh", width=0.02), "wav2pix": Wav2PixConfig(width=0.02)}


@pytest.mark.parametrize("family", sorted(TINY))
def test_every_family_maps_a_waveform_to_a_face_in_0_1_and_round_trips_through_its_files(tmp_path, family):
    torch.manual_seed(0)
    model = VoiceToFace(voice_to_face_config(family, TINY[family], num_speakers=5)).eval()
    wave = torch.randn(2, 6 * 16000) * 0.1
    with torch.no_grad():
        face = model(wave)
    assert face.shape == (2, 3, 64, 64) and 0 <= face.min() <= face.max() <= 1
    save_model(model, tmp_path / "m.pt", {"family": family})
    meta = json.loads((tmp_path / "m.json").read_text())
    assert meta["kind"] == "VoiceToFace" and meta["config"]["family"] == family
    loaded = load_model(tmp_path / "m.pt")
    assert isinstance(loaded, VoiceToFace) and loaded.config.family_config() == model.config.family_config()
    with torch.no_grad():
        assert torch.equal(loaded(wave), face)


def test_an_unknown_family_in_a_model_file_is_named(tmp_path):
    model = VoiceToFace(voice_to_face_config("wav2pix", TINY["wav2pix"], num_speakers=3))
    save_model(model, tmp_path / "m.pt")
    meta = json.loads((tmp_path / "m.json").read_text())
    meta["config"]["family"] = "stylegan"
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="unknown GAN family 'stylegan'"):
        load_model(tmp_path / "m.pt")


def test_config_rebuilds_tuples_from_json_lists():
    cfg = VoiceToFaceConfig("wen2019", 4, json.loads(json.dumps(voice_to_face_config(
        "wen2019", TINY["wen2019"], 4).network)))
    assert cfg.family_config() == TINY["wen2019"]
