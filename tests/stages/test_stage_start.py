"""The data stages start without importing torch, which alone adds about 0.7 s to the start of every stage process
(each partition of preprocess and features is one). Those that fit the identity head (features over the whole corpus,
gather) import it when they get there."""

import subprocess
import sys
from pathlib import Path

import pytest

import s2f.stages
from s2f.cli import STAGES

DATA_STAGES = ["download", "collect", "preprocess", "features", "gather"]


@pytest.mark.parametrize("stage", DATA_STAGES)
def test_a_data_stage_starts_without_torch(stage):
    probe = f"import sys, s2f.stages.{stage}; print(sorted(m for m in ('torch', 'tensorflow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"s2f.stages.{stage} imports {out.stdout.strip()} when it starts"


def test_a_finished_stage_leaves_its_objects_to_the_os():
    """After `main` returns, the interpreter's exit no longer frees the stage's objects one by one (s2f.stages.common
    `run_stage`: 0.9-1.4 s per stage process here); a stage that fails is left as it is."""
    probe = ("import gc, sys; from s2f.stages.common import run_stage; run_stage(lambda: None); "
             "print(gc.get_freeze_count() > 0)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


@pytest.mark.parametrize("stage", STAGES)
def test_every_dvc_stage_runs_through_run_stage(stage):
    source = (Path(s2f.stages.__file__).parent / f"{stage}.py").read_text()
    assert source.rstrip().endswith('if __name__ == "__main__":\n    run_stage(main)'), stage
