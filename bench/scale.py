"""Benchmark how cost grows with the corpus: the demo generator at 1×, 4× and 16× the default corpus (480 → 7,680
clips), each stage run as `dvc repro` runs it (its own process, its params file), timed and its peak RSS taken.

Usage: `make bench-scale` (or `.venv/bin/python bench/scale.py [--quick] [--scales 1,4,16] [--keep DIR]`).
- Stages measured per scale: download (the demo generator), preprocess (every core), features, and one epoch of
  encoder training streamed from the shards (`loop.in_memory_mb: 0`, the path a real corpus takes). The face
  decoder the encoder's loss needs is trained once, at the smallest scale, for one epoch (not measured).
- Per stage: wall seconds and peak RSS (the largest process of the stage's tree, from `wait4`), and the exponent b
  of time ≈ a · clips^b fitted over the scales (log-log least squares): 1.0 is linear; fixed costs pull it below 1.
- Preprocessing clips/s with 1 and with 2 processes at the smallest scale (fresh work folders: nothing reused).
- Bytes stored per sample (shards) against the float32 spectrogram pickle of the public re-implementations
  (measured on this run's samples).
Targets (issue 14): exponent ≤ 1.05 for every stage; training peak RSS at the largest scale ≤ 1.2× that at 1×;
1 → 2 processes ≥ 1.7×; storage ≤ 1/6 of the pickle. Prints a table, writes bench/results/scale.json and a
log-log PNG (bench/results/scale.png), and as its last line
`exponent=<largest over stages> memory_ratio=<training peak RSS largest / 1×> scaling=<1 → 2 processes>`.
`--quick` runs 1× and 4×.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from report import print_table, save_results  # noqa: E402

EXPONENT_TARGET, MEMORY_TARGET, SCALING_TARGET, STORAGE_TARGET = 1.05, 1.2, 1.7, 6.0
STAGES = ("download", "preprocess", "features", "encoder_epoch")


@dataclass
class Measure:
    seconds: float
    peak_rss_mb: float


def run_measured(args: list[str], cwd: Path, env: dict[str, str], log: Path) -> Measure:
    """Run a stage as its own process; wall time and the peak RSS of its largest process (`wait4`'s rusage)."""
    start = time.perf_counter()
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, *args], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(args)} failed ({proc.returncode}); see {log}")
    return Measure(seconds, usage.ru_maxrss / 1024)


def write_params(folder: Path, scale: int, preprocess_workers: int) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["demo"]["speakers"] *= scale   # 1×: the default demo corpus of params.yaml
    params["preprocess"]["workers"] = preprocess_workers
    params["train_decoder"] |= {"epochs": 1, "proxy": {**params["train_decoder"]["proxy"], "epochs": 1}}
    params["train_encoder"] |= {"epochs": 1, "validation": {**params["train_encoder"]["validation"], "fraction": 0.0,
                                                           "keep": "last"}}
    params["train_encoder"]["loop"] |= {"in_memory_mb": 0, "checkpoint_every": 0}
    path = folder / f"params-{preprocess_workers}.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def stage(name: str, params: Path, d: Path, decoder: Path) -> list[str]:
    args = {
        "download": ["--out", d / "raw", "--work", d / "work/download"],
        "preprocess": ["--raw", d / "raw", "--out", d / "pre", "--work", d / "work/pre", "--summary", d / "pre.json"],
        "features": ["--pre", d / "pre", "--out", d / "feat", "--work", d / "work/feat"],
        "train_decoder": ["--pre", d / "pre", "--features", d / "feat", "--model", decoder, "--metrics",
                          d / "decoder.json", "--curve", d / "decoder.csv", "--checkpoint", d / "work/decoder.pt"],
        "train_encoder": ["--pre", d / "pre", "--features", d / "feat", "--decoder", decoder, "--model",
                          d / "encoder.pt", "--metrics", d / "encoder.json", "--curve", d / "encoder.csv",
                          "--checkpoint", d / "work/encoder.pt"],
    }[name]
    return ["-m", f"s2f.stages.{name}", "--params", str(params), *map(str, args)]


def measure_scale(scale: int, scratch: Path, cores: int, env: dict[str, str], decoder: Path) -> dict:
    d = scratch / f"x{scale}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    params, log = write_params(d, scale, cores), d / "log.txt"
    out: dict = {}
    for name in ("download", "preprocess", "features"):
        out[name] = run_measured(stage(name, params, d, decoder), ROOT, env, log)
        print(f"bench: {scale}×: {name} {out[name].seconds:.1f} s, {out[name].peak_rss_mb:.0f} MB", file=sys.stderr,
              flush=True)
    if not decoder.exists():
        run_measured(stage("train_decoder", params, d, decoder), ROOT, env, log)
    out["encoder_epoch"] = run_measured(stage("train_encoder", params, d, decoder), ROOT, env, log)
    print(f"bench: {scale}×: one encoder epoch {out['encoder_epoch'].seconds:.1f} s, "
          f"{out['encoder_epoch'].peak_rss_mb:.0f} MB", file=sys.stderr, flush=True)
    accepted = json.loads((d / "pre.json").read_text())["accepted"]
    out["clips"] = accepted
    out["bytes_per_sample"] = sum(p.stat().st_size for p in (d / "pre").glob("shard-*.npz")) / accepted
    return out


