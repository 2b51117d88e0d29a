"""The same floating-point arithmetic on every x86 machine: which CPU kernels torch uses, and how many threads.

Why: a trained model's bytes depend on the order its sums are taken in, and on a CPU that order is chosen at run
time. A fresh clone's `dvc repro` on an AVX-512 Xeon gave other weights and metrics than the committed ones (made
on a 2-core machine with another CPU), although every data stage matched byte for byte. Three choices decide it:

- the instruction set of the kernels: ATen's own (`ATEN_CPU_CAPABILITY`), MKL's matrix products (`MKL_CBWR`, its
  conditional numerical reproducibility mode) and oneDNN's convolutions (`ONEDNN_MAX_CPU_ISA`). `cap_cpu_isa` caps
  all three at AVX2, which every x86-64 CPU since 2013 has; on the demo encoder an AVX-512 machine lost 2 % of its
  training speed to it (`make bench-training`);
- the number of threads a reduction is split over (`pin_threads`): 1, 2 and 4 threads gave three different
  identity heads on the same data. The trainers and `evaluate` take it from their params (`cpu_threads`, default
  2); a machine with fewer cores computes the same, only slower.

Both must happen before torch's first operation in the process (the choices are made then, once): `run_stage`
caps the instruction set before a stage's `main`, and each stage pins its threads before it loads a model.
Variables the user has set are left alone: setting them is choosing other arithmetic. On a GPU the arithmetic is
the GPU's, and none of this makes it reproducible; on ARM the variables name nothing and are ignored.
"""

from __future__ import annotations

import os
import sys

CPU_ISA_CAP = {
    "ATEN_CPU_CAPABILITY": "avx2",   # ATen's vectorised kernels (else: AVX-512 where the CPU has it)
    "MKL_CBWR": "AVX2",              # MKL's GEMM and FFT take the AVX2 code path, in its reproducible mode
    "ONEDNN_MAX_CPU_ISA": "AVX2",    # oneDNN's convolution kernels are generated for AVX2 at most
}


def cap_cpu_isa() -> dict[str, str]:
    """Cap torch's CPU kernels at AVX2 for this process and its children, where the user has not chosen otherwise;
    returns the variables as they now are."""
    for name, value in CPU_ISA_CAP.items():
        os.environ.setdefault(name, value)
    torch = sys.modules.get("torch")  # not imported for it: the data stages never load torch
    if torch is not None and os.environ["ATEN_CPU_CAPABILITY"] == "avx2" \
            and torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        raise RuntimeError("torch had computed before its kernels were capped at AVX2: call cap_cpu_isa before "
                           "the first torch operation (an import that builds a tensor counts)")
    return {name: os.environ[name] for name in CPU_ISA_CAP}


def pin_threads(threads: int) -> int:
    """Run torch's operators on exactly `threads` threads (0: torch's own choice, every core: fastest, but the
    results then depend on the machine); returns the count in use."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    return torch.get_num_threads()
