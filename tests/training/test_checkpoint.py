"""The resumable-training checkpoint: every named object and every global RNG restored, weights-only, refused when
another run wrote it."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from s2f.training.checkpoint import Progress, load_checkpoint, save_checkpoint


def _objects(seed: int) -> dict:
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    return {"model": model, "optimizer": opt}


def _draws() -> tuple:
    return random.random(), float(np.random.random()), float(torch.rand(()))


def test_a_checkpoint_restores_the_objects_the_progress_and_every_rng(tmp_path):
    saved = _objects(0)
    progress = Progress(5, {"total": 1.5}, 4, [{"loss_total": 0.5, "step": 4}])
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    save_checkpoint(tmp_path / "ckpt.pt", "abc", progress, saved)
    expected = _draws()
    restored = _objects(7)
    random.seed(2), np.random.seed(2), torch.manual_seed(2)
    assert load_checkpoint(tmp_path / "ckpt.pt", "abc", restored) == progress
    assert _draws() == expected
    for key, value in saved["model"].state_dict().items():
        assert torch.equal(restored["model"].state_dict()[key], value)
    assert torch.equal(restored["optimizer"].state_dict()["state"][0]["exp_avg"],
                       saved["optimizer"].state_dict()["state"][0]["exp_avg"])
    assert not (tmp_path / "ckpt.pt.tmp").exists()


def test_a_checkpoint_of_another_run_is_not_loaded(tmp_path, capsys):
    save_checkpoint(tmp_path / "ckpt.pt", "abc", Progress(3), _objects(0))
    fresh = _objects(7)
    before = fresh["model"].weight.detach().clone()
    assert load_checkpoint(tmp_path / "ckpt.pt", "other", fresh) is None
    assert torch.equal(fresh["model"].weight, before)
    assert "written by other settings or data: starting afresh" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "missing.pt", "abc", fresh) is None


def test_an_object_may_not_take_a_name_the_checkpoint_uses(tmp_path):
    with pytest.raises(ValueError, match="rng"):
        save_checkpoint(tmp_path / "ckpt.pt", "abc", Progress(), {"rng": torch.nn.Linear(1, 1)})
