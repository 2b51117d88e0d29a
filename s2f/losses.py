"""The Speech2Face loss (Oh et al. 2019, Eq. 1), term by term (pure torch).

    L = w·‖f_dec(v_f) − f_dec(v_s)‖₁ + λ1·‖v_f/‖v_f‖ − v_s/‖v_s‖‖²₂ + λ2·L_distill(f_VGG(v_f), f_VGG(v_s))
    L_distill(a, b) = −Σ_i softmax(a/T)_i · log softmax(b/T)_i

v_f: the true face feature; v_s: the voice encoder's prediction; f_dec: the frozen face decoder's first layer;
f_VGG: a frozen identity classifier over face features (VGG-Face fc8, or a head trained on the training identities
for dlib features). The paper: λ1 = 0.025, λ2 = 200, T = 2. The first term compares the features where the decoder
reads them; the distillation term asks the voice to land in the same identity neighbourhood as the face.

The paper chose λ1, λ2 "so that the magnitudes of the gradient of each term with respect to v_s are of similar scale
at the 1000th iteration", for 4096-D VGG-Face fc7 features. Their values do not carry over to other features (on
128-D dlib descriptors the weighted distillation gradient is ~500× the decoder-L1 term's and the normalized-L2 one
~1/3500 of it, and the regression terms get worse while distillation falls): `term_gradient_norms` and
`calibrated_weights` apply the rule itself to whatever features are trained on.
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


def loss_terms(f_dec: nn.Module, v_face: torch.Tensor, v_speech: torch.Tensor, temperature: float,
               identity_head: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """The unweighted terms; `distill` only with a head."""
    terms = {"decoder_l1": decoder_feature_l1(f_dec, v_face, v_speech),
             "normalized_l2": normalized_l2(v_face, v_speech)}
    if identity_head is not None:
        terms["distill"] = distillation(identity_head(v_face), identity_head(v_speech), temperature)
    return terms


def term_gradient_norms(f_dec: nn.Module, v_face: torch.Tensor, v_speech: torch.Tensor, temperature: float,
                        identity_head: nn.Module | None = None) -> dict[str, float]:
    """‖∂term/∂v_s‖ (the Frobenius norm over the batch) of each unweighted term, at the prediction `v_speech`.

    The gradient is taken with respect to v_s itself, not the encoder's weights: what the rule compares is how hard
    each term pulls on the prediction.
    """
    v = v_speech.detach().float().requires_grad_(True)
    terms = loss_terms(f_dec, v_face.float(), v, temperature, identity_head)
    return {name: float(torch.autograd.grad(term, v)[0].norm()) for name, term in terms.items()}


def calibrated_weights(norms: dict[str, float], weights: LossWeights) -> LossWeights:
    """The paper's rule: λ1, λ2 such that each weighted term's gradient norm w.r.t. v_s equals the decoder-L1 term's.

    `norms`: the unweighted terms' gradient norms (`term_gradient_norms`, averaged over a few batches). The decoder
    L1 term keeps its weight and is the reference; a term weighted 0 in `weights` stays off, and one whose gradient
    vanishes (nothing to scale) keeps its weight.
    """
    reference = weights.decoder_l1 * norms["decoder_l1"]
    if reference <= 0:
        raise ValueError("calibration needs the decoder-L1 term: its weight and gradient must be > 0")

    def rescaled(name: str, current: float) -> float:
        norm = norms.get(name, 0.0)
        return reference / norm if current > 0 and norm > 0 else current

    return LossWeights(weights.decoder_l1, rescaled("normalized_l2", weights.normalized_l2),
                       rescaled("distill", weights.distill), weights.temperature)


def speech2face_loss(f_dec: nn.Module, v_face: torch.Tensor, v_speech: torch.Tensor, weights: LossWeights,
                     identity_head: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """Every term and their weighted `total`, so each can be logged; no distillation without a head (with a head and
    a weight of 0 the term is reported, not trained on)."""
    terms = loss_terms(f_dec, v_face, v_speech, weights.temperature, identity_head)
    total = weights.decoder_l1 * terms["decoder_l1"] + weights.normalized_l2 * terms["normalized_l2"]
    if "distill" in terms and weights.distill > 0:
        total = total + weights.distill * terms["distill"]
    terms["total"] = total
    return terms
