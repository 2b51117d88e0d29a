"""The Wav2Pix losses (LSGAN with feature matching, L1 and an auxiliary identity loss), term by term, pure torch.

    D step:  ½·mean((D(x, e) − 0.9)²) + ½·mean(D(G(e), e)²) + ½·mean(D(x_wrong, e)²)          e, G(e) detached
    G step:  ½·mean((D(G(e), e) − 1)²) + 100·‖mean_b φ(G(e)) − mean_b φ(x)‖²₂ + 50·|G(e) − x|₁ + 20·CE(C(e), speaker)

x: the speaker's real face; x_wrong: a real face of another speaker (D must reject faces that do not match the
voice); e = encoder(1 s of the voice); φ: the discriminator's 4×4 feature map; C: the identity classifier. The real
target 0.9 is one-sided label smoothing. Feature matching is the mean squared error between φ averaged over the
batch for fake and for real faces (real side detached), as in the Wav2Pix code. The G step back-propagates into the
encoder, the classifier and the generator together (`G_KEYS`), through D's embedding input too; D's parameters get
gradients there but only the D optimiser (`D_KEYS`) steps them.

Each loss crops its own random 1 s window of the batch's clips with the global torch RNG, so a D step and the G step
after it see different windows of the same clips (more views of each clip per epoch).

Training constants (the paper's): Adam, lr 4e-4 for D and 1e-4 for G, betas (0.5, 0.999), batch 64.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from s2f.models.wav2pix import D_KEYS, G_KEYS


@dataclass(frozen=True)
class Wav2PixTraining:
    real_label: float = 0.9          # one-sided label smoothing: D's target for real, matching faces
    feature_matching: float = 100.0
    l1: float = 50.0
    identity: float = 20.0
    lr_d: float = 4e-4
    lr_g: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.999)
    batch_size: int = 64


DEFAULTS = Wav2PixTraining()


def optimizers(models: nn.ModuleDict, training: Wav2PixTraining = DEFAULTS
               ) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """(D optimiser, G optimiser): each owns only its step's networks, so one step never moves the other side."""
    def params(keys: tuple[str, ...]) -> list[nn.Parameter]:
        return [p for k in keys for p in models[k].parameters()]
    return (torch.optim.Adam(params(D_KEYS), lr=training.lr_d, betas=training.betas),
            torch.optim.Adam(params(G_KEYS), lr=training.lr_g, betas=training.betas))


def random_window(wave: torch.Tensor, samples: int) -> torch.Tensor:
    """One random `samples`-long window, at the same offset for the whole batch. wave: (B, L) → (B, samples)."""
    start = int(torch.randint(0, wave.shape[-1] - samples + 1, ()))
    return wave[:, start:start + samples]


def _least_squares(score: torch.Tensor, target: float) -> torch.Tensor:
    return 0.5 * (score - target).pow(2).mean()


def discriminator_loss(models: nn.ModuleDict, batch: dict[str, torch.Tensor],
                       training: Wav2PixTraining = DEFAULTS) -> dict[str, torch.Tensor]:
    """Every term and their `total`. The embedding and the fake are made without a graph: the D step trains D only.

    batch: "wave" (B, L ≥ 1 s), "face" and "wrong_face" (B, 3, S, S) in [-1, 1]; "speaker" is not used here.
    """
    wave = random_window(batch["wave"], models["encoder"].config.clip_samples)  # (B, clip)
    with torch.no_grad():
        e = models["encoder"](wave)              # (B, embed_dim)
        fake = models["generator"](e)            # (B, 3, S, S)
    d = models["discriminator"]
    terms = {"real": _least_squares(d(batch["face"], e)[0], training.real_label),
             "fake": _least_squares(d(fake, e)[0], 0.0),
             "wrong": _least_squares(d(batch["wrong_face"], e)[0], 0.0)}
    terms["total"] = terms["real"] + terms["fake"] + terms["wrong"]
    return terms


def generator_loss(models: nn.ModuleDict, batch: dict[str, torch.Tensor],
                   training: Wav2PixTraining = DEFAULTS) -> dict[str, torch.Tensor]:
    """Every term (unweighted) and their weighted `total`, which trains encoder + classifier + generator together.

    batch: "wave" (B, L ≥ 1 s), "face" (B, 3, S, S) in [-1, 1], "speaker" (B,) long; "wrong_face" is not used here.
    """
    wave = random_window(batch["wave"], models["encoder"].config.clip_samples)  # (B, clip)
    e = models["encoder"](wave)                                  # (B, embed_dim)
    fake = models["generator"](e)                                # (B, 3, S, S)
    score, fake_features = models["discriminator"](fake, e)      # (B,), (B, C, 4, 4)
    with torch.no_grad():
        _, real_features = models["discriminator"](batch["face"], e)
    terms = {"adversarial": _least_squares(score, 1.0),
             "feature_matching": F.mse_loss(fake_features.mean(0), real_features.mean(0)),
             "l1": F.l1_loss(fake, batch["face"]),
             "identity": F.cross_entropy(models["classifier"](e), batch["speaker"])}
    terms["total"] = (terms["adversarial"] + training.feature_matching * terms["feature_matching"]
                      + training.l1 * terms["l1"] + training.identity * terms["identity"])
    return terms
