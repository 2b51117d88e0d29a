import json

import pytest
import torch
from torch import nn

from s2f.io.checkpoints import load_model, save_model
from s2f.models.presets import PRESETS
from s2f.models.summary import meta_encoder
from s2f.models.voice_encoder import PAPER_BLOCKS, ConvBlock, VoiceEncoder, VoiceEncoderConfig

TINY = VoiceEncoderConfig(blocks=(ConvBlock(4, True, 2), ConvBlock(8, True, 2), ConvBlock(8, True, 2)),
                          last_channels=8, hidden=32, out_dim=128)
# the paper's layout (last conv strided along frequency, ReLU → BN after the time average) at toy width
TINY_PAPER = VoiceEncoderConfig(blocks=(ConvBlock(4), ConvBlock(4, True), ConvBlock(8, True, 2)),
                                last_channels=8, hidden=32, out_dim=16, last_freq_stride=2, pooled_norm=True)


@pytest.mark.parametrize("seconds", [3, 6])
def test_output_size_does_not_depend_on_audio_length(seconds):
    torch.manual_seed(0)
    model = VoiceEncoder(TINY).eval()
    out = model(torch.randn(2, seconds * 16000) * 0.1)
    assert out.shape == (2, 128)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("seconds", [3, 6])
def test_demo_preset_encodes_3_and_6_seconds_to_its_feature_size(seconds):
    torch.manual_seed(0)
    preset = PRESETS["demo"]
    model = VoiceEncoder(preset.encoder).eval()
    out = model(torch.randn(2, seconds * 16000) * 0.1)
    assert out.shape == (2, preset.feature_dim) == (2, 128)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("seconds", [3, 6])
def test_paper_preset_encodes_3_and_6_seconds_to_4096(seconds):
    """On the meta device: the full-size model costs no memory, and shapes are checked all the same."""
    model = meta_encoder(PRESETS["paper"].encoder)
    out = model(torch.empty(2, seconds * 16000, device="meta"))  # waveform → spectrogram → encoder
    assert out.shape == (2, 4096)


def test_paper_encoder_follows_table_1():
    """Nine 4×4 convs (64, 64, 128, 128, 128, 256, 512, 512, 512), 2×1 pools after the third to sixth, every conv but
    the last followed by ReLU and BN; time 598 → 37, frequency 257 → 65; FC 65·512 → 4096 → 4096."""
    model = meta_encoder(PRESETS["paper"].encoder)
    layers = list(model.convs)
    convs = [m for m in layers if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 128, 256, 512, 512, 512]
    assert all(c.kernel_size == (4, 4) for c in convs)
    assert [c.stride for c in convs] == [(1, 1)] * 7 + [(1, 2)] * 2
    pooled_after = [sum(isinstance(m, nn.Conv2d) for m in layers[:i]) for i, m in enumerate(layers)
                    if isinstance(m, nn.MaxPool2d)]
    assert pooled_after == [3, 4, 5, 6]
    assert all(p.kernel_size == (2, 1) for p in layers if isinstance(p, nn.MaxPool2d))
    assert isinstance(layers[-1], nn.Conv2d)  # no ReLU/BN after the last conv
    assert isinstance(model.pooled[0], nn.ReLU) and isinstance(model.pooled[1], nn.BatchNorm1d)
    assert [m.out_features for m in model.head if isinstance(m, nn.Linear)] == [4096, 4096]
    assert model.head[0].in_features == 65 * 512
    features = model.convs(torch.empty(1, 2, 598, 257, device="meta"))
    assert features.shape == (1, 512, 37, 65)
    assert len(PAPER_BLOCKS) == 8  # the ninth conv is the config's last_* conv


def test_time_pooling_keeps_frequency_and_averages_time():
    model = VoiceEncoder(TINY).eval()
    spec = torch.randn(1, 300, 257, 2)
    features = model.convs(spec.permute(0, 3, 1, 2))
    assert features.shape[3] == 33  # 257 → 129 → 65 → 33 by the three frequency strides
    assert features.shape[2] == 300 // 8  # three 2×1 max-pools along time


def test_output_depends_on_time_only_through_its_average():
    """Reordering the time steps after the convs leaves the output unchanged; reordering frequency does not."""
    torch.manual_seed(0)
    model = VoiceEncoder(TINY_PAPER).eval()
    with torch.no_grad():
        features = model.convs(torch.randn(1, 2, 200, 257))  # (1, C, T', F')

        def rest(x):
            return model.out_mean + model.out_scale * model.head(model.pooled(x.mean(dim=2)).flatten(1))

        flipped_time, flipped_freq = features.flip(2), features.flip(3)
        torch.testing.assert_close(rest(flipped_time), rest(features))
        assert not torch.allclose(rest(flipped_freq), rest(features))


def test_paper_layout_trains_on_cpu_at_toy_width():
    """A real backward pass through the paper layout: strided last conv and ReLU → BN after the average."""
    torch.manual_seed(0)
    model = VoiceEncoder(TINY_PAPER).train()
    out = model(torch.randn(3, 2 * 16000) * 0.1)
    assert out.shape == (3, 16)
    out.pow(2).mean().backward()
    assert model.convs[-1].weight.grad.abs().sum() > 0
    assert model.pooled[1].weight.grad.abs().sum() > 0
    assert model.head[0].in_features == 8 * 65  # frequency 257 → 129 (third block) → 65 (last conv)


def test_output_statistics_map_head_to_feature_space():
    model = VoiceEncoder(TINY).eval()
    targets = torch.randn(50, 128) * 0.03 + 0.5
    model.set_output_statistics(targets.mean(0), targets.std(0))
    torch.nn.init.zeros_(model.head[-1].weight)
    torch.nn.init.zeros_(model.head[-1].bias)
    out = model(torch.randn(1, 32000) * 0.1)
    torch.testing.assert_close(out[0], targets.mean(0))


def test_checkpoint_saved_before_the_paper_fields_still_loads(tmp_path):
    """A JSON config without last_freq_stride / pooled_norm (written before they existed) rebuilds the same model."""
    torch.manual_seed(0)
    model = VoiceEncoder(TINY).eval()
    path = tmp_path / "voice_encoder.pt"
    save_model(model, path)
    meta = json.loads(path.with_suffix(".json").read_text())
    for key in ("last_freq_stride", "pooled_norm"):
        del meta["config"][key]
    path.with_suffix(".json").write_text(json.dumps(meta))
    wave = torch.randn(1, 32000) * 0.1
    torch.testing.assert_close(load_model(path)(wave), model(wave))


def test_paper_layout_round_trips_through_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = VoiceEncoder(TINY_PAPER).eval()
    path = tmp_path / "voice_encoder.pt"
    save_model(model, path)
    loaded = load_model(path)
    assert loaded.config == TINY_PAPER
    wave = torch.randn(2, 32000) * 0.1
    torch.testing.assert_close(loaded(wave), model(wave))
