"""The encoder's training signal: loss weights calibrated by the paper's rule, validation speakers, the epoch kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from s2f.config import TrainEncoderParams
from s2f.losses import LossWeights
from s2f.training import encoder as encoder_module
from s2f.training.distributed import Runtime
from s2f.training.encoder import calibration_step, train_encoder
from tests.training.run_training import PARAMS, synthetic_data

CPU = Runtime(torch.device("cpu"))


def _params(**changes) -> TrainEncoderParams:
    # tolerance_se 0: these tests script exact choices; test_epochs_within_a_standard_error_count_as_equal the rest
    params = {**PARAMS, "epochs": 3, "loop": {"checkpoint_every": 0, "amp": False},
              "validation": {**PARAMS["validation"], "tolerance_se": 0.0}}
    for key, value in changes.items():
        params[key] = {**params.get(key, {}), **value} if isinstance(value, dict) else value
    return TrainEncoderParams.model_validate(params)


def _train(p: TrainEncoderParams, backend: str = "dlib", refit_rows: list[dict] | None = None):
    audio, embedding, speakers = synthetic_data()
    torch.manual_seed(1)
    f_dec, head = torch.nn.Linear(6, 10), torch.nn.Linear(6, 6)
    rows: list[dict] = []

    def refit_log(epochs: int):
        refit_rows.append({"epochs": epochs})
        return lambda epoch, row: refit_rows.append(row)

    trained = train_encoder(audio, embedding, f_dec, head, p, CPU, lambda epoch, row: rows.append(row),
                            speakers=np.array([f"s{k}" for k in speakers]), backend=backend,
                            refit_log=refit_log if refit_rows is not None else None)
    return trained, rows


def test_every_epoch_row_has_the_validation_scores_and_the_weights():
    trained, rows = _train(_params())
    assert len(rows) == 3
    for row in rows:
        assert {"val_loss_decoder_l1", "val_loss_normalized_l2", "val_loss_distill", "val_loss_total",
                "val_recall_at_1", "weight_decoder_l1", "weight_normalized_l2", "weight_distill"} <= set(row)
        assert {"loss_decoder_l1", "loss_normalized_l2", "loss_distill", "loss_total"} <= set(row)
    assert trained.validation_speakers == 2 and trained.train_samples == 24   # 2 of 6 held out, then all refit
    summary = trained.summary()
    assert summary["weight_distill"] == trained.weights.distill and "kept_val_recall_at_1" in summary


def test_calibrated_weights_match_the_measured_gradient_norms():
    trained, rows = _train(_params(validation={"refit": False}))   # the refit calibrates on its own data
    cal = trained.calibration
    assert cal is not None and cal["step"] == 3
    assert cal["weight_normalized_l2"] == pytest.approx(cal["grad_norm_decoder_l1"] / cal["grad_norm_normalized_l2"])
    assert cal["weight_distill"] == pytest.approx(cal["grad_norm_decoder_l1"] / cal["grad_norm_distill"])
    assert rows[-1]["weight_distill"] == cal["weight_distill"] != 200.0


@pytest.mark.parametrize("distill", [0.0, 200.0])
def test_vggface_keeps_the_papers_weights_under_auto(distill):
    trained, rows = _train(_params(loss={"weights": "auto", "distill": distill}), backend="vggface")
    assert trained.calibration is None
    assert trained.weights == LossWeights()   # the paper's λ1 = 0.025, λ2 = 200, whatever the dlib default says
    assert all(r["weight_distill"] == 200.0 for r in rows)


def test_a_term_weighted_zero_is_logged_but_neither_trained_on_nor_calibrated():
    trained, rows = _train(_params(loss={"distill": 0.0}))
    assert trained.weights.distill == 0.0 and "grad_norm_distill" not in trained.calibration
    assert trained.calibration["weight_normalized_l2"] != 0.025
    assert all("loss_distill" in r and "val_loss_distill" in r for r in rows)
    for r in rows[1:]:   # after the calibration at step 3 (epoch 0): the total is the two regression terms
        expected = (r["weight_decoder_l1"] * r["val_loss_decoder_l1"]
                    + r["weight_normalized_l2"] * r["val_loss_normalized_l2"])
        assert r["val_loss_total"] == pytest.approx(expected, rel=1e-5)


def test_calibration_step_is_the_papers_or_a_share_of_a_shorter_run():
    p = TrainEncoderParams()
    assert calibration_step(p, 100_000) == 1000
    assert calibration_step(p, 900) == 90
    assert calibration_step(p, 5) == 0


def _scripted_validation(monkeypatch, recalls: list[float]) -> list[dict]:
    """Validation that reports `recalls` epoch by epoch and records the model's weights when it scores them."""
    seen: list[dict] = []

    def fake_validator(model, *args):
        def validate(weights):
            seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
            return {"val_recall_at_1": recalls[len(seen) - 1]}
        return validate

    monkeypatch.setattr(encoder_module, "_validator", fake_validator)
    return seen


