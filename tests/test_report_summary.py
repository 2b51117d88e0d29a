"""`s2f summary`: the evaluation table a person reads at the end of `make demo`, at most 100 columns wide."""

from __future__ import annotations

import json
import subprocess
import sys

from s2f.report_summary import WIDTH, headline, summary_table
from tests.conftest import ROOT

REPORT = json.loads((ROOT / "reports/metrics.json").read_text())  # what the committed dvc.lock's evaluate wrote


def _row(text: str, model: str, scored: str, voice: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"{model:<13}{scored:<9}{voice}"))
    return line.split()


def test_every_family_at_both_voice_lengths_with_its_numbers():
    text = summary_table(REPORT)
    assert max(len(line) for line in text.splitlines()) <= WIDTH
    six = REPORT["speech2face"]["retrieval"]["6s"]
    assert _row(text, "speech2face", "feature", "6 s")[4:6] == [f"{six['recall_at_1']:.3f}",
                                                                f"{six['recall_at_10']:.3f}"]
    decoded = REPORT["speech2face"]["decoded"]
    assert _row(text, "speech2face", "face", "3 s→6")[-3] == f"{decoded['matching']['3s_repeated']['accuracy']:.3f}"
    for family in ("ridge", "wen2019", "wav2pix"):
        assert _row(text, family, "feature" if family == "ridge" else "face", "6 s")
    assert _row(text, "wav2pix", "face", "6 s")[-1] == f"{REPORT['wav2pix']['images']['detection_ratio']:.2f}"
    assert f"chance: R@1 {six['chance_at_1']:.3f}, R@10 {six['chance_at_10']:.3f}" in text


def test_the_headline_holds_a_few_numbers_per_family_and_chance():
    numbers = headline(REPORT)
    assert set(numbers) == {"speech2face", "speech2face_image", "ridge", "wen2019", "wav2pix", "chance"}
    assert numbers["speech2face"]["r1_6s"] == round(REPORT["speech2face"]["retrieval"]["6s"]["recall_at_1"], 4)
    assert numbers["speech2face_image"]["faces_found"] == REPORT["speech2face"]["decoded"]["images"]["detection_ratio"]
    assert "match_6s" not in numbers["ridge"]  # a feature is not a face: nothing to match or detect
    assert list(numbers)[-1] == "chance"
    leaves = [v for section in numbers.values() for v in section.values()]
    assert all(isinstance(v, float) for v in leaves) and len(leaves) <= 25  # a table `dvc metrics show` can show


def test_a_missing_metric_shows_a_dash_not_a_crash():
    text = summary_table({"wen2019": {"retrieval": {"6s": {"recall_at_1": 0.5}}}})
    assert _row(text, "wen2019", "face", "6 s")[4:] == ["0.500", "—", "—", "—", "—"]
    assert "chance" not in text


def test_the_command_names_a_missing_report(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "s2f.cli", "summary", "--metrics", str(tmp_path / "m.json")],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "m.json does not exist yet; run `dvc repro`" in proc.stderr
