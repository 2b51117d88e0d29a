"""Project the measured per-clip costs to AVSpeech and VoxCeleb2 on N CPU workers and M GPUs.

Usage: `make bench-projection` (or `.venv/bin/python bench/projection.py [--workers N] [--cores C] [--gpus M]
[--gpu-tflops T]`).

What is measured in this run, on every clip of ../shared/data/realsample (real talking-face videos, 224² to 1080p):
- preprocessing CPU per clip (this process and its ffmpeg children, one decoder thread each, as with one worker
  per core), fitted as a + b · megapixels of the frame, so it can be read at AVSpeech's download height (720p,
  `data.avspeech.max_height`) and at VoxCeleb2's 224²;
- face features CPU per crop with the default backend (dlib's 128-D descriptor and 68 landmarks);
- bytes stored per sample (FLAC audio + JPEG crop, as the shards hold them) and the raw video's bytes per second;
- the peak RSS of a worker process (this one, which ran both) and of ffmpeg decoding the largest clip (1080p).

What is computed, not measured: the paper-size encoder's and VGG-Face's FLOPs (from their layer tables on the meta
device) and GPU hours at `--gpu-tflops` sustained per GPU, a number to replace with what `make bench-training`
measures on your GPU (its "achieved GFLOP/s" row). Download hours follow from the rate limit in params.yaml (one
request per segment, one limit per worker): YouTube, not our code, sets that pace.

Prints a table per corpus and writes bench/results/projection.json.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from preprocess_throughput import cpu_seconds  # noqa: E402  (this process and its reaped ffmpeg children)
from report import save_results  # noqa: E402
from s2f.config import PreprocessParams  # noqa: E402
from s2f.features import _features_of  # noqa: E402
from s2f.faces.dlib_models import hog_detector  # noqa: E402
from s2f.faces.vggface import INPUT_SIZE, build_vggface_net  # noqa: E402
from s2f.io import media  # noqa: E402
from s2f.models.presets import get_preset  # noqa: E402
from s2f.models.summary import encoder_flops, layer_table  # noqa: E402
from s2f.preprocess import Sample, process_clip  # noqa: E402
from s2f.sources.local import from_manifest  # noqa: E402

REALSAMPLE = ROOT.parent / "shared/data/realsample"
SECONDS = 6.0                   # what a sample holds, whatever the clip's length
CORPORA = {                     # training clips and the frame size they are decoded at
    "AVSpeech (train)": {"clips": 1_700_000, "width": 1280, "height": 720, "download": True},
    "VoxCeleb2 (dev)": {"clips": 1_092_009, "width": 224, "height": 224, "download": False},
}


def measure_clips(params: PreprocessParams) -> list[dict]:
    """Preprocess then featurise every realsample clip in this process, each timed in CPU seconds."""
    rows = []
    for clip in from_manifest(REALSAMPLE / "manifest.csv")["clip"]:
        path = REALSAMPLE / clip
        info = media.probe(path)
        before = cpu_seconds()
        sample = process_clip(path, params, decode_threads=1)
        pre = cpu_seconds() - before
        row = {"clip": clip, "megapixels": info.width * info.height / 1e6, "preprocess_cpu_s": pre,
               "video_bytes_per_s": path.stat().st_size / max(info.duration, 1e-3),
               "accepted": isinstance(sample, Sample)}
        if isinstance(sample, Sample):
            before = cpu_seconds()
            _features_of((clip, sample.face, sample.face_box), "dlib", {})
            row |= {"features_cpu_s": cpu_seconds() - before,
                    "sample_bytes": len(sample.audio_flac) + len(sample.face_jpeg)}
        rows.append(row)
    return rows


def ffmpeg_peak_mb(path: Path) -> float:
    """Peak RSS of one ffmpeg decoding `path`'s first 6 s of video on one thread, read from /proc while it runs.

    Why not rusage: a child spawned by this (large) Python process inherits its high-water mark through the
    vfork, so RUSAGE_CHILDREN would report this process's size, not ffmpeg's."""
    cmd = [media.ffmpeg_exe(), "-v", "error", "-nostdin", "-threads", "1", "-i", str(path), "-map", "0:v:0",
           "-t", f"{SECONDS}", "-f", "null", "-"]
    proc, peak_kb = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), 0
    while proc.poll() is None:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kb = max(peak_kb, int(line.split()[1]))
        time.sleep(0.002)
    return peak_kb / 1024


def fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares a, b of y ≈ a + b · x."""
    b, a = np.polyfit(x, y, 1)
    return float(a), float(b)


def gflops(rows) -> float:
    return sum(r.flops for r in rows) / 1e9


def model_flops() -> dict[str, float]:
    """Forward GFLOPs per sample: the paper-size encoder on 6 s, VGG-Face on one 224² crop (meta device: free)."""
    paper = get_preset("paper")
    with torch.device("meta"):
        vgg = build_vggface_net().eval()
    vgg_rows = layer_table(vgg, torch.empty(1, 3, INPUT_SIZE, INPUT_SIZE, device="meta"))
    return {"encoder_forward_gflops": encoder_flops(paper.encoder, SECONDS) / 1e9,
            "vggface_forward_gflops": gflops(vgg_rows)}


