"""Benchmark encoder training: samples/s and achieved FLOP/s against this machine's own matmul throughput, and the
data loader's overhead against an in-memory batch, all measured in this run.

Usage: `make bench-training` (or `.venv/bin/python bench/training_throughput.py [--quick] [--sizes demo,paper]`).
- Baseline: `torch.mm` of square float32 (bf16 on CUDA) matrices, the best of several runs: what this device can do
  on the easiest possible kernel. Training FLOPs are 3× the forward FLOPs of `s2f.models.summary.encoder_flops`.
- Sizes: the `demo` and `paper` presets (Table 1, 6 s input, D = 4096 at paper size; D = 128 for demo), batch 8
  (the paper's; `--paper-batch`, 2 by default on CPU), each step a real optimiser step of the Speech2Face loss.
- Loader overhead: the demo preset's step time fed by the real loader (`StepBatches` + `AudioWindows` +
  `DataLoader`, int16 clips cropped and converted per sample; the clips in memory, or streamed row by row from FLAC
  shards as a corpus larger than `loop.in_memory_mb` is) against the same step on one batch kept in memory, in
  alternating blocks of steps so that the machine's drift falls on both; target ≤ 10 % for the best worker count of
  each. On CUDA the paper size runs with bf16 autocast.
- FLAC decode: one 2.5 s training window of a stored clip, decoded by s2f (dr_flac) against libsndfile, which writes
  the shards, both in this run.
Prints a table and writes bench/results/training_throughput.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from report import exit_on_missed_targets, print_table, save_results  # noqa: E402
from s2f.losses import LossWeights, speech2face_loss  # noqa: E402
from s2f.models.presets import get_preset  # noqa: E402
from s2f.models.summary import encoder_flops  # noqa: E402
from s2f.models.voice_encoder import VoiceEncoder  # noqa: E402
from s2f.training.data import AudioWindows, StepBatches, make_loader  # noqa: E402
from s2f.training.loop import autocast  # noqa: E402

SAMPLE_RATE = 16000


def matmul_flops(device: torch.device, n: int, repeat: int) -> float:
    """Best FLOP/s of an n×n @ n×n product."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    best = float("inf")
    for _ in range(repeat + 1):
        _sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_step(model: VoiceEncoder, dim: int, device: torch.device):
    """One real optimiser step of the Speech2Face loss (frozen f_dec and identity head of the preset's size)."""
    f_dec = torch.nn.Linear(dim, 512).to(device).requires_grad_(False)
    head = torch.nn.Linear(dim, 100).to(device).requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.5, 0.999), eps=1e-4)

    def step(wave: torch.Tensor, target: torch.Tensor) -> None:
        with autocast(device):
            terms = speech2face_loss(f_dec, target, model(wave).float(), LossWeights(), head)
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        opt.step()
    return step


def bench_size(name: str, device: torch.device, batch: int, steps: int, mm: float) -> dict:
    preset = get_preset(name)
    config = preset.encoder
    torch.manual_seed(0)
    model = VoiceEncoder(config).to(device).train()
    wave = torch.randn(batch, int(preset.seconds * SAMPLE_RATE), device=device) * 0.1
    target = torch.randn(batch, config.out_dim, device=device)
    step = make_step(model, config.out_dim, device)
    batches = ((wave, torch.arange(batch)) for _ in range(10 ** 9))
    seconds = time_interleaved(step, {"fixed": batches}, target, device, rounds=1, block=steps, warmup=1)["fixed"]
    flops = 3 * encoder_flops(config, preset.seconds) * batch / seconds
    return {"size": name, "batch": batch, "seconds_per_step": seconds, "samples_per_s": batch / seconds,
            "flops_per_s": flops, "fraction_of_mm": flops / mm, "params": sum(p.numel() for p in model.parameters())}


