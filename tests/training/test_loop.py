"""The training loop: a killed run resumes exactly; DDP over 2 CPU processes (gloo) keeps replicas in sync."""

from __future__ import annotations

import json
import signal

import pytest
import torch

from s2f.training.data import StepBatches
from tests.training.run_training import REFIT_FIRST_EPOCH
from tests.training.runs import assert_killed_run_resumes, free_port, run, weights


@pytest.mark.reliability
def test_killed_run_resumes_to_the_same_weights(tmp_path):
    _, curve, ckpt = assert_killed_run_resumes(tmp_path, "tests.training.run_training", kill_after_epoch=1)
    assert len([row for row in curve if "val_recall_at_1" in row]) == 4   # then the refit's epochs
    # the checkpoint the resume started from carried the calibrated loss weights and the best epoch so far
    assert "val_recall_at_1" in curve[0] and curve[0]["weight_distill"] != 200.0
    summary_a = json.loads((tmp_path / "straight/summary.json").read_text())
    summary_b = json.loads((tmp_path / "resumed/summary.json").read_text())
    assert summary_a == summary_b and summary_a["calibration_step"] == 3
    state = torch.load(ckpt, weights_only=True)["hooks"]
    assert state["calibration"]["step"] == 3 and state["best"]["epoch"] == summary_a["kept_epoch"]


@pytest.mark.reliability
def test_a_run_killed_during_the_refit_resumes_the_refit_to_the_same_weights(tmp_path):
    _, curve, ckpt = assert_killed_run_resumes(tmp_path, "tests.training.run_training",
                                               kill_after_epoch=REFIT_FIRST_EPOCH)
    refit_rows = [row for row in curve if "val_recall_at_1" not in row]
    summary = json.loads((tmp_path / "resumed/summary.json").read_text())
    assert len(refit_rows) == summary["refit_epochs"] >= 2 and summary["train_samples"] == 24
    # the refit went on from its own checkpoint, past its first epoch, rather than starting over
    resumed = [line for line in (tmp_path / "resumed.out").read_text().splitlines() if "ckpt_refit.pt" in line]
    assert len(resumed) == 1 and resumed[0].startswith("resuming from step ") and " 0 of " not in resumed[0]


@pytest.mark.reliability
def test_checkpoint_of_other_settings_is_not_resumed(tmp_path):
    ckpt = tmp_path / "ckpt.pt"
    assert run("-m", "tests.training.run_training", "--out", str(tmp_path / "a"), "--checkpoint", str(ckpt),
               "--kill-after-epoch", "1").returncode == -signal.SIGKILL
    state = torch.load(ckpt, weights_only=True)
    state["fingerprint"] = "written-by-another-run"
    torch.save(state, ckpt)
    again = run("-m", "tests.training.run_training", "--out", str(tmp_path / "a"), "--checkpoint", str(ckpt))
    assert again.returncode == 0, again.stderr
    assert "starting afresh" in again.stdout and "resuming" not in again.stdout


def test_ddp_two_cpu_processes_on_gloo(tmp_path):
    ddp = run("-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2", "--master-addr",
              "127.0.0.1", "--master-port", str(free_port()), "-m", "tests.training.run_training",
              "--out", str(tmp_path))
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    rank0, rank1 = weights(tmp_path / "weights-rank0.pt"), weights(tmp_path / "weights-rank1.pt")
    params = [k for k in rank0 if "running_" not in k and "num_batches" not in k]
    assert len(params) >= 10
    for key in params:  # each rank saw different samples: only gradient averaging keeps the weights equal
        torch.testing.assert_close(rank0[key], rank1[key], msg=key)
    # batch-norm running statistics stay per rank (DDP broadcasts rank 0's each step; rank 0 saves them)
    assert any(not torch.equal(rank0[k], rank1[k]) for k in rank0 if "running_mean" in k)
    rows = json.loads((tmp_path / "curve.json").read_text())
    curve, refit = [r for r in rows if "val_recall_at_1" in r], [r for r in rows if "val_recall_at_1" not in r]
    # 24 samples, 8 of them the 2 validation speakers': 16 / 2 ranks / batch 4 = 2 steps per epoch
    assert len(curve) == 4 and curve[-1]["step"] == 4 * 2
    assert curve[-1]["loss_total"] < curve[0]["loss_total"]
    # then the refit on all 24: 24 / 2 ranks / batch 4 = 3 steps per epoch, through the epoch chosen
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(refit) == summary["refit_epochs"] >= 1 and refit[-1]["step"] == len(refit) * 3


@pytest.mark.parametrize("world", [1, 2, 3])
def test_step_batches_cover_each_epoch_once_across_ranks(world):
    ranks = [StepBatches(25, 4, 2, seed=5, rank=r, world_size=world) for r in range(world)]
    for epoch in range(2):
        seen = [i for b in ranks for i in b.epoch_order(epoch).ravel()]
        assert len(seen) == len(set(seen)) == ranks[0].steps_per_epoch * 4 * world


def test_step_batches_resume_mid_epoch_reads_the_same_batches():
    full = list(StepBatches(20, 4, 3, seed=1))
    later = StepBatches(20, 4, 3, seed=1)
    later.start = 7
    assert list(later) == full[7:]


def test_fingerprint_covers_the_training_code(monkeypatch):
    """A finished checkpoint of the old code must not be resumed after a fix to the training code."""
    from s2f.training import loop

    before = loop.fingerprint({"lr": 1e-3}, "data")
    monkeypatch.setattr(loop, "TRAINING_CODE", ("s2f.training.decoder",))  # as if the encoder's code had changed
    assert loop.fingerprint({"lr": 1e-3}, "data") != before


def test_training_code_covers_the_loss_models_and_stft():
    """The fingerprint hashes the import closure, so the modules a hand-written list once missed are in it."""
    from s2f.lineage import relative_closure
    from s2f.training.loop import TRAINING_CODE

    closure = {f for m in TRAINING_CODE for f in relative_closure(m)}
    assert {"s2f/losses.py", "s2f/audio.py", "s2f/models/voice_encoder.py", "s2f/models/warp.py",
            "s2f/training/loop.py", "s2f/training/data.py"} <= closure
