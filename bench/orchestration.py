"""Benchmark orchestration and serving: the demo pipeline through Prefect against plain `dvc repro`, and the served
champion's latency against the model's own forward pass.

Usage: `make bench-orchestration` (or `.venv/bin/python bench/orchestration.py [--requests N] [--keep DIR]`).

1. Clones the committed HEAD twice into a scratch directory.
2. Baseline: `dvc repro` from scratch in the first clone.
3. The same pipeline as `make orchestrate` runs it, in the second clone: a Prefect server on 127.0.0.1, the `cpu` and
   `gpu` process pools, a worker each, `prefect deployment run pipeline/demo --watch`. Every stage runs on a worker in
   its own checkout with `dvc repro --pull` and `dvc push --run-cache` to a local DVC remote. Start-up of the server,
   pools and workers is timed separately (it happens once per machine, not per run). Target: at most 1.3× the baseline.
4. Serving: the first clone's `speech2face` version is made champion and served with `mlflow models serve` on
   127.0.0.1. A real 6 s clip from ../shared/data/realsample is posted N times, one request at a time. Baseline: the
   same model's forward pass in this process (`Speech2Face.face` on the decoded waveform: STFT, encoder, decoder).
   Target: the served p50 is at most 25 % above the forward p50. The in-process pyfunc `predict` (base64, audio
   decoding, PNG) is shown too, to split the overhead between the codecs and HTTP.

Prints a table and writes bench/results/orchestration.json.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from report import exit_on_missed_targets, print_table, save_results  # noqa: E402

from s2f.io.http import wait_until_answers  # noqa: E402
from s2f.orchestration.dvc_stage import tool_env  # noqa: E402
from s2f.orchestration.local import ControlPlane, defaults  # noqa: E402

CLIP = "clips/video_retalking__examples_face_1.mp4"


def env_for(clone: Path) -> dict[str, str]:
    return tool_env() | {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1",
                         "MLFLOW_TRACKING_URI": f"sqlite:///{clone / 'mlruns.db'}"}


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed in {cwd}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def orchestrated(clone: Path, state: Path) -> tuple[float, float]:
    """(start-up seconds, pipeline/demo seconds) through a local Prefect server and process workers."""
    settings = defaults(clone, state, free_port()) | {
        "PREFECT_HOME": str(state / "prefect"), "S2F_CODE_DIR": str(clone), "S2F_GIT_URL": str(clone),
        "S2F_WORKER_HOME": str(state / "workers"), "S2F_DVC_REMOTE": str(state / "dvc-remote"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{state / 'mlruns.db'}"}
    plane = ControlPlane(clone, state, settings)
    try:
        start = time.perf_counter()
        plane.up(gpus=1)
        startup = time.perf_counter() - start
        start = time.perf_counter()
        result = plane.run("pipeline/demo", timeout=3600)
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            sys.exit(f"pipeline/demo failed:\n{result.stdout[-3000:]}\nlogs: {state / 'logs'}")
        return startup, elapsed
    finally:
        plane.stop()


def clip_wav(out: Path) -> bytes:
    """The first 6 s of a real clip's audio track, 44.1 kHz stereo as extracted (the server resamples it)."""
    from s2f.io.media import ffmpeg_exe

    source = Path(os.environ.get("S2F_REALSAMPLE", ROOT.parent / "shared" / "data" / "realsample")) / CLIP
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(source), "-vn", "-t", "6", "-acodec", "pcm_s16le",
                    str(out)], check=True)
    return out.read_bytes()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def serving(clone: Path, scratch: Path, requests: int) -> dict[str, list[float]]:
    """Latencies (s) of the served champion, the in-process pyfunc and the bare forward pass, on one 6 s clip."""
    import mlflow
    import pandas as pd

    from s2f.inference import Speech2Face, decode_audio

    env = env_for(clone)
    uri = env["MLFLOW_TRACKING_URI"]
    subprocess.run([sys.executable, "-m", "s2f.cli", "promote"], cwd=clone, env=env, check=True)
    audio = clip_wav(scratch / "clip.wav")
    body = json.dumps({"dataframe_split": {"columns": ["audio"],
                                           "data": [[base64.b64encode(audio).decode()]]}}).encode()
    port = free_port()
    log = scratch / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m",
                                   "models:/speech2face@champion", "--env-manager", "local", "-h", "127.0.0.1",
                                   "-p", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        if not wait_until_answers(f"http://127.0.0.1:{port}/ping", 120, gave_up=lambda: server.poll() is not None):
            sys.exit(f"mlflow models serve did not answer in 120 s:\n{log.read_text()[-2000:]}")
        served = []
        for i in range(requests + 5):
            request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                             headers={"Content-Type": "application/json"})
            start = time.perf_counter()
            with urllib.request.urlopen(request, timeout=60) as response:
                response.read()
            if i >= 5:  # warm-up
                served.append(time.perf_counter() - start)
    finally:
        os.killpg(server.pid, 15)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()

    mlflow.set_tracking_uri(uri)
    pyfunc = mlflow.pyfunc.load_model("models:/speech2face@champion")
    frame = pd.DataFrame({"audio": [base64.b64encode(audio).decode()]})
    model = Speech2Face.from_files(clone / "models/voice_encoder.pt", clone / "models/face_decoder.pt")
    wave = decode_audio(audio)
    predict, forward = [], []
    for i in range(requests + 5):
        start = time.perf_counter()
        pyfunc.predict(frame)
        middle = time.perf_counter()
        model.face(wave)
        if i >= 5:
            predict.append(middle - start)
            forward.append(time.perf_counter() - middle)
    return {"served": served, "pyfunc_predict": predict, "forward": forward}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50, help="timed requests (after 5 warm-up ones)")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it (default: a temporary one)")
    args = parser.parse_args()
    if args.keep and args.keep.exists() and any(args.keep.iterdir()):
        sys.exit(f"--keep {args.keep}: not empty; give a new or empty directory")
    work = args.keep or Path(tempfile.mkdtemp(prefix="s2f-bench-orch-"))
    plain, via_prefect = work / "plain", work / "prefect"
    for clone in (plain, via_prefect):
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)

    baseline = timed([sys.executable, "-m", "dvc", "repro"], plain, env_for(plain))
    startup, through_prefect = orchestrated(via_prefect, work / "state")
    ratio = through_prefect / baseline
    lat = serving(plain, work, args.requests)
    p50 = {k: statistics.median(v) for k, v in lat.items()}
    p95 = {k: percentile(v, 0.95) for k, v in lat.items()}
    overhead = p50["served"] / p50["forward"] - 1

    rows = [
        ("demo pipeline, plain dvc repro (s)", f"{baseline:.0f}", "", "(baseline)", True),
        ("demo pipeline via pipeline/demo + workers (s)", f"{through_prefect:.0f}", "≤ 1.3× baseline",
         f"{ratio:.2f}× dvc repro", ratio <= 1.3),
        ("control plane start-up: server, pools, deploy, workers (s)", f"{startup:.0f}", "", "once per machine",
         True),
        ("served p50 / p95, 6 s clip (ms)", f"{1e3 * p50['served']:.1f} / {1e3 * p95['served']:.1f}",
         "p50 ≤ 1.25× forward", f"forward p50 {1e3 * p50['forward']:.1f} ms: +{100 * overhead:.0f} %",
         overhead <= 0.25),
        ("in-process pyfunc predict p50 / p95 (ms)",
         f"{1e3 * p50['pyfunc_predict']:.1f} / {1e3 * p95['pyfunc_predict']:.1f}", "", "base64 + decode + PNG",
         True),
        ("model forward p50 / p95 (ms)", f"{1e3 * p50['forward']:.1f} / {1e3 * p95['forward']:.1f}", "",
         "(baseline)", True),
    ]
    print_table(rows)
    save_results("orchestration", {"repro_seconds": baseline, "prefect_seconds": through_prefect, "ratio": ratio,
                                   "startup_seconds": startup, "latency_seconds": lat, "p50": p50, "p95": p95,
                                   "cores": os.cpu_count()})
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    exit_on_missed_targets(rows)


if __name__ == "__main__":
    main()
