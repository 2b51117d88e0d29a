import pytest
import torch
from torch import nn

from s2f.models.wen2019 import VARIANTS, Wen2019Config, build_wen2019
from s2f.training.wen2019 import (BATCH_SIZE, BETAS, LR, adam_optimizers, discriminator_loss, freeze_voice,
                                  generate, generator_loss, random_crop, voice_pretrain_loss)

SPEAKERS = 4


def make_batch(size: int = 6, seconds: float = 6.0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {"wave": (torch.randn(size, int(seconds * 16_000), generator=g) * 0.1).clamp(-1, 1),
            "face": torch.rand(size, 3, 64, 64, generator=g) * 2 - 1,
            "speaker": torch.randint(0, SPEAKERS, (size,), generator=g)}


def tiny_models(variant: str) -> nn.ModuleDict:
    torch.manual_seed(0)
    models = build_wen2019(Wen2019Config(variant=variant, width=0.05), SPEAKERS)
    freeze_voice(models)
    return models


def in_float64(models: nn.ModuleDict, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """At the paper's lr an untrained G without BN moves the G loss by ~1e-7, under float32's resolution at ~2:
    float64 lets the test see the step go downhill."""
    models.double()
    return {k: v.double() if v.is_floating_point() else v for k, v in batch.items()}


def snapshot(module: nn.Module, buffers: bool = False) -> dict[str, torch.Tensor]:
    state = module.state_dict() if buffers else dict(module.named_parameters())
    return {k: v.detach().clone() for k, v in state.items()}


def unchanged(module: nn.Module, before: dict[str, torch.Tensor], buffers: bool = False) -> bool:
    return all(torch.equal(before[k], v) for k, v in snapshot(module, buffers).items())


def loss_on_the_same_batch(loss_fn, models, batch, seed: int = 123) -> torch.Tensor:
    """Reseeding replays the crop, G's input noise and dropout masks: the same batch, seen the same way."""
    torch.manual_seed(seed)
    return loss_fn(models, batch)["total"]


def test_the_papers_optimiser_settings():
    assert (LR, BETAS, BATCH_SIZE) == (2e-4, (0.5, 0.999), 128)
    opts = adam_optimizers(tiny_models("original"))
    assert all(o.defaults["lr"] == 2e-4 and o.defaults["betas"] == (0.5, 0.999) for o in opts.values())


@pytest.mark.parametrize("variant", VARIANTS)
def test_one_d_step_lowers_the_d_loss_and_touches_only_d(variant):
    models, batch = tiny_models(variant), make_batch()
    batch = in_float64(models, batch)
    g_before, voice_before = snapshot(models["generator"]), snapshot(models["voice"], buffers=True)
    trunk_before = snapshot(models["trunk"])
    opt = adam_optimizers(models)["d"]

    loss = loss_on_the_same_batch(discriminator_loss, models, batch)
    opt.zero_grad()
    loss.backward()
    assert all(p.grad is None for p in models["generator"].parameters())  # the fake was detached
    opt.step()

    assert loss_on_the_same_batch(discriminator_loss, models, batch) < loss
    assert not unchanged(models["trunk"], trunk_before)
    assert unchanged(models["generator"], g_before)
    assert unchanged(models["voice"], voice_before, buffers=True)  # BN running statistics included


@pytest.mark.parametrize("variant", VARIANTS)
def test_one_g_step_lowers_the_g_loss_and_touches_only_g(variant):
    models, batch = tiny_models(variant), make_batch()
    batch = in_float64(models, batch)
    d_before = {k: snapshot(models[k]) for k in ("trunk", "discriminator", "classifier")}
    voice_before = snapshot(models["voice"], buffers=True)
    g_before = snapshot(models["generator"])
    opt = adam_optimizers(models)["g"]

    loss = loss_on_the_same_batch(generator_loss, models, batch)
    opt.zero_grad()
    loss.backward()
    assert all(p.grad is None for p in models["voice"].parameters())
    opt.step()

    assert loss_on_the_same_batch(generator_loss, models, batch) < loss
    assert not unchanged(models["generator"], g_before)
    assert all(unchanged(models[k], d_before[k]) for k in d_before)
    assert unchanged(models["voice"], voice_before, buffers=True)


def test_an_alternating_step_can_reuse_one_fake():
    """The D step's fake serves the G step: the D update does not break G's graph, and G gets gradients."""
    models, batch = tiny_models("bn"), make_batch()
    opts = adam_optimizers(models)
    torch.manual_seed(5)
    fake = generate(models, batch["wave"])
    d = discriminator_loss(models, batch, fake)
    opts["d"].zero_grad()
    d["total"].backward()
    opts["d"].step()
    g = generator_loss(models, batch, fake)
    opts["g"].zero_grad()
    g["total"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in models["generator"].parameters())
    assert set(d) == {"real", "fake", "identity", "total"} and set(g) == {"adversarial", "identity", "total"}
    torch.testing.assert_close(d["total"], d["real"] + d["fake"] + d["identity"])
    torch.testing.assert_close(g["total"], g["adversarial"] + g["identity"])


def test_the_gan_refuses_an_unfrozen_voice_embedder():
    torch.manual_seed(0)
    models, batch = build_wen2019(Wen2019Config(width=0.05), SPEAKERS), make_batch()
    with pytest.raises(ValueError, match="freeze_voice"):
        discriminator_loss(models, batch)


def test_voice_pretraining_learns_the_speakers():
    """A few steps of the speaker-classifier loss on a small, separable set: loss down, accuracy up."""
    torch.manual_seed(0)
    models = build_wen2019(Wen2019Config(width=0.05), SPEAKERS)
    # each speaker a different tone over noise: easy to tell apart
    t = torch.arange(3 * 16_000) / 16_000
    speaker = torch.arange(SPEAKERS).repeat(2)
    wave = 0.3 * torch.sin(2 * torch.pi * (300 + 700 * speaker[:, None]) * t) + 0.02 * torch.randn(len(speaker), len(t))
    opt = torch.optim.Adam(models["voice"].parameters(), lr=1e-2)
    first = voice_pretrain_loss(models, wave, speaker)
    for _ in range(15):
        terms = voice_pretrain_loss(models, wave, speaker)
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
    last = voice_pretrain_loss(models, wave, speaker)
    assert last["total"] < 0.5 * first["total"]
    assert last["accuracy"] == 1.0


def test_random_crop_lengths_and_offsets():
    wave = torch.arange(6 * 16_000, dtype=torch.float32).repeat(64, 1)  # each sample holds its own index
    lengths = set()
    for seed in range(20):
        torch.manual_seed(seed)
        crop = random_crop(wave)
        n = crop.shape[1]
        lengths.add(n)
        assert 3 * 16_000 <= n <= 6 * 16_000                        # 3 s to min(8 s, the clip)
        assert (crop.diff(dim=1) == 1).all()                         # contiguous windows
        assert len(set(crop[:, 0].tolist())) > 1 or n == wave.shape[1]  # offsets differ between clips
    assert len(lengths) > 10
    torch.manual_seed(3)
    again = random_crop(wave)
    torch.manual_seed(3)
    assert torch.equal(random_crop(wave), again)  # the global RNG: a resumed run replays its crops
    assert random_crop(wave[:, :32_000]).shape[1] == 32_000  # a clip under 3 s is kept whole
