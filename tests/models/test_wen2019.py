import pytest
import torch
from torch import nn

from s2f.models.wen2019 import (D_STEP_KEYS, G_STEP_KEYS, VARIANTS, FaceTrunk, Generator, VoiceEmbedder,
                                Wen2019Config, build_wen2019, step_parameters)

SMALL = 0.25  # width for the tests that run real numbers through the networks


def output_shapes(module: nn.Module, kinds: tuple[type, ...], example: torch.Tensor) -> list[tuple[int, ...]]:
    """Output shapes of the `kinds` layers, in the order the forward pass calls them (on the meta device: free)."""
    shapes: list[tuple[int, ...]] = []
    handles = [m.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape)))
               for m in module.modules() if isinstance(m, kinds)]
    try:
        module(example)
    finally:
        for h in handles:
            h.remove()
    return shapes


def meta(build, *args):
    with torch.device("meta"):
        return build(*args)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def layers_of(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if not any(m.children())]


def test_variants_are_the_re_papers_five():
    assert VARIANTS == ("original", "bn", "bn_tanh", "tanh", "dropout")
    with pytest.raises(ValueError, match="variant"):
        Wen2019Config(variant="spectral_norm")
    with pytest.raises(ValueError, match="128 px"):
        Wen2019Config(generator_channels=(1024, 512, 256, 128, 64, 32))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("seconds", [3, 6])
