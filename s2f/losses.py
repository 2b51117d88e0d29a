"""The Speech2Face loss (Oh et al. 2019, Eq. 1), term by term (pure torch).

    L = w·‖f_dec(v_f) − f_dec(v_s)‖₁ + λ1·‖v_f/‖v_f‖ − v_s/‖v_s‖‖²₂ + λ2·L_distill(f_VGG(v_f), f_VGG(v_s))
    L_distill(a, b) = −Σ_i softmax(a/T)_i · log softmax(b/T)_i

v_f: the true face feature; v_s: the voice encoder's prediction; f_dec: the frozen face decoder's first layer;
f_VGG: a frozen identity classifier over face features (VGG-Face fc8, or a head trained on the training identities
for dlib features). The paper: λ1 = 0.025, λ2 = 200, T = 2. The first term compares the features where the decoder
reads them; the distillation term asks the voice to land in the same identity neighbourhood as the face.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class LossWeights:
    decoder_l1: float = 1.0
    normalized_l2: float = 0.025   # λ1
    distill: float = 200.0         # λ2
    temperature: float = 2.0       # T


def decoder_feature_l1(f_dec: nn.Module, v_face: torch.Tensor, v_speech: torch.Tensor) -> torch.Tensor:
    return (f_dec(v_face) - f_dec(v_speech)).abs().sum(dim=1).mean()


def normalized_l2(v_face: torch.Tensor, v_speech: torch.Tensor) -> torch.Tensor:
    return (F.normalize(v_face, dim=1) - F.normalize(v_speech, dim=1)).pow(2).sum(dim=1).mean()


def distillation(teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cross-entropy of the student's softened distribution against the teacher's (Hinton et al. 2015)."""
    teacher = F.softmax(teacher_logits / temperature, dim=1)
    return -(teacher * F.log_softmax(student_logits / temperature, dim=1)).sum(dim=1).mean()


def speech2face_loss(f_dec: nn.Module, v_face: torch.Tensor, v_speech: torch.Tensor, weights: LossWeights,
                     identity_head: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """Every term and their weighted `total`, so each can be logged; no distillation without a head."""
    terms = {"decoder_l1": decoder_feature_l1(f_dec, v_face, v_speech),
             "normalized_l2": normalized_l2(v_face, v_speech)}
    total = weights.decoder_l1 * terms["decoder_l1"] + weights.normalized_l2 * terms["normalized_l2"]
    if identity_head is not None and weights.distill > 0:
        terms["distill"] = distillation(identity_head(v_face), identity_head(v_speech), weights.temperature)
        total = total + weights.distill * terms["distill"]
    terms["total"] = total
    return terms
