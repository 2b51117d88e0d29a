"""Progress as its reader sees it: a bar on a terminal, a few plain lines in a log, nothing when turned off."""

import pytest

from s2f.progress import Progress, progress_mode


def test_in_a_log_a_line_says_how_far_how_fast_and_how_long_is_left(capsys):
    with Progress("preprocess", 4, unit="clips", every=0.0, mode="lines") as shown:
        shown.update(1)
        shown.update(1, shards="0 of 1 done")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "preprocess: 1 of 4 clips (25 %)"   # one item has no rate: none is guessed
    assert lines[1].startswith("preprocess: 2 of 4 clips (50 %), ") and "clips/s, about" in lines[1]
    assert lines[1].endswith(" left; shards 0 of 1 done")
    assert lines[-1].startswith("preprocess: 2 of 4 clips")  # the closing line: where the step ended


def test_a_log_gets_at_most_one_line_per_interval_and_a_quick_step_none(capsys):
    with Progress("features", None, unit="faces", every=3600.0, mode="lines") as shown:
        for _ in range(1000):
            shown.update(1)
    assert capsys.readouterr().out == ""


def test_on_a_terminal_a_bar_goes_to_stderr_and_stdout_stays_clean(capsys):
    with Progress("train_encoder", 3, unit="epochs", mode="bar") as shown:
        for epoch in range(3):
            shown.update(1, loss=1.0 / (epoch + 1))
    out, err = capsys.readouterr()
    assert out == "" and "train_encoder" in err and "3/3" in err


@pytest.mark.parametrize("setting, mode", [("off", "off"), ("lines", "lines"), ("bar", "bar"), ("", "lines")])
def test_s2f_progress_chooses_the_mode(monkeypatch, setting, mode):
    monkeypatch.setenv("S2F_PROGRESS", setting)
    assert progress_mode() == mode  # under pytest stderr is no terminal: lines by default


def test_epoch_curve_shows_each_epoch_with_its_loss(capsys, monkeypatch):
    from s2f.io.tracking import EpochCurve

    monkeypatch.setenv("S2F_PROGRESS", "lines")
    curve = EpochCurve(None, label="train_decoder", epochs=2)
    curve.progress.every = 0.0
    curve(0, {"loss_total": 0.5})
    curve(1, {"loss_total": 0.25, "val_recall_at_1": 0.4})
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("train_decoder: 1 of 2 epochs (50 %)") and out[0].endswith("; loss 0.5")
    assert out[-1].endswith("; loss 0.25, val R@1 0.4")
    assert [row["epoch"] for row in curve.rows] == [0, 1]
