import pytest
import torch
import torch.nn.functional as F

from s2f.losses import LossWeights, calibrated_weights, distillation, speech2face_loss, term_gradient_norms


def test_distillation_is_the_softened_cross_entropy():
    torch.manual_seed(0)
    teacher, student = torch.randn(4, 7), torch.randn(4, 7)
    by_hand = -(F.softmax(teacher / 2, 1) * torch.log(F.softmax(student / 2, 1))).sum(1).mean()
    torch.testing.assert_close(distillation(teacher, student, 2.0), by_hand)


def test_distillation_gradient_vanishes_when_the_student_matches_the_teacher():
    teacher = torch.randn(3, 5)
    student = teacher.clone().requires_grad_(True)
    distillation(teacher, student, 2.0).backward()
    assert student.grad.abs().max() < 1e-6
    other = torch.randn(3, 5, requires_grad=True)
    distillation(teacher, other, 2.0).backward()
    assert other.grad.abs().max() > 1e-3


def test_total_is_the_papers_weighted_sum_and_each_term_is_reported():
    torch.manual_seed(1)
    f_dec, head = torch.nn.Linear(6, 9), torch.nn.Linear(6, 4)
    v_face, v_speech = torch.randn(5, 6), torch.randn(5, 6)
    weights = LossWeights()  # λ1 = 0.025, λ2 = 200, T = 2
    assert (weights.normalized_l2, weights.distill, weights.temperature) == (0.025, 200.0, 2.0)
    terms = speech2face_loss(f_dec, v_face, v_speech, weights, head)
    assert set(terms) == {"decoder_l1", "normalized_l2", "distill", "total"}
    expected = terms["decoder_l1"] + 0.025 * terms["normalized_l2"] + 200 * terms["distill"]
    torch.testing.assert_close(terms["total"], expected)
    assert "distill" not in speech2face_loss(f_dec, v_face, v_speech, weights, None)


@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_normalized_l2_ignores_feature_scale(scale):
    v = torch.randn(4, 8)
    terms = speech2face_loss(torch.nn.Identity(), v, v * scale, LossWeights(distill=0))
    assert terms["normalized_l2"] < 1e-6


def _toy(seed: int = 2, batch: int = 6):
    torch.manual_seed(seed)
    f_dec, head = torch.nn.Linear(8, 12), torch.nn.Linear(8, 5)
    return f_dec, head, torch.randn(batch, 8) + 3.0, torch.randn(batch, 8) + 3.0


def _weighted_norms(f_dec, head, v_face, v_speech, weights: LossWeights) -> dict[str, float]:
    v = v_speech.clone().requires_grad_(True)
    terms = speech2face_loss(f_dec, v_face, v, weights, head)
    return {name: float(torch.autograd.grad(getattr(weights, name) * terms[name], v)[0].norm())
            for name in ("decoder_l1", "normalized_l2", "distill")}


def test_calibrated_weights_equalise_the_gradient_norms_with_respect_to_the_prediction():
    f_dec, head, v_face, v_speech = _toy()
    before = _weighted_norms(f_dec, head, v_face, v_speech, LossWeights())
    assert max(before.values()) / min(before.values()) > 10   # the paper's λ do not balance these features
    weights = calibrated_weights(term_gradient_norms(f_dec, v_face, v_speech, 2.0, head), LossWeights())
    assert weights.decoder_l1 == 1.0 and weights.temperature == 2.0
    after = _weighted_norms(f_dec, head, v_face, v_speech, weights)
    assert after["normalized_l2"] == pytest.approx(after["decoder_l1"], rel=1e-4)
    assert after["distill"] == pytest.approx(after["decoder_l1"], rel=1e-4)


def test_calibration_over_several_batches_equalises_the_averaged_norms():
    f_dec, head, _, _ = _toy()
    batches = [_toy(seed)[2:] for seed in range(3, 7)]
    norms = [term_gradient_norms(f_dec, face, speech, 2.0, head) for face, speech in batches]
    mean = {k: sum(n[k] for n in norms) / len(norms) for k in norms[0]}
    weights = calibrated_weights(mean, LossWeights())
    weighted = [_weighted_norms(f_dec, head, face, speech, weights) for face, speech in batches]
    averaged = {k: sum(w[k] for w in weighted) / len(weighted) for k in weighted[0]}
    assert averaged["normalized_l2"] == pytest.approx(averaged["decoder_l1"], rel=1e-4)
    assert averaged["distill"] == pytest.approx(averaged["decoder_l1"], rel=1e-4)


def test_calibration_keeps_a_term_that_is_off_off_and_needs_the_reference():
    f_dec, head, v_face, v_speech = _toy()
    norms = term_gradient_norms(f_dec, v_face, v_speech, 2.0, head)
    assert calibrated_weights(norms, LossWeights(distill=0.0)).distill == 0.0
    assert "distill" not in term_gradient_norms(f_dec, v_face, v_speech, 2.0, None)
    with pytest.raises(ValueError, match="decoder-L1"):
        calibrated_weights(norms, LossWeights(decoder_l1=0.0))