@pytest.mark.parametrize("keep, recalls, kept", [("best_val_recall_at_1", [0.2, 0.6, 0.4], 1),
                                                 ("best_val_recall_at_1", [0.5, 0.5, 0.1], 1),  # latest of equals
                                                 ("last", [0.2, 0.6, 0.4], 2)])
def test_the_weights_kept_are_the_best_validation_epochs(monkeypatch, keep, recalls, kept):
    seen = _scripted_validation(monkeypatch, recalls)
    trained, rows = _train(_params(validation={"keep": keep, "refit": False, "window": 1}))
    assert [r["val_recall_at_1"] for r in rows] == recalls
    assert trained.kept_epoch == kept
    final = trained.model.state_dict()
    for key, value in seen[kept].items():
        assert torch.equal(final[key], value), key
    if kept != len(recalls) - 1:   # the last epoch's weights differ: the choice was not a no-op
        assert any(not torch.equal(final[k], v) for k, v in seen[-1].items())


def test_the_epoch_is_chosen_on_the_trailing_mean_of_validation_recall(monkeypatch):
    _scripted_validation(monkeypatch, [0.1, 0.7, 0.2, 0.5, 0.5])   # one lucky epoch, then a steadier run
    trained, rows = _train(_params(epochs=5, validation={"window": 3, "refit": False}))
    assert [round(r["val_recall_at_1_trailing"], 4) for r in rows] == [0.1, 0.4, 0.3333, 0.4667, 0.4]
    assert trained.kept_epoch == 3 and trained.kept_row["val_recall_at_1"] == 0.5


@pytest.mark.parametrize("tolerance_se, kept", [(0.0, 1), (1.0, 3)])
def test_epochs_within_a_standard_error_count_as_equal(monkeypatch, tolerance_se, kept):
    """8 validation clips (2 of 6 speakers): R@1 0.6 has a standard error of √(0.6·0.4/8) = 0.17, so 0.5 is tied
    with it (the later of the two is kept) and 0.4 is not."""
    _scripted_validation(monkeypatch, [0.2, 0.6, 0.4, 0.5])
    trained, _ = _train(_params(epochs=4, validation={"window": 1, "refit": False, "tolerance_se": tolerance_se}))
    assert trained.kept_epoch == kept
    assert encoder_module.recall_standard_error(0.6, 8) == pytest.approx(0.1732, abs=1e-4)


def test_only_epochs_with_a_full_window_compete(monkeypatch):
    _scripted_validation(monkeypatch, [0.9, 0.1, 0.1, 0.2, 0.2])   # a lucky first epoch would win on its own
    trained, _ = _train(_params(epochs=5, validation={"window": 3, "refit": False}))
    assert trained.kept_epoch == 2   # trailing means 0.37, 0.13, 0.17 from epoch 2 on
    _scripted_validation(monkeypatch, [0.9, 0.1])
    shorter, _ = _train(_params(epochs=2, validation={"window": 3, "refit": False}))
    assert shorter.kept_epoch == 1   # a run shorter than the window keeps its last epoch


def test_the_refit_trains_on_every_speaker_through_the_epoch_validation_chose(monkeypatch):
    _scripted_validation(monkeypatch, [0.2, 0.6, 0.4])
    refit_rows: list[dict] = []
    trained, rows = _train(_params(validation={"window": 1}), refit_rows=refit_rows)
    assert trained.kept_epoch == 1 and trained.refit_epochs == 2 and trained.train_samples == 24
    assert trained.kept_row["val_recall_at_1"] == 0.6 and len(rows) == 3   # the choice's scores and curve stay
    assert refit_rows[0] == {"epochs": 2} and len(refit_rows) == 3          # the refit's two epochs, logged apart
    assert all("loss_decoder_l1" in row and "val_recall_at_1" not in row for row in refit_rows[1:])
    # the model saved is exactly a run on all 6 speakers for 2 epochs
    alone, _ = _train(_params(epochs=2, validation={"fraction": 0.0, "keep": "last", "refit": False}))
    for key, value in alone.model.state_dict().items():
        assert torch.equal(trained.model.state_dict()[key], value), key
    assert trained.summary()["refit_epochs"] == 2


def test_without_the_refit_the_model_saved_learned_from_the_other_speakers_only():
    trained, _ = _train(_params(validation={"refit": False}))
    assert trained.refit_epochs == 0 and trained.train_samples == 16


def test_validation_needs_the_speakers():
    audio, embedding, _ = synthetic_data()
    with pytest.raises(ValueError, match="speakers"):
        train_encoder(audio, embedding, torch.nn.Linear(6, 10), None, _params(), CPU, lambda *a: None)


def test_keeping_the_best_needs_validation_speakers():
    with pytest.raises(ValueError, match="fraction > 0"):
        TrainEncoderParams.model_validate({"validation": {"fraction": 0.0}})
    TrainEncoderParams.model_validate({"validation": {"fraction": 0.0, "keep": "last"}})


def test_calibration_needs_the_reference_term():
    with pytest.raises(ValueError, match="decoder_l1 must be > 0"):
        TrainEncoderParams.model_validate({"loss": {"decoder_l1": 0.0}})
    TrainEncoderParams.model_validate({"loss": {"decoder_l1": 0.0, "weights": "fixed"}})
