import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from s2f.models.wav2pix import (D_KEYS, G_KEYS, Discriminator, Generator, SpeechEncoder, Wav2PixConfig,
                                build_wav2pix, pre_emphasise)

SECOND = 16000


def output_shapes(model: nn.Module, kind: type, run) -> list[tuple[int, ...]]:
    """The output shape of every `kind` layer of `model` during `run()`, in call order."""
    shapes: list[tuple[int, ...]] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape)))
             for m in model.modules() if isinstance(m, kind)]
    run()
    for h in hooks:
        h.remove()
    return shapes


def test_encoder_convs_follow_segan_maps_and_time_axis_to_a_128d_embedding():
    torch.manual_seed(0)
    encoder = SpeechEncoder(Wav2PixConfig()).eval()
    wave = torch.randn(2, SECOND) * 0.1
    with torch.no_grad():
        shapes = output_shapes(encoder, nn.Conv1d, lambda: encoder(wave))
        e = encoder(wave)
    assert shapes == [(2, 16, 4000), (2, 32, 1000), (2, 128, 250), (2, 256, 63), (2, 512, 16), (2, 1024, 4)]
    convs = [m for m in encoder.modules() if isinstance(m, nn.Conv1d)]
    assert all(c.kernel_size == (15,) and c.stride == (4,) and c.padding == (7,) for c in convs)
    assert encoder.flat_dim == 4096
    assert e.shape == (2, 128) and torch.isfinite(e).all()


def test_encoder_takes_exactly_one_second():
    encoder = SpeechEncoder(Wav2PixConfig(width=0.0625)).eval()
    with pytest.raises(ValueError, match="exactly 16000"):
        encoder(torch.zeros(1, SECOND + 1))


def test_pre_emphasis_subtracts_095_of_the_previous_sample():
    x = torch.tensor([[1.0, 2.0, 0.5, -1.0]])
    expected = torch.tensor([[1.0, 2.0 - 0.95, 0.5 - 1.9, -1.0 - 0.475]])
    torch.testing.assert_close(pre_emphasise(x, 0.95), expected)


def test_embed_clip_on_six_seconds_is_the_mean_of_six_window_embeddings():
    torch.manual_seed(0)
    encoder = SpeechEncoder(Wav2PixConfig(width=0.125)).eval()
    wave = torch.randn(3, 6 * SECOND + 500) * 0.1  # the trailing half-window is dropped
    with torch.no_grad():
        windows = torch.stack([encoder(wave[:, i * SECOND:(i + 1) * SECOND]) for i in range(6)])  # (6, B, 128)
        clip = encoder.embed_clip(wave)
    assert clip.shape == (3, 128)
    torch.testing.assert_close(clip, windows.mean(0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size, upsamplings", [(64, 4), (128, 5)])
def test_generator_upsamples_4x4_to_the_image_size(size, upsamplings):
    torch.manual_seed(0)
    config = Wav2PixConfig(image_size=size)
    generator = Generator(config).eval()
    with torch.no_grad():
        shapes = output_shapes(generator, nn.ConvTranspose2d, lambda: generator(torch.randn(2, 128)))
        face = generator(torch.randn(2, 128))
    channels = (1024, 512, 256, 128, 64)[1:upsamplings] + (3,)  # out of each ConvT
    assert shapes == [(2, c, 8 * 2 ** i, 8 * 2 ** i) for i, c in enumerate(channels)]
    assert generator.project.out_features == 1024 * 4 * 4
    assert face.shape == (2, 3, size, size)


@pytest.mark.parametrize("size, channels", [(64, 512), (128, 1024)])
def test_discriminator_concatenates_the_embedding_at_4x4_before_the_last_conv(size, channels):
    torch.manual_seed(0)
    disc = Discriminator(Wav2PixConfig(image_size=size)).eval()
    seen: list[tuple[int, ...]] = []
    hook = disc.score.register_forward_hook(lambda _m, inputs, _o: seen.append(tuple(inputs[0].shape)))
    with torch.no_grad():
        score, features = disc(torch.rand(2, 3, size, size) * 2 - 1, torch.randn(2, 128))
    hook.remove()
    assert features.shape == (2, channels, 4, 4)
    assert seen == [(2, channels + 64, 4, 4)]                       # 64 channels of the projected embedding
    assert disc.score.kernel_size == (4, 4) and score.shape == (2,)
    first, *rest = [m for m in disc.features if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    assert isinstance(first, nn.Conv2d) and isinstance(rest[0], nn.Conv2d)  # no BN after the first conv


@pytest.mark.parametrize("size", [64, 128])
def test_spectral_norm_is_on_every_conv_and_linear_of_g_and_d(size):
    config = Wav2PixConfig(image_size=size, width=0.0625)
    for model in (Generator(config), Discriminator(config)):
        layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
        assert len(layers) >= 5
        for layer in layers:
            assert parametrize.is_parametrized(layer, "weight"), layer
            assert type(layer.parametrizations.weight[0]).__name__ == "_SpectralNorm"


def test_generator_output_is_tanh_bounded():
    torch.manual_seed(0)
    generator = Generator(Wav2PixConfig(width=0.125)).eval()
    with torch.no_grad():
        face = generator(torch.randn(4, 128) * 100)
    assert isinstance(generator.upsample[-1], nn.Tanh)
    assert face.min() >= -1 and face.max() <= 1 and face.abs().max() > 0.5


def test_embedding_dropout_is_the_noise_in_training_only():
    torch.manual_seed(0)
    generator = Generator(Wav2PixConfig(width=0.125))
    e = torch.randn(4, 128)
    generator.train()
    assert not torch.allclose(generator(e), generator(e))
    generator.eval()
    torch.testing.assert_close(generator(e), generator(e), rtol=0, atol=0)


def test_width_scales_every_channel_count_but_the_embedding():
    narrow = Wav2PixConfig(width=0.25)
    assert narrow.encoder_widths == (4, 8, 32, 64, 128, 256)
    assert narrow.generator_widths == (256, 128, 64, 32)
    assert narrow.discriminator_widths == (16, 32, 64, 128)
    tiny = Wav2PixConfig(image_size=128, width=0.001)
    assert tiny.encoder_widths == (4,) * 6 and tiny.generator_widths == (4,) * 5 and tiny.scaled(tiny.hidden) == 4
    models = build_wav2pix(narrow, num_speakers=10)
    assert models["encoder"].head[0].out_features == 64 and models["encoder"].head[-1].out_features == 128
    assert models["discriminator"].score.in_channels == 128 + 16
    assert models["classifier"].in_features == 128 and models["classifier"].out_features == 10
    full = sum(p.numel() for p in build_wav2pix(Wav2PixConfig(), 10).parameters())
    assert sum(p.numel() for p in models.parameters()) < full / 8


def test_build_splits_the_networks_between_the_two_steps():
    models = build_wav2pix(Wav2PixConfig(width=0.0625), num_speakers=5)
    assert set(models) == set(G_KEYS) | set(D_KEYS) == {"encoder", "classifier", "generator", "discriminator"}
    assert not set(G_KEYS) & set(D_KEYS)
    assert isinstance(models["classifier"], nn.Linear)


def test_config_rejects_other_image_sizes():
    with pytest.raises(ValueError, match="64 or 128"):
        Wav2PixConfig(image_size=96)
