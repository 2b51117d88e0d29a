"""The losses of Wen et al. 2019's voice-to-face GAN (pure torch), for the networks of `s2f.models.wen2019`.

Two phases:
1. the voice embedder is trained alone as a speaker classifier (`voice_pretrain_loss`), then frozen
   (`freeze_voice`);
2. the GAN alternates, on each batch of (voice, face of the same person, identity):
       D step  BCE(D(real) → 1) + BCE(D(G(v)) → 0, G detached) + CE(C(real), identity)   trunk, D, C
       G step  BCE(D(G(v)) → 1) + CE(C(G(v)), identity)                                  G
   C is what makes the face *someone's*: G is pushed towards faces the identity classifier attributes to the
   voice's speaker, D only towards faces that look real.

Optimiser (the paper): Adam, lr 2e-4, betas (0.5, 0.999), batch 128, for both steps. Every voice batch is cropped to
one random length between 3 s and 8 s (at most the clip), at a random offset per clip, so the embedder sees
varied durations and positions; crop lengths, offsets and G's input noise come from the global torch RNG, so a run
resumed with the RNG state replays them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from s2f.melbank import HOP_LENGTH, SAMPLE_RATE
from s2f.models.wen2019 import D_STEP_KEYS, G_STEP_KEYS, step_parameters

LR = 2e-4
BETAS = (0.5, 0.999)
BATCH_SIZE = 128
CROP_MIN_SECONDS = 3.0
CROP_MAX_SECONDS = 8.0


def random_crop(voice: torch.Tensor, min_seconds: float = CROP_MIN_SECONDS,
                max_seconds: float = CROP_MAX_SECONDS) -> torch.Tensor:
    """A waveform (B, L) → (B, n) samples, or a log-mel (B, 64, T) → (B, 64, n) frames: one length n for the
    batch, uniform in [min, min(max, clip)] seconds; an offset per clip.

    Why log-mel too: Wen et al. compute each utterance's features once (normalised over the whole utterance) and
    crop frames from them; cropping the stored log-mel does that and saves an STFT per step.
    Clips shorter than `min_seconds` are kept whole.
    """
    rate = SAMPLE_RATE if voice.dim() == 2 else SAMPLE_RATE // HOP_LENGTH   # samples or frames per second
    length = voice.shape[-1]
    high = min(int(max_seconds * rate), length)
    low = min(int(min_seconds * rate), high)
    n = int(torch.randint(low, high + 1, ()))
    offsets = torch.randint(0, length - n + 1, (voice.shape[0], 1), device=voice.device)  # (B, 1)
    index = offsets + torch.arange(n, device=voice.device)                                # (B, n)
    if voice.dim() == 3:
        index = index[:, None, :].expand(-1, voice.shape[1], -1)                         # (B, 64, n)
    return voice.gather(-1, index)


def batch_voice(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The batch's voice: its stored log-mel ("mel", (B, 64, T)) when the trainer precomputed it, else "wave"."""
    return batch["mel"] if "mel" in batch else batch["wave"]


def freeze_voice(models: nn.ModuleDict) -> None:
    """After pre-training: no gradients, and eval mode, so BN uses (and never updates) its running statistics."""
    models["voice"].requires_grad_(False).eval()


def adam_optimizers(models: nn.ModuleDict) -> dict[str, torch.optim.Adam]:
    """The two optimisers of the alternating steps, "d" (trunk, D, C) and "g" (G), with the paper's settings."""
    return {"d": torch.optim.Adam(step_parameters(models, D_STEP_KEYS), lr=LR, betas=BETAS),
            "g": torch.optim.Adam(step_parameters(models, G_STEP_KEYS), lr=LR, betas=BETAS)}


def voice_pretrain_loss(models: nn.ModuleDict, wave_or_mel: torch.Tensor,
                        speaker: torch.Tensor) -> dict[str, torch.Tensor]:
    """Cross-entropy of the embedder's speaker head. wave_or_mel: (B, L) or (B, 64, T); speaker: (B,) long."""
    logits = models["voice"].logits(wave_or_mel)  # (B, num_speakers)
    accuracy = (logits.detach().argmax(dim=1) == speaker).float().mean()
    return {"total": F.cross_entropy(logits, speaker), "accuracy": accuracy}


def generate(models: nn.ModuleDict, wave: torch.Tensor, train: bool = True) -> torch.Tensor:
    """wave: (B, L), or its log-mel (B, 64, T) → G's faces (B, 3, 64, 64), with gradients to G only. In training the clip is randomly cropped
    and G's input noised; otherwise the whole clip, no noise."""
    voice = models["voice"]
    if voice.training or any(p.requires_grad for p in voice.parameters()):
        raise ValueError("the voice embedder must be frozen during the GAN: call freeze_voice(models)")
    with torch.no_grad():
        condition = voice.embed(random_crop(wave) if train else wave, train=train)  # (B, E)
    return models["generator"](condition)


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def discriminator_loss(models: nn.ModuleDict, batch: dict[str, torch.Tensor],
                       fake: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The D step's loss, for the trunk, D and C. batch: "wave" (B, L), "face" (B, 3, 64, 64) in [-1, 1],
    "speaker" (B,). fake: G's faces for this batch, e.g. from `generate`, to reuse them in the G step; detached here.

    Real and fake faces go through the trunk as separate batches, so BN (bn variants) never mixes their statistics.
    """
    if fake is None:
        fake = generate(models, batch_voice(batch))
    trunk, d_head = models["trunk"], models["discriminator"]
    real_features = trunk(batch["face"])                    # (B, F)
    fake_logit = d_head(trunk(fake.detach()))               # (B, 1)
    terms = {"real": _bce(d_head(real_features), 1.0),
             "fake": _bce(fake_logit, 0.0),
             "identity": F.cross_entropy(models["classifier"](real_features), batch["speaker"])}
    terms["total"] = terms["real"] + terms["fake"] + terms["identity"]
    return terms


def generator_loss(models: nn.ModuleDict, batch: dict[str, torch.Tensor],
                   fake: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The G step's loss: fool D, and be classified by C as the voice's speaker. Gradients also reach the trunk and
    heads; the D step's optimiser clears them (zero_grad) before its own backward."""
    if fake is None:
        fake = generate(models, batch_voice(batch))
    features = models["trunk"](fake)  # (B, F)
    terms = {"adversarial": _bce(models["discriminator"](features), 1.0),
             "identity": F.cross_entropy(models["classifier"](features), batch["speaker"])}
    terms["total"] = terms["adversarial"] + terms["identity"]
    return terms
