import pytest
import torch
from torch import nn

from s2f.models.wav2pix import D_KEYS, G_KEYS, Wav2PixConfig, build_wav2pix
from s2f.training.wav2pix import (DEFAULTS, discriminator_loss, generator_loss, optimizers, random_window)

CONFIG = Wav2PixConfig(image_size=64, width=1 / 32)
SPEAKERS = 4


def make_batch(b: int = 8, seconds: float = 1.5) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {"wave": (torch.rand(b, int(seconds * 16000), generator=g) * 2 - 1) * 0.3,
            "face": torch.rand(b, 3, 64, 64, generator=g) * 2 - 1,
            "wrong_face": torch.rand(b, 3, 64, 64, generator=g) * 2 - 1,
            "speaker": torch.arange(b) % SPEAKERS}


def params(models: nn.ModuleDict, keys: tuple[str, ...]) -> dict[str, torch.Tensor]:
    return {f"{k}.{n}": p.detach().clone() for k in keys for n, p in models[k].named_parameters()}


def unchanged(before: dict[str, torch.Tensor], models: nn.ModuleDict) -> bool:
    now = {f"{k}.{n}": p for k in models for n, p in models[k].named_parameters()}
    return all(torch.equal(now[name], value) for name, value in before.items())


def one_step(loss_fn, opt_index: int) -> tuple[nn.ModuleDict, float, float, dict, dict]:
    """Loss, one Adam step, the same loss again (same window and dropout: the RNG is re-seeded)."""
    torch.manual_seed(0)
    models = build_wav2pix(CONFIG, SPEAKERS)
    batch = make_batch()
    g_before, d_before = params(models, G_KEYS), params(models, D_KEYS)
    opt = optimizers(models)[opt_index]
    torch.manual_seed(123)
    loss = loss_fn(models, batch)["total"]
    opt.zero_grad()
    loss.backward()
    opt.step()
    torch.manual_seed(123)
    after = loss_fn(models, batch)["total"]
    return models, loss.item(), after.item(), g_before, d_before


def test_a_d_step_lowers_the_d_loss_and_leaves_g_and_the_encoder_untouched():
    models, before, after, g_before, d_before = one_step(discriminator_loss, 0)
    assert after < before
    assert unchanged(g_before, models)
    assert not unchanged(d_before, models)
    # the fake and the embedding are made without a graph: nothing of G even gets a gradient
    assert all(p.grad is None for k in G_KEYS for p in models[k].parameters())


def test_a_g_step_lowers_the_g_loss_and_leaves_d_untouched():
    models, before, after, g_before, d_before = one_step(generator_loss, 1)
    assert after < before
    assert unchanged(d_before, models)
    for key in G_KEYS:  # encoder, classifier and generator are all trained end to end
        assert not unchanged({n: v for n, v in g_before.items() if n.startswith(key + ".")}, models), key


def test_optimizers_use_the_paper_constants():
    opt_d, opt_g = optimizers(build_wav2pix(CONFIG, SPEAKERS))
    assert opt_d.defaults["lr"] == 4e-4 and opt_g.defaults["lr"] == 1e-4
    assert opt_d.defaults["betas"] == opt_g.defaults["betas"] == (0.5, 0.999)
    assert DEFAULTS.batch_size == 64


def test_losses_return_every_term_and_the_weighted_total():
    torch.manual_seed(0)
    models, batch = build_wav2pix(CONFIG, SPEAKERS), make_batch()
    d = discriminator_loss(models, batch)
    assert set(d) == {"real", "fake", "wrong", "total"}
    torch.testing.assert_close(d["total"], d["real"] + d["fake"] + d["wrong"])
    g = generator_loss(models, batch)
    assert set(g) == {"adversarial", "feature_matching", "l1", "identity", "total"}
    expected = g["adversarial"] + 100 * g["feature_matching"] + 50 * g["l1"] + 20 * g["identity"]
    torch.testing.assert_close(g["total"], expected)


def test_random_window_is_one_second_from_the_global_rng():
    wave = torch.arange(6 * 16000, dtype=torch.float32).expand(2, -1)
    torch.manual_seed(7)
    a = random_window(wave, 16000)
    torch.manual_seed(7)
    b = random_window(wave, 16000)
    assert a.shape == (2, 16000) and torch.equal(a, b)
    assert torch.equal(a[0], a[1]) and torch.equal(a[0], wave[0, int(a[0, 0]):int(a[0, 0]) + 16000])
    with pytest.raises(RuntimeError):
        random_window(wave[:, :15999], 16000)
