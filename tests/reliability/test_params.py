"""Params that pass type checks but mean nothing are refused by the stage that reads them, before any work starts.

Each case runs a real stage entry point with one bad value and expects: a non-zero exit, one line naming the params
file, the full dotted key and what is allowed, and no traceback.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

# Inputs each stage would read after its params: none exist, so a stage that accepts the params fails another way.
STAGE_ARGS = {
    "download": lambda d: ["--out", str(d / "raw"), "--work", str(d / "work")],
    "preprocess": lambda d: ["--raw", str(d / "raw"), "--out", str(d / "pre"), "--work", str(d / "w"),
                             "--summary", str(d / "s.json")],
    "features": lambda d: ["--pre", str(d / "pre"), "--out", str(d / "feat")],
    "train_decoder": lambda d: ["--pre", str(d / "pre"), "--features", str(d / "feat"), "--model", str(d / "m.pt"),
                                "--metrics", str(d / "m.json"), "--curve", str(d / "c.csv"),
                                "--checkpoint", str(d / "ck.pt")],
    "train_encoder": lambda d: ["--pre", str(d / "pre"), "--features", str(d / "feat"), "--decoder",
                                str(d / "dec.pt"), "--model", str(d / "m.pt"), "--metrics", str(d / "m.json"),
                                "--curve", str(d / "c.csv"), "--checkpoint", str(d / "ck.pt")],
    "evaluate": lambda d: ["--pre", str(d / "pre"), "--features", str(d / "feat"), "--encoder", str(d / "e.pt"),
                           "--decoder", str(d / "dec.pt"), "--metrics", str(d / "m.json"), "--grid", str(d / "g.png")],
}
SMALL_DEMO = "  demo: {speakers: 2, clips_per_speaker: 1, min_seconds: 1.0, max_seconds: 1.5}\n  workers: 1\n"

# (stage, params file text, the dotted key the message must name, what the message must say is allowed)
CASES = [
    ("evaluate", "evaluate:\n  ks: [-3]\n", "evaluate.ks[0]", "greater than or equal to 1"),
    ("evaluate", "evaluate:\n  ks: [0, 1]\n", "evaluate.ks[0]", "greater than or equal to 1"),
    ("evaluate", "evaluate:\n  ks: []\n", "evaluate.ks", "at least 1"),
    ("evaluate", "evaluate:\n  ks: [1, 5, 1]\n", "evaluate.ks", "unique"),
    ("evaluate", "evaluate:\n  ks: [1, 100]\n  gallery_size: 100\n", "evaluate.ks", "below gallery_size"),
    ("evaluate", "evaluate:\n  seed: -1\n", "evaluate.seed", "greater than or equal to 0"),
    ("preprocess", "preprocess:\n  sample_rate: 0\n", "preprocess.sample_rate", "greater than or equal to 8000"),
    ("preprocess", "preprocess:\n  crop_size: 0\n", "preprocess.crop_size", "greater than or equal to 32"),
    ("preprocess", "preprocess:\n  workers: -2\n", "preprocess.workers", "greater than or equal to 0"),
    ("preprocess", "preprocess:\n  min_rms: 1.5\n", "preprocess.min_rms", "less than 1"),
    ("preprocess", "preprocess:\n  seconds: .inf\n", "preprocess.seconds", "finite"),
    ("preprocess", "preprocess:\n  min_seconds: 20\n  max_source_seconds: 10\n", "preprocess.max_source_seconds",
     "at least min_seconds"),
    ("preprocess", "preprocess:\n  output_uri: /tmp/shards\n", "preprocess.output_uri", "s3://"),
    ("preprocess", "preproces:\n  sample_rate: 8000\n", "preprocess", "no `preprocess` section"),
    ("download", f"data:\n  demo: {{speakers: 2, clips_per_speaker: 1, min_seconds: 8, max_seconds: 3}}\n"
                 "  workers: 1\n", "data.demo.max_seconds", "at least min_seconds"),
    ("download", f"data:\n  demo: {{speakers: 2, clips_per_speaker: 1, sample_rate: 0}}\n  workers: 1\n",
     "data.demo.sample_rate", "greater than or equal to 8000"),
    ("download", "data:\n  source: avspeech\n  avspeech: {url_template: 'https://example.invalid/{id}'}\n",
     "data.avspeech.url_template", "{youtube_id}"),
    ("download", f"data:\n  source: local\n  local: {{allowed_roots: [relative/dir]}}\n{SMALL_DEMO}",
     "data.local.allowed_roots[0]", "absolute"),
    ("features", "features:\n  split: {seed: -7}\n", "features.split.seed", "greater than or equal to 0"),
    ("train_decoder", "train_decoder:\n  image_size: 60\n", "train_decoder.image_size", "texture_grid × 2^k"),
    ("train_decoder", "train_decoder:\n  loss: {texture: 0, landmarks: 0, identity: 0}\n", "train_decoder.loss",
     "at least one"),
    ("train_encoder", "train_encoder:\n  betas: [2, 3]\n", "train_encoder.betas[0]", "less than 1"),
    ("train_encoder", "train_encoder:\n  betas: [0.5, -0.1]\n", "train_encoder.betas[1]", "greater than or equal to 0"),
    ("train_encoder", "train_encoder:\n  eps: 0\n", "train_encoder.eps", "greater than 0"),
    ("train_encoder", "train_encoder:\n  model: {blocks: []}\n", "train_encoder.model.blocks", "at least 1"),
    ("train_encoder", "train_encoder:\n  loss: {decoder_l1: 0, normalized_l2: 0, distill: 0}\n",
     "train_encoder.loss", "at least one"),
]


@pytest.mark.parametrize(("stage", "text", "key", "allowed"), CASES,
                         ids=[f"{c[0]}-{c[2]}-{i}" for i, c in enumerate(CASES)])
def test_meaningless_value_is_refused_naming_the_key(tmp_path, stage, text, key, allowed):
    params = tmp_path / "bad_params.yaml"
    params.write_text(text)
    main = importlib.import_module(f"s2f.stages.{stage}").main
    with pytest.raises(SystemExit) as exit_info:
        main(["--params", str(params), *STAGE_ARGS[stage](tmp_path)])
    message = exit_info.value.code
    assert isinstance(message, str), f"expected a message, got exit code {message!r}"  # a string: no traceback
    assert re.search(re.escape(key) + r"(?![\w.\[])", message), f"{key} not named: {message}"
    assert str(params) in message and allowed in message, message
    assert "\n" not in message.strip(), message


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_misspelt_section_fails_the_stage_dvc_runs(tmp_path):
    """`python -m s2f.stages.preprocess` (what dvc.yaml runs) with `preproces:` must not fall back to defaults."""
    (tmp_path / "params.yaml").write_text("preproces:\n  sample_rate: 8000\n")
    proc = _run("-m", "s2f.stages.preprocess", "--raw", "raw", "--out", "pre", "--work", "w", cwd=tmp_path)
    assert proc.returncode != 0
    assert "no `preprocess` section" in proc.stderr and "params.yaml" in proc.stderr, proc.stderr[-2000:]
    assert "preproces" in proc.stderr.split("section", 1)[1], proc.stderr  # the unknown section is named too
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]


def test_bad_value_through_the_s2f_command(tmp_path):
    (tmp_path / "p.yaml").write_text("evaluate:\n  ks: [-3]\n")
    proc = _run("-m", "s2f.cli", "evaluate", "--params", "p.yaml", *STAGE_ARGS["evaluate"](tmp_path), cwd=tmp_path)
    assert proc.returncode != 0
    assert "evaluate.ks[0]" in proc.stderr and "p.yaml" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
