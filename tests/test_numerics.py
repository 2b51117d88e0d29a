"""The arithmetic a stage process runs: kernels capped at AVX2, a fixed thread count, the same bytes whatever the
machine's own defaults (s2f/numerics.py)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from s2f.numerics import CPU_ISA_CAP, has_avx2

ROOT = Path(__file__).resolve().parents[1]
NO_AVX2 = pytest.mark.skipif(not has_avx2(), reason="the cap is set only on an x86-64 CPU with AVX2 and FMA")

TRAIN_A_LITTLE = """
import hashlib, sys, torch
from torch import nn
from s2f.stages.common import run_stage
from s2f.training.distributed import setup_runtime
if sys.argv[1] == "pinned":
    run_stage(lambda: setup_runtime(2))  # as a stage's entry point: kernels capped first, then its threads
torch.manual_seed(0)
model = nn.Sequential(nn.Conv1d(16, 32, 5), nn.ReLU(), nn.Flatten(), nn.Linear(32 * 252, 64))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
x, y = torch.randn(32, 16, 256), torch.randn(32, 64)
for _ in range(5):
    loss = ((model(x) - y) ** 2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
weights = b"".join(p.detach().numpy().tobytes() for p in model.parameters())
print(torch.backends.cpu.get_cpu_capability(), torch.get_num_threads(), hashlib.sha256(weights).hexdigest())
"""


def child_env(**env: str) -> dict[str, str]:
    """This environment without the variables the test is about, plus `env`, for a child that imports s2f."""
    unset = (*CPU_ISA_CAP, "OMP_NUM_THREADS")
    return {**{k: v for k, v in os.environ.items() if k not in unset}, **env, "PYTHONPATH": str(ROOT)}


def train_a_little(mode: str, **env: str) -> list[str]:
    """Train a small conv + linear model for 5 steps in a fresh process; → [capability, threads, weights' sha256]."""
    done = subprocess.run([sys.executable, "-c", TRAIN_A_LITTLE, mode], env=child_env(**env),
                          capture_output=True, text=True, timeout=300, check=True)
    return done.stdout.split()


@NO_AVX2
def test_a_stage_process_computes_with_avx2_kernels_on_a_fixed_thread_count():
    capability, threads, _ = train_a_little("pinned")
    assert (capability, threads) == ("AVX2", "2")


def test_the_weights_do_not_depend_on_the_machines_thread_default():
    """A machine with another core count starts torch with another thread count (OMP_NUM_THREADS stands in for it
    here): pinned, the weights are the same bytes; left to the default, they were not."""
    one, three = train_a_little("pinned", OMP_NUM_THREADS="1"), train_a_little("pinned", OMP_NUM_THREADS="3")
    assert one == three


def test_the_users_own_choice_of_kernels_is_kept():
    capability, _, _ = train_a_little("pinned", ATEN_CPU_CAPABILITY="default")
    assert capability == "DEFAULT"


@NO_AVX2
def test_the_s2f_command_caps_the_kernels_as_a_stage_process_does():
    script = ("import os, sys\nfrom s2f import cli\nsys.argv = ['s2f', 'model-summary', '--help']\n"
              "try:\n    cli.main()\nexcept SystemExit:\n    pass\nprint(os.environ.get('MKL_CBWR'))")
    done = subprocess.run([sys.executable, "-c", script], env=child_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.split()[-1] == "AVX2", done.stdout + done.stderr


def test_a_cpu_without_avx2_gets_no_cap(monkeypatch):
    """torch would take ATEN_CPU_CAPABILITY=avx2 at its word and run AVX2 code on such a CPU (SIGILL)."""
    from s2f import numerics

    for name in numerics.CPU_ISA_CAP:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(numerics.platform, "machine", lambda: "aarch64")
    assert numerics.cap_cpu_isa() == {}
    assert not any(name in os.environ for name in numerics.CPU_ISA_CAP)
