"""The Speech2Face loss terms (pure torch).

total = w_dec·‖f_dec(v_f) − f_dec(v_s)‖₁ + λ1·‖v_f/‖v_f‖ − v_s/‖v_s‖‖²₂ (+ λ2·distillation, a later issue)
v_f: the true face feature; v_s: the voice encoder's prediction; f_dec: the frozen decoder's first layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def decoder_feature_l1(f_dec: torch.nn.Module, v_face: torch.Tensor, v_speech: torch.Tensor) -> torch.Tensor:
    return (f_dec(v_face) - f_dec(v_speech)).abs().sum(dim=1).mean()


def normalized_l2(v_face: torch.Tensor, v_speech: torch.Tensor) -> torch.Tensor:
    return (F.normalize(v_face, dim=1) - F.normalize(v_speech, dim=1)).pow(2).sum(dim=1).mean()


def speech2face_loss(f_dec: torch.nn.Module, v_face: torch.Tensor, v_speech: torch.Tensor,
                     w_dec: float, lambda1: float) -> dict[str, torch.Tensor]:
    """All terms and their weighted total, so each can be logged."""
    terms = {"decoder_l1": decoder_feature_l1(f_dec, v_face, v_speech), "normalized_l2": normalized_l2(v_face, v_speech)}
    terms["total"] = w_dec * terms["decoder_l1"] + lambda1 * terms["normalized_l2"]
    return terms
