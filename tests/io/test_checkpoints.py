import torch

from s2f.io.checkpoints import load_model, save_model
from s2f.models.face_decoder import FaceDecoder, FaceDecoderConfig
from s2f.models.voice_encoder import ConvBlock, VoiceEncoder, VoiceEncoderConfig


def test_models_round_trip_without_pickle(tmp_path):
    encoder = VoiceEncoder(VoiceEncoderConfig(blocks=(ConvBlock(4, True, 2),), last_channels=4, hidden=8, out_dim=6))
    targets = torch.randn(10, 6)
    encoder.set_output_statistics(targets.mean(0), targets.std(0))
    decoder = FaceDecoder(FaceDecoderConfig(in_dim=6, hidden=8, image_size=8, texture_grid=4, texture_channels=16, landmark_hidden=8))
    wave = torch.randn(1, 16000) * 0.1
    for model, x in ((encoder.eval(), wave), (decoder.eval(), torch.randn(2, 6))):
        path = tmp_path / f"{type(model).__name__}.pt"
        save_model(model, path)
        loaded = load_model(path)
        torch.testing.assert_close(loaded(x), model(x))