def project(corpus: dict, fits: dict, means: dict, flops: dict, args) -> dict:
    clips, mp = corpus["clips"], corpus["width"] * corpus["height"] / 1e6
    pre_core_s = fits["preprocess"][0] + fits["preprocess"][1] * mp
    cores = args.workers * args.cores
    gpu_flops = args.gpus * args.gpu_tflops * 1e12
    return {
        "clips": clips, "frame": f"{corpus['width']}×{corpus['height']}",
        "preprocess_core_s_per_clip": pre_core_s,
        "preprocess_hours": clips * pre_core_s / cores / 3600,
        "features_dlib_hours": clips * means["features_cpu_s"] / cores / 3600,
        "features_vggface_gpu_hours": clips * flops["vggface_forward_gflops"] * 1e9 / gpu_flops / 3600,
        "encoder_epoch_gpu_hours": clips * 3 * flops["encoder_forward_gflops"] * 1e9 / gpu_flops / 3600,
        "shards_gb": clips * means["sample_bytes"] / 1e9,
        "raw_video_gb": clips * SECONDS * (fits["video_bytes_per_s"][0] + fits["video_bytes_per_s"][1] * mp) / 1e9,
        "download_hours": clips / (args.requests_per_minute * 60 * args.workers) if corpus["download"] else None,
    }


def table(name: str, p: dict, args, memory: dict) -> list[str]:
    def hours(h: float | None) -> str:
        if h is None:
            return "—"
        return f"{h * 60:.0f} min" if h < 1 else f"{h:,.1f} h" if h < 48 else f"{h:,.0f} h ({h / 24:,.1f} days)"

    on_cpu, on_gpu = f"{args.workers} workers × {args.cores} cores", f"{args.gpus} GPUs × {args.gpu_tflops:g} TFLOP/s"
    lines = [f"{name}: {p['clips']:,} clips decoded at {p['frame']}",
             "| step | on | projected |", "|---|---|---|",
             f"| download (rate limit {args.requests_per_minute:g}/min per worker) | {args.workers} workers | "
             f"{hours(p['download_hours'])} |",
             f"| preprocess ({p['preprocess_core_s_per_clip']:.2f} core-s a clip; "
             f"{p['preprocess_hours'] * args.workers * args.cores:,.0f} core-h) | {on_cpu} | "
             f"{hours(p['preprocess_hours'])} |",
             f"| features, dlib (CPU) | {on_cpu} | {hours(p['features_dlib_hours'])} |",
             f"| features, VGG-Face | {on_gpu} | {hours(p['features_vggface_gpu_hours'])} |",
             f"| one encoder epoch, paper size | {on_gpu} | {hours(p['encoder_epoch_gpu_hours'])} |",
             f"| disk: shards (FLAC + JPEG) | remote | {p['shards_gb']:,.0f} GB |",
             f"| disk: raw video, 6 s a clip | remote | {p['raw_video_gb']:,.0f} GB |",
             f"| memory per CPU process (+ its ffmpeg at 1080p) | × {args.cores} per worker | "
             f"{memory['worker_mb']:,.0f} MB (+ {memory['ffmpeg_mb']:,.0f} MB) |"]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=32, help="CPU workers (machines) of the cpu pool")
    parser.add_argument("--cores", type=int, default=8, help="cores per CPU worker (one preprocess process each)")
    parser.add_argument("--gpus", type=int, default=8, help="GPUs training (DDP ranks)")
    parser.add_argument("--gpu-tflops", type=float, default=100.0,
                        help="sustained TFLOP/s per GPU in training (default 100: replace with what `make "
                             "bench-training` measures on yours)")
    args = parser.parse_args()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    args.requests_per_minute = float(params["data"]["avspeech"]["requests_per_minute"])
    hog_detector()  # loaded once per worker: not a per-clip cost
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        rows = measure_clips(PreprocessParams())
    kept = [r for r in rows if r["accepted"]]
    mp = np.array([r["megapixels"] for r in rows])
    fits = {"preprocess": fit_line(mp, np.array([r["preprocess_cpu_s"] for r in rows])),
            "video_bytes_per_s": fit_line(mp, np.array([r["video_bytes_per_s"] for r in rows]))}
    means = {"features_cpu_s": float(np.mean([r["features_cpu_s"] for r in kept])),
             "sample_bytes": float(np.mean([r["sample_bytes"] for r in kept]))}
    largest = max(rows, key=lambda r: r["megapixels"])
    memory = {"worker_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "ffmpeg_mb": ffmpeg_peak_mb(REALSAMPLE / largest["clip"]), "ffmpeg_clip": largest["clip"]}
    flops = model_flops()
    print(f"measured on {len(rows)} realsample clips ({len(kept)} accepted) in {time.perf_counter() - start:.0f} s: "
          f"preprocess ≈ {fits['preprocess'][0]:.3f} + {fits['preprocess'][1]:.3f} × megapixels core-s a clip; "
          f"features {means['features_cpu_s']:.3f} core-s a crop; {means['sample_bytes'] / 1e3:.0f} kB a sample")
    print(f"computed: paper encoder {flops['encoder_forward_gflops']:.1f} GFLOPs forward per 6 s clip (×3 a training "
          f"step), VGG-Face {flops['vggface_forward_gflops']:.1f} GFLOPs per crop\n")
    projections = {}
    for name, corpus in CORPORA.items():
        projections[name] = project(corpus, fits, means, flops, args)
        print("\n".join(table(name, projections[name], args, memory)) + "\n")
    save_results("projection", {"args": vars(args), "clips": rows, "fits": fits, "means": means, "memory": memory,
                                "flops": flops, "projections": projections})


if __name__ == "__main__":
    main()
