"""The same floating-point arithmetic on every x86 machine: which CPU kernels torch uses, and how many threads.

Why: a trained model's bytes depend on the order its sums are taken in, and on a CPU that order is chosen at run
time. A fresh clone's `dvc repro` on an AVX-512 Xeon gave other weights and metrics than the committed ones (made
on a 2-core machine with another CPU), although every data stage matched byte for byte. Two choices decide it:

- the instruction set of the kernels: ATen's own (`ATEN_CPU_CAPABILITY`), MKL's matrix products and FFTs
  (`MKL_CBWR`, its conditional numerical reproducibility mode) and oneDNN's convolutions (`ONEDNN_MAX_CPU_ISA`).
  `cap_cpu_isa` caps all three at AVX2 on an x86-64 CPU that has AVX2 and FMA (on the demo encoder an AVX-512
  machine lost about 2 % of its training speed to it, `make bench-training`). On other CPUs it sets nothing:
  torch would take the cap at its word and run AVX2 code on a CPU without it;
- the number of threads a reduction is split over: 1, 2 and 4 threads gave three different identity heads on the
  same data. The trainers and `evaluate` run on `cpu_threads` threads from their params (default 2, set by
  `setup_runtime` through `pin_threads`); a machine with fewer cores computes the same, only slower. The identity
  head and VGG-Face's CPU forward run on one (`one_thread`).

The instruction set must be capped before torch's first operation in the process (it is chosen then, once):
`run_stage` and the `s2f` command do it before a stage's `main`. A thread count can be set at any time.
Variables the user has set are left alone: setting them is choosing other arithmetic. Not covered: numpy's own
kernels and its BLAS, which compute parts of the evaluation's metrics, and a GPU's arithmetic.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CPU_ISA_CAP = {
    "ATEN_CPU_CAPABILITY": "avx2",   # ATen's vectorised kernels (else: AVX-512 where the CPU has it)
    "MKL_CBWR": "AVX2",              # MKL's GEMM and FFT take the AVX2 code path, in its reproducible mode
    "ONEDNN_MAX_CPU_ISA": "AVX2",    # oneDNN's convolution kernels are generated for AVX2 at most
}


def has_avx2() -> bool:
    """Whether this is an x86-64 CPU with AVX2 and FMA, read from /proc/cpuinfo (asking torch would fix its choice
    of kernels before the cap)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        return False
    return {"avx2", "fma"} <= set(flags.split())


def cap_cpu_isa() -> dict[str, str]:
    """Cap torch's CPU kernels at AVX2 for this process and its children, where the user has not chosen otherwise
    and the CPU has AVX2; returns the variables as they now are."""
    if not has_avx2():
        return {name: os.environ[name] for name in CPU_ISA_CAP if name in os.environ}
    for name, value in CPU_ISA_CAP.items():
        os.environ.setdefault(name, value)
    torch = sys.modules.get("torch")  # not imported for it: download, collect and preprocess never load torch
    if torch is not None and os.environ["ATEN_CPU_CAPABILITY"] == "avx2" \
            and torch.backends.cpu.get_cpu_capability().startswith("AVX512"):  # ATen only: MKL and oneDNN don't say
        raise RuntimeError("torch had computed before its kernels were capped at AVX2: call cap_cpu_isa before "
                           "the first torch operation (an import that builds a tensor counts)")
    return {name: os.environ[name] for name in CPU_ISA_CAP}


def pin_threads(threads: int) -> int:
    """Run torch's operators on exactly `threads` threads (0: torch's own choice, every core: the results then
    depend on the machine); returns the count in use."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


@contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one thread inside the block, the caller's count restored after: for small computations whose
    result goes into a DVC output whatever the machine's core count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