def test_embedder_halves_time_with_each_of_its_five_convs(variant, seconds):
    frames = 1 + (seconds * 16_000 - 400) // 160  # 298, 598
    model = meta(VoiceEmbedder, Wen2019Config(variant=variant), 10)
    shapes = output_shapes(model, (nn.Conv1d,), torch.empty(2, 64, frames, device="meta"))
    times = [-(-frames // 2 ** k) for k in range(1, 6)]
    assert shapes == [(2, c, t) for c, t in zip((256, 384, 576, 864, 64), times)]
    assert model(torch.empty(2, 64, frames, device="meta")).shape == (2, 64)
    # BN + ReLU after the first four, whatever the variant; none after the last
    kinds = [type(m) for m in layers_of(model.convs)]
    assert kinds == [nn.Conv1d, nn.BatchNorm1d, nn.ReLU] * 4 + [nn.Conv1d]
    assert model.classifier.in_features == 64 and model.classifier.out_features == 10


@pytest.mark.parametrize("variant", VARIANTS)
def test_generator_doubles_from_4_to_64_pixels(variant):
    config = Wen2019Config(variant=variant)
    model = meta(Generator, config)
    shapes = output_shapes(model, (nn.ConvTranspose2d, nn.Conv2d), torch.empty(2, 64, device="meta"))
    assert shapes == [(2, 1024, 4, 4), (2, 512, 8, 8), (2, 256, 16, 16), (2, 128, 32, 32), (2, 64, 64, 64),
                      (2, 3, 64, 64)]
    convs = [m for m in model.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [c.kernel_size for c in convs] == [(4, 4)] * 5
    assert [c.stride for c in convs] == [(1, 1)] + [(2, 2)] * 4
    assert model.to_rgb.kernel_size == (1, 1)


@pytest.mark.parametrize("variant", VARIANTS)
def test_trunk_halves_from_64_to_4_pixels_then_64_features(variant):
    model = meta(FaceTrunk, Wen2019Config(variant=variant))
    shapes = output_shapes(model, (nn.Conv2d,), torch.empty(2, 3, 64, 64, device="meta"))
    assert shapes == [(2, 32, 64, 64), (2, 64, 32, 32), (2, 128, 16, 16), (2, 256, 8, 8), (2, 512, 4, 4),
                      (2, 64, 1, 1)]
    assert model(torch.empty(2, 3, 64, 64, device="meta")).shape == (2, 64)
    assert model.to_features.kernel_size == (4, 4) and model.to_features.padding == (0, 0)


def test_trunk_kernel_3_gives_the_same_sizes():
    model = meta(FaceTrunk, Wen2019Config(trunk_kernel=3))
    shapes = output_shapes(model, (nn.Conv2d,), torch.empty(1, 3, 64, 64, device="meta"))
    assert [s[2] for s in shapes] == [64, 32, 16, 8, 4, 1]


@pytest.mark.parametrize("variant", VARIANTS)
def test_bn_tanh_and_dropout_only_where_the_variant_has_them(variant):
    models = meta(build_wen2019, Wen2019Config(variant=variant), 10)
    g, trunk = layers_of(models["generator"]), layers_of(models["trunk"])
    bn = variant in ("bn", "bn_tanh")
    # BN right before each of G's 5 ReLUs and the trunk's 5 LeakyReLUs, or nowhere in G and the trunk
    for layers, act in ((g, nn.ReLU), (trunk, nn.LeakyReLU)):
        acts = [i for i, m in enumerate(layers) if isinstance(m, act)]
        assert len(acts) == 5
        assert sum(isinstance(m, nn.BatchNorm2d) for m in layers) == (5 if bn else 0)
        assert all(isinstance(layers[i - 1], nn.BatchNorm2d) == bn for i in acts)
    assert isinstance(models["generator"].out, nn.Tanh) == (variant in ("bn_tanh", "tanh"))
    # Dropout(0.5) right after each LeakyReLU of the trunk (D and C) in the dropout variant; never in G
    drops = [m for m in trunk if isinstance(m, nn.Dropout)]
    assert len(drops) == (5 if variant == "dropout" else 0)
    assert all(d.p == 0.5 for d in drops)
    if variant == "dropout":
        assert all(isinstance(trunk[i + 1], nn.Dropout) for i, m in enumerate(trunk) if isinstance(m, nn.LeakyReLU))
    assert not any(isinstance(m, nn.Dropout) for m in g)


@pytest.mark.parametrize("variant", VARIANTS)
def test_generator_output_range(variant):
    torch.manual_seed(0)
    model = Generator(Wen2019Config(variant=variant, width=SMALL))
    with torch.no_grad():
        model.to_rgb.bias.fill_(3.0)  # push the pre-activation outside [-1, 1]
        out = model(torch.randn(4, 64))
    assert out.shape == (4, 3, 64, 64)
    if variant in ("bn_tanh", "tanh"):
        assert out.abs().max() <= 1
    else:
        assert out.abs().max() > 1  # no squashing in the others


def test_dropout_makes_d_stochastic_in_training_only():
    torch.manual_seed(0)
    trunk = FaceTrunk(Wen2019Config(variant="dropout", width=SMALL))
    face = torch.rand(2, 3, 64, 64) * 2 - 1
    assert not torch.equal(trunk(face), trunk(face))
    trunk.eval()
    assert torch.equal(trunk(face), trunk(face))


@pytest.mark.parametrize("variant", VARIANTS)
def test_embedder_output_size_does_not_depend_on_audio_length(variant):
    torch.manual_seed(0)
    model = VoiceEmbedder(Wen2019Config(variant=variant, width=SMALL), 5).eval()
    for seconds in (3, 4.5, 6, 8):
        wave = torch.randn(2, int(seconds * 16_000)) * 0.1
        assert model(wave).shape == (2, 64)
        assert model.logits(wave).shape == (2, 5)


def test_embed_is_unit_length_with_noise_in_training_only():
    torch.manual_seed(0)
    model = VoiceEmbedder(Wen2019Config(width=SMALL), 5).eval().requires_grad_(False)
    wave = torch.randn(1, 3 * 16_000).repeat(512, 1) * 0.1  # one voice, many draws of the noise
    clean = model.embed(wave, train=False)
    torch.testing.assert_close(clean.norm(dim=1), torch.ones(512))
    torch.testing.assert_close(model.embed(wave, train=False), clean)
    noise = model.embed(wave, train=True) - clean
    assert float(noise.std()) == pytest.approx(0.05, rel=0.05)
    assert float(noise.mean().abs()) < 0.005
    # the noise comes from the global RNG: reseeding replays it
    torch.manual_seed(7)
    first = model.embed(wave[:4], train=True)
    torch.manual_seed(7)
    torch.testing.assert_close(model.embed(wave[:4], train=True), first)


def test_build_and_step_keys():
    models = build_wen2019(Wen2019Config(width=SMALL), 7)
    assert set(models) == {"voice", "generator", "trunk", "discriminator", "classifier"}
    assert models["discriminator"].out_features == 1 and models["classifier"].out_features == 7
    assert models["voice"].classifier.out_features == 7
    assert D_STEP_KEYS == ("trunk", "discriminator", "classifier") and G_STEP_KEYS == ("generator",)
    d, g = step_parameters(models, D_STEP_KEYS), step_parameters(models, G_STEP_KEYS)
    assert {id(p) for p in d}.isdisjoint(id(p) for p in g)
    voice = {id(p) for p in models["voice"].parameters()}
    assert voice.isdisjoint(id(p) for p in d + g)  # pre-trained, then frozen: no GAN step touches it
    assert len(d) + len(g) + len(voice) == len(list(models.parameters()))


def test_full_size_parameter_counts_are_plausible():
    """≈ 2.7M (embedder), 12.2M (G: mostly its 1024 → 512 layer, 8.4M), 3.3M (trunk); D and C are small heads."""
    models = meta(build_wen2019, Wen2019Config(), 1000)
    assert 2.6e6 < n_params(models["voice"].convs) < 2.8e6
    assert 12.0e6 < n_params(models["generator"]) < 12.4e6
    assert 3.2e6 < n_params(models["trunk"]) < 3.4e6
    assert n_params(models["discriminator"]) == 65 and n_params(models["classifier"]) == 65 * 1000


@pytest.mark.parametrize("variant", VARIANTS)
def test_width_scales_every_channel_but_the_embedding_and_face_features(variant):
    config = Wen2019Config(variant=variant, width=0.25)
    models = meta(build_wen2019, config, 10)
    voice = output_shapes(models["voice"], (nn.Conv1d,), torch.empty(1, 64, 598, device="meta"))
    assert [s[1] for s in voice] == [64, 96, 144, 216, 64]
    g = output_shapes(models["generator"], (nn.ConvTranspose2d, nn.Conv2d), torch.empty(1, 64, device="meta"))
    assert [s[1] for s in g] == [256, 128, 64, 32, 16, 3] and g[-1] == (1, 3, 64, 64)
    trunk = output_shapes(models["trunk"], (nn.Conv2d,), torch.empty(1, 3, 64, 64, device="meta"))
    assert [s[1] for s in trunk] == [8, 16, 32, 64, 128, 64]
    # a tiny width bottoms out at 4 channels
    tiny = Wen2019Config(variant=variant, width=0.01)
    assert tiny.scaled(tiny.trunk_channels) == (4, 4, 4, 4, 5) and tiny.scaled((64,)) == (4,)
    full = meta(build_wen2019, Wen2019Config(variant=variant), 10)
    assert n_params(models["generator"]) < n_params(full["generator"]) / 10