def streamed_audio(audio: np.ndarray, folder: Path, per_shard: int = 16):
    """The clips written as preprocessing stores them (FLAC in shards) and opened as a column read row by row."""
    from s2f.dataset import ShardColumn
    from s2f.io import codecs
    from s2f.io.shards import write_shard

    locations = []
    for number, start in enumerate(range(0, len(audio), per_shard)):
        path = folder / f"shard-{number:05d}.npz"
        write_shard(path, codecs.encoded_columns("audio", "flac", [codecs.encode_flac(a, SAMPLE_RATE)
                                                                   for a in audio[start:start + per_shard]]))
        locations.append(str(path))
    return ShardColumn("audio", locations, np.array([(k // per_shard, k % per_shard) for k in range(len(audio))]))


def demo_voices(clips: int, seed: int = 0) -> np.ndarray:
    """(clips, 6 s) int16 speech from the demo corpus's synthesiser, one speaker each: FLAC decodes speech more slowly
    than the white noise this bench used before (4.1 against 3.6 ms a batch of 8 here), so it times what a corpus
    costs."""
    from s2f.demo.traits import draw_traits
    from s2f.demo.voice import synthesize_clip

    rng = np.random.default_rng(seed)
    return np.stack([np.round(synthesize_clip(draw_traits(rng), 6.0, SAMPLE_RATE, rng) * 32767).astype(np.int16)
                     for _ in range(clips)])


def bench_decoders(clips: int, window: int, repeat: int) -> dict:
    """Milliseconds to decode one training window of a FLAC-stored clip: `s2f.io.codecs.decode_flac` (dr_flac) against
    libsndfile, which writes the shards (the baseline), the best of `repeat` passes over the clips."""
    import io

    import soundfile

    from s2f.io import codecs

    encoded = [codecs.encode_flac(clip, SAMPLE_RATE) for clip in demo_voices(clips)]
    starts = np.random.default_rng(0).integers(0, 6 * SAMPLE_RATE - window, len(encoded))

    def libsndfile(data: bytes, start: int) -> np.ndarray:
        return soundfile.read(io.BytesIO(data), dtype="int16", start=start, stop=start + window)[0]

    def best_ms(decode) -> float:
        best = float("inf")
        for _ in range(repeat):
            start_time = time.perf_counter()
            for data, start in zip(encoded, starts):
                decode(data, int(start))
            best = min(best, (time.perf_counter() - start_time) / len(encoded))
        return best * 1e3
    return {"window_s": window / SAMPLE_RATE, "s2f_ms": best_ms(lambda d, s: codecs.decode_flac(d, s, s + window)),
            "libsndfile_ms": best_ms(libsndfile)}


def time_interleaved(step, sources: dict[str, Iterable], targets: torch.Tensor, device: torch.device,
                     rounds: int, block: int, warmup: int = 2) -> dict[str, float]:
    """Seconds per step of each source (data movement included), measured in alternating blocks of `block` steps
    (the order turns each round), after `warmup` steps of each.

    Why interleaved: on a shared VM the same step's time drifts by ±15 % within a minute, more than the few
    milliseconds a loader adds; timing the sources one after the other measured the drift. Alternating blocks sees
    the same drift in both. A loader worker refills its queue during the loader's own block, so in the steady state
    each block carries the decoding of the batches it consumes."""
    iters = {name: iter(batches) for name, batches in sources.items()}

    def run(name: str, steps: int) -> float:
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            wave, idx = next(iters[name])
            step(wave.to(device), targets[idx].to(device))
        _sync(device)
        return time.perf_counter() - start

    for name in iters:
        run(name, warmup)
    spent = dict.fromkeys(iters, 0.0)
    names = list(iters)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            spent[name] += run(name, block)
    return {name: seconds / (rounds * block) for name, seconds in spent.items()}


def bench_loader(device: torch.device, clips: int, batch: int, rounds: int, block: int, workers: int,
                 streamed: bool = False) -> dict:
    """Step time of the demo preset fed by the real loader (clips in memory, or streamed from FLAC shards) vs by
    one in-memory batch (same shapes), interleaved."""
    preset = get_preset("demo")
    torch.manual_seed(0)
    model = VoiceEncoder(preset.encoder).to(device).train()
    audio = demo_voices(clips)
    targets = torch.randn(clips, preset.encoder.out_dim)
    window = int(2.5 * SAMPLE_RATE)
    step = make_step(model, preset.encoder.out_dim, device)
    total = rounds * block + 2
    fixed = (torch.from_numpy(audio[:batch, :window].astype(np.float32) / 32768), torch.arange(batch))
    with tempfile.TemporaryDirectory() as folder:
        source = streamed_audio(audio, Path(folder)) if streamed else audio
        loader = make_loader(AudioWindows(source, window, seed=0),
                             StepBatches(clips, batch, -(-total * batch // clips) + 1, seed=0), workers,
                             pin_memory=device.type == "cuda")
        times = time_interleaved(step, {"loader": loader, "memory": (fixed for _ in range(10 ** 9))}, targets,
                                 device, rounds, block)
    return {"workers": workers, "streamed": streamed, "real_loader_s": times["loader"], "in_memory_s": times["memory"],
            "overhead": times["loader"] / times["memory"] - 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and no paper size (a smoke test)")
    parser.add_argument("--sizes", default="demo,paper", help="presets to time, comma-separated")
    parser.add_argument("--paper-batch", type=int, default=None,
                        help="batch at paper size (default: 8, the paper's, on CUDA; 2 on CPU, where one step of 8 "
                             "takes minutes)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    paper_batch = args.paper_batch or (8 if device.type == "cuda" else 2)
    mm = matmul_flops(device, 1024 if args.quick else 2048, repeat=3 if args.quick else 10)
    sizes = ["demo"] if args.quick else args.sizes.split(",")
    results = [bench_size(n, device, batch=paper_batch if n == "paper" else 8,
                          steps=(2 if n == "paper" else 10) // (2 if args.quick else 1) or 1, mm=mm) for n in sizes]
    loaders = [bench_loader(device, 64, 8, 2 if args.quick else 8, 3 if args.quick else 5, w, streamed)
               for streamed in (False, True)
               for w in (0, 1)]
    decoders = bench_decoders(16, int(2.5 * SAMPLE_RATE), repeat=3 if args.quick else 20)
    best = {streamed: min((r for r in loaders if r["streamed"] == streamed), key=lambda r: r["overhead"])
            for streamed in (False, True)}
    rows = [("torch.mm throughput (GFLOP/s)", f"{mm / 1e9:.1f}", "", "(this is the baseline)", True)]
    for r in results:
        rows.append((f"{r['size']}: training samples/s (batch {r['batch']}, {r['params'] / 1e6:.1f} M params)",
                     f"{r['samples_per_s']:.2f}", "", "", True))
        rows.append((f"{r['size']}: achieved GFLOP/s (3× forward)", f"{r['flops_per_s'] / 1e9:.1f}", "",
                     f"{r['fraction_of_mm']:.0%} of torch.mm", True))
    for r in loaders:
        source = "streamed from FLAC shards" if r["streamed"] else "clips in memory"
        rows.append((f"loader overhead, {source}, {r['workers']} workers (step s: loader / in memory)",
                     f"{r['overhead']:+.1%} ({r['real_loader_s']:.3f} / {r['in_memory_s']:.3f})",
                     "≤ 10 % (best of the worker counts)", "", r["overhead"] <= 0.10 or r is not best[r["streamed"]]))
    rows.append((f"FLAC decode of a {decoders['window_s']:g} s window (ms a row): s2f (dr_flac)",
                 f"{decoders['s2f_ms']:.3f} ({decoders['libsndfile_ms'] / decoders['s2f_ms']:.1f}× faster)", "",
                 f"{decoders['libsndfile_ms']:.3f} (libsndfile)", True))
    print(f"device: {device}, threads: {torch.get_num_threads()}")
    print_table(rows)
    save_results("training_throughput", {"device": str(device), "mm_flops_per_s": mm, "sizes": results,
                                         "loader": loaders, "flac_decode": decoders})
    exit_on_missed_targets(rows)


if __name__ == "__main__":
    main()
