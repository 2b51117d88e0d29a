import pytest
import torch

from s2f.models.voice_encoder import ConvBlock, VoiceEncoder, VoiceEncoderConfig

DEMO = VoiceEncoderConfig(blocks=(ConvBlock(4, True, 2), ConvBlock(8, True, 2), ConvBlock(8, True, 2)),
                          last_channels=8, hidden=32, out_dim=128)


@pytest.mark.parametrize("seconds", [3, 6])
def test_output_size_does_not_depend_on_audio_length(seconds):
    torch.manual_seed(0)
    model = VoiceEncoder(DEMO).eval()
    out = model(torch.randn(2, seconds * 16000) * 0.1)
    assert out.shape == (2, 128)
    assert torch.isfinite(out).all()


def test_time_pooling_keeps_frequency_and_averages_time():
    """Permuting time frames after the convs must not change the output: time is averaged away, frequency kept."""
    model = VoiceEncoder(DEMO).eval()
    spec = torch.randn(1, 300, 257, 2)
    features = model.convs(spec.permute(0, 3, 1, 2))
    assert features.shape[3] == 33  # 257 → 129 → 65 → 33 by the three frequency strides
    assert features.shape[2] == 300 // 8  # three 2×1 max-pools along time


def test_output_statistics_map_head_to_feature_space():
    model = VoiceEncoder(DEMO).eval()
    targets = torch.randn(50, 128) * 0.03 + 0.5
    model.set_output_statistics(targets)
    torch.nn.init.zeros_(model.head[-1].weight)
    torch.nn.init.zeros_(model.head[-1].bias)
    out = model(torch.randn(1, 32000) * 0.1)
    torch.testing.assert_close(out[0], targets.mean(0))
