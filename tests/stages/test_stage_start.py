"""The data stages start without importing torch, which alone adds about 0.7 s to the start of every stage process
(each partition of preprocess and features is one). Those that fit the identity head (features over the whole corpus,
gather) import it when they get there."""

import subprocess
import sys

import pytest

DATA_STAGES = ["download", "collect", "preprocess", "features", "gather"]


@pytest.mark.parametrize("stage", DATA_STAGES)
def test_a_data_stage_starts_without_torch(stage):
    probe = f"import sys, s2f.stages.{stage}; print(sorted(m for m in ('torch', 'tensorflow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"s2f.stages.{stage} imports {out.stdout.strip()} when it starts"
