import pytest
import torch
import torch.nn.functional as F

from s2f.losses import LossWeights, distillation, speech2face_loss


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