def preprocess_scaling(scratch: Path, env: dict[str, str]) -> dict[int, float]:
    """clips/s of preprocess with 1 and 2 processes on the smallest corpus, each into a fresh work folder."""
    d, rates = scratch / "x1", {}
    for workers in (1, 2):
        params = write_params(d, 1, workers)
        shutil.rmtree(d / "work/pre", ignore_errors=True)
        shutil.rmtree(d / "pre", ignore_errors=True)
        took = run_measured(stage("preprocess", params, d, d / "unused.pt"), ROOT, env, d / "log.txt").seconds
        rates[workers] = json.loads((d / "pre.json").read_text())["clips"] / took
        print(f"bench: preprocess with {workers} process(es): {rates[workers]:.2f} clips/s", file=sys.stderr)
    return rates


def pickle_bytes_per_sample(pre: Path, samples: int = 8) -> float:
    """The public re-implementations' format: one pickle per sample of the float32 compressed spectrogram and the
    crop. Only measured here (serialised to memory), never written or read as data."""
    import torch

    from s2f.audio import spectrogram
    from s2f.io.shards import read_shard

    shard = read_shard(sorted(pre.glob("shard-*.npz"))[0], ["audio", "face"])
    sizes = []
    for audio, face in list(zip(shard["audio"], shard["face"]))[:samples]:
        spec = spectrogram(torch.from_numpy(audio.astype(np.float32) / 32768.0)[None])[0].numpy()
        sizes.append(len(pickle.dumps({"spec": spec, "face": face}, protocol=pickle.HIGHEST_PROTOCOL)))
    return float(np.mean(sizes))


def exponent(clips: list[float], seconds: list[float]) -> float:
    return float(np.polyfit(np.log(clips), np.log(seconds), 1)[0])


def plot(results: dict[int, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    scales = sorted(results)
    clips = [results[s]["clips"] for s in scales]
    for name in STAGES:
        ax.loglog(clips, [results[s][name].seconds for s in scales], "o-", label=name)
    ref = np.array([clips[0], clips[-1]], float)
    first = min(results[scales[0]][n].seconds for n in STAGES)
    ax.loglog(ref, first * ref / ref[0], "k--", lw=0.8, label="linear")
    ax.set(xlabel="clips", ylabel="seconds", title="speech2face: time against corpus size")
    ax.set_xticks(clips, [f"{c:,}" for c in clips])   # the measured sizes, not 10^k ticks crowding each other
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1× and 4× only")
    parser.add_argument("--scales", default="1,4,16", help="multiples of the default 480-clip corpus")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    scales = [1, 4] if args.quick else sorted(int(s) for s in args.scales.split(","))
    cores = max(len(os.sched_getaffinity(0)), 1)
    scratch = args.keep or Path(tempfile.mkdtemp(prefix="s2f-bench-scale-"))
    scratch.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{scratch / 'mlflow.db'}", "PYTHONPATH": str(ROOT),
           "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "DVC_NO_ANALYTICS": "1"}
    decoder = scratch / "face_decoder.pt"
    decoder.unlink(missing_ok=True)
    try:
        results = {scale: measure_scale(scale, scratch, cores, env, decoder) for scale in scales}
        rates = preprocess_scaling(scratch, env)
        pickled = pickle_bytes_per_sample(scratch / "x1" / "pre")
    finally:
        if args.keep is None:
            shutil.rmtree(scratch, ignore_errors=True)
    report(results, rates, pickled, scales)


def report(results: dict[int, dict], rates: dict[int, float], pickled: float, scales: list[int]) -> None:
    clips = [results[s]["clips"] for s in scales]
    exponents = {name: exponent(clips, [results[s][name].seconds for s in scales]) for name in STAGES}
    memory = results[scales[-1]]["encoder_epoch"].peak_rss_mb / results[scales[0]]["encoder_epoch"].peak_rss_mb
    scaling = rates[2] / rates[1]
    stored = float(np.mean([results[s]["bytes_per_sample"] for s in scales]))
    rows = []
    for s in scales:
        r = results[s]
        rows += [(f"{s}× ({r['clips']} clips): {name}", f"{r[name].seconds:.1f} s, {r[name].peak_rss_mb:.0f} MB", "",
                  "", True) for name in STAGES]
    rows += [(f"exponent of time vs clips: {name}", f"{exponents[name]:.2f}", f"≤ {EXPONENT_TARGET}", "linear = 1",
              exponents[name] <= EXPONENT_TARGET) for name in STAGES]
    rows += [(f"training peak RSS {scales[-1]}× / 1×", f"{memory:.2f}×", f"≤ {MEMORY_TARGET}×",
              f"{results[scales[0]]['encoder_epoch'].peak_rss_mb:.0f} MB at 1×", memory <= MEMORY_TARGET),
             ("preprocess 1 → 2 processes", f"{scaling:.2f}×", f"≥ {SCALING_TARGET}×",
              f"{rates[1]:.2f} clips/s with 1", scaling >= SCALING_TARGET),
             ("bytes stored per sample", f"{stored / 1e3:.0f} kB ({pickled / stored:.1f}× smaller)",
              f"≤ 1/{STORAGE_TARGET:.0f} of the pickle", f"{pickled / 1e3:.0f} kB (pickle)",
              pickled / stored >= STORAGE_TARGET)]
    print_table(rows)
    png = Path(save_results("scale", {"scales": {s: {**{n: vars(results[s][n]) for n in STAGES},
                                                      "clips": results[s]["clips"],
                                                      "bytes_per_sample": results[s]["bytes_per_sample"]}
                                                  for s in scales},
                                       "exponents": exponents, "memory_ratio": memory,
                                       "preprocess_clips_per_s": rates, "pickle_bytes_per_sample": pickled})
              ).with_suffix(".png")
    plot(results, png)
    print(f"log-log plot: {png}")
    print(f"exponent={max(exponents.values()):.2f} memory_ratio={memory:.2f} scaling={scaling:.2f}")


if __name__ == "__main__":
    main()
