"""The pipeline through Prefect on one machine: a server on 127.0.0.1, process pools, a worker per pool.

`python -m s2f.orchestration.local up` (`make orchestrate`) starts a Prefect server (unless one answers at
`PREFECT_API_URL`), creates the process work pools `cpu` and `gpu` and the `gpu` global concurrency limit (one
training run per GPU; 1 on a machine without one), deploys prefect.yaml, starts a worker per pool, runs the
`pipeline/demo` deployment and waits for it, then restores the results into this checkout from the DVC run-cache
(`dvc repro --pull`: nothing is recomputed). The server and workers keep running for the UI; `down` stops them.

The same `ControlPlane` serves the tests and the benchmark, so what they measure is what the README runs. Every
setting comes from the environment with a local default (`defaults`): point `PREFECT_API_URL`, `MLFLOW_TRACKING_URI`
and `S2F_DVC_REMOTE` elsewhere (infra/s2f.env) to use a shared control plane instead.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from s2f.io.http import answers, wait_until_answers
from s2f.orchestration.checkout import configure_remote, s3_endpoint
from s2f.orchestration.pools import CPU_POOL, GPU_LIMIT, GPU_POOL

DEFAULT_PORT = 4200
WORKER_POLL_SECONDS = "2"  # how often a worker asks for scheduled runs (Prefect's default, 10 s, idles the demo)
QUIET = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "DVC_NO_ANALYTICS": "1",
         "MLFLOW_DISABLE_TELEMETRY": "true", "GX_ANALYTICS_ENABLED": "false"}


def defaults(root: Path, state: Path, port: int = DEFAULT_PORT) -> dict[str, str]:
    """Local settings for everything the server, workers and stages read; the environment overrides each one."""
    local = {
        "PREFECT_HOME": str(state / "prefect"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_WORKER_QUERY_SECONDS": WORKER_POLL_SECONDS,
        "S2F_CODE_DIR": str(root),
        "S2F_GIT_URL": str(root),
        "S2F_WORKER_HOME": str(state / "workers"),
        "S2F_DVC_REMOTE": str(state / "dvc-remote"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlruns.db'}",
    }
    return {key: os.environ.get(key, value) for key, value in local.items()} | QUIET


def gpu_count() -> int:
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(line.startswith("GPU") for line in out.splitlines())


@dataclass
class ControlPlane:
    """A Prefect server, pools, deployments and workers for the project at `root`; state and logs under `state`."""

    root: Path
    state: Path
    settings: dict[str, str]
    cpu_workers: int = 1             # each with its own checkouts (S2F_WORKER_HOME/<name>), as on its own machine
    cpu_limit: int | None = None     # flow runs at once per cpu worker (None: no limit)

    @property
    def api_url(self) -> str:
        return self.settings["PREFECT_API_URL"]

    def env(self) -> dict[str, str]:
        bin_dir = str(Path(sys.executable).parent)
        return {**os.environ, **self.settings, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}

    def prefect(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "prefect", *args], cwd=self.root, env=self.env(),
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"prefect {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc

    def healthy(self) -> bool:
        return answers(self.api_url.rstrip("/") + "/health")

    def _pidfile(self, name: str) -> Path:
        return self.state / "run" / f"{name}.pid"

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        """A background `prefect ARGS` in its own session (so `stop` can signal its children), logged to a file."""
        pidfile = self._pidfile(name)
        if _ours(pidfile):
            return
        for folder in (pidfile.parent, self.state / "logs", Path(self.settings["PREFECT_HOME"])):
            folder.mkdir(parents=True, exist_ok=True)
        with open(self.state / "logs" / f"{name}.log", "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "prefect", *args], cwd=self.root,
                                    env=self.env() | (env or {}),
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        pidfile.write_text(str(proc.pid))

    def start_server(self, timeout: float = 120) -> None:
        if self.healthy():
            return
        port = self.api_url.rsplit(":", 1)[1].split("/")[0]
        self.start("server", "server", "start", "--host", "127.0.0.1", "--port", port, "--analytics-off")
        if not wait_until_answers(self.api_url.rstrip("/") + "/health", timeout):
            raise RuntimeError(f"the Prefect server did not answer at {self.api_url} in {timeout:.0f} s; "
                               f"see {self.state / 'logs' / 'server.log'}")

    def create_pools(self, gpus: int | None = None) -> None:
        """Process pools `cpu` and `gpu`, and the `gpu` limit sized to this machine's GPUs (at least 1)."""
        for pool in (CPU_POOL, GPU_POOL):
            if self.prefect("work-pool", "inspect", pool, check=False).returncode != 0:
                self.prefect("work-pool", "create", pool, "--type", "process")
        if self.prefect("gcl", "inspect", GPU_LIMIT, check=False).returncode != 0:
            self.prefect("gcl", "create", GPU_LIMIT, "--limit", str(max(gpu_count() if gpus is None else gpus, 1)))

    def deploy(self) -> None:
        self.prefect("--no-prompt", "deploy", "--all")

    def worker_names(self) -> list[str]:
        cpu = ["worker-cpu"] if self.cpu_workers == 1 else [f"worker-cpu-{i}" for i in range(self.cpu_workers)]
        return [*cpu, "worker-gpu"]

    def start_workers(self) -> None:
        """One `gpu` worker and `cpu_workers` `cpu` workers; with several, each gets its own S2F_WORKER_HOME, so its
        checkouts and DVC cache are its own, as on separate machines, and results pass only through the remote."""
        for name in self.worker_names():
            pool = GPU_POOL if name == "worker-gpu" else CPU_POOL
            limit = ["--limit", str(self.cpu_limit)] if pool == CPU_POOL and self.cpu_limit else []
            home = {} if self.cpu_workers == 1 else {
                "S2F_WORKER_HOME": str(Path(self.settings["S2F_WORKER_HOME"]) / name.removeprefix("worker-"))}
            self.start(name, "worker", "start", "--pool", pool, "--type", "process", *limit,
                       "--name", f"{name.removeprefix('worker-')}-{os.uname().nodename}", env=home)

    def run(self, deployment: str, *params: str, timeout: float = 3600) -> subprocess.CompletedProcess:
        """`prefect deployment run NAME --watch`: returns when the run ends (non-zero exit unless it completed)."""
        args = [arg for param in params for arg in ("--param", param)]
        return self.prefect("deployment", "run", deployment, *args, "--watch", "--watch-interval", "2",
                            check=False, timeout=timeout)

    def up(self, gpus: int | None = None) -> None:
        self.start_server()
        self.create_pools(gpus)
        self.deploy()
        self.start_workers()

    def stop(self, names: list[str] | None = None) -> None:
        """Stop background processes (workers first); a worker ignores the first SIGTERM, so signal twice."""
        for name in names or [*self.worker_names(), "server"]:
            pidfile = self._pidfile(name)
            if _ours(pidfile):  # a pid left from before a reboot may now be someone else's: never signal that
                _stop_group(int(pidfile.read_text()))
            pidfile.unlink(missing_ok=True)


def _ours(pidfile: Path) -> bool:
    """Whether the pidfile names a live `prefect` process (checked by its command line, not just its pid)."""
    try:
        pid = int(pidfile.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False
    return b"prefect" in cmdline and _alive(pid)


def _alive(pid: int) -> bool:
    """Whether `pid` still runs; a child of ours that exited is reaped here (a zombie would look alive)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # not our child: ask the kernel
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _stop_group(pid: int, polls: int = 50) -> None:
    """SIGTERM the process group twice (a Prefect worker ignores the first), wait up to ~10 s, then SIGKILL."""
    for _ in range(2):
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    for _ in range(polls):
        if not _alive(pid):
            break
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)  # whatever is left of the group (flow-run subprocesses)
    except ProcessLookupError:
        pass
    _alive(pid)


def watch(plane: ControlPlane, deployment: str, wait: float, every: float = 60.0) -> int | None:
    """Start `deployment` and show a person its progress while it runs: the watcher's state lines as they come and,
    every `every` seconds, which stage runs have finished (`stage_progress`). Returns the watcher's exit status
    (0: completed), or None when the run is still going after `wait` seconds: then only the watching stops; the
    flow run goes on on the workers."""
    import threading

    cmd = [sys.executable, "-m", "prefect", "deployment", "run", deployment, "--watch", "--watch-interval", "5"]
    since, started = time.time(), time.monotonic()
    proc = subprocess.Popen(cmd, cwd=plane.root, env=plane.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace")
    echo = threading.Thread(target=lambda: [print(f"  {line.rstrip()}", flush=True) for line in proc.stdout if
                                            line.strip()], daemon=True)
    echo.start()
    while True:
        try:
            return proc.wait(timeout=every)
        except subprocess.TimeoutExpired:
            elapsed = time.monotonic() - started
            print(f"orchestrate: {elapsed / 60:.0f} min in; {stage_progress(plane.api_url, since)}", flush=True)
            if elapsed >= wait:
                proc.terminate()
                proc.wait()
                return None


def stage_progress(api_url: str, since: float) -> str:
    """The stage runs started since `since` (epoch seconds), by state, from the Prefect API (one short line)."""
    import json
    import urllib.request
    from datetime import UTC, datetime

    body = {"flow_runs": {"start_time": {"after_": datetime.fromtimestamp(since, UTC).isoformat()}},
            "sort": "START_TIME_ASC", "limit": 200}
    request = urllib.request.Request(f"{api_url.rstrip('/')}/flow_runs/filter", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            runs = json.loads(response.read())
    except (OSError, ValueError) as err:
        return f"stage runs unknown (the Prefect API did not answer: {err})"
    by_state: dict[str, list[str]] = {}
    for run in runs:
        if "stage" in (run.get("parameters") or {}):   # a `stage` flow run (flows/stage.py), not the pipeline's
            by_state.setdefault((run.get("state_type") or "?").lower(), []).append(run["parameters"]["stage"])
    done = by_state.pop("completed", [])
    running = by_state.pop("running", [])
    text = f"{len(done)} stages done" + (f" (last: {done[-1]})" if done else "")
    text += f", running: {', '.join(running)}" if running else ""
    return text + "".join(f", {state}: {', '.join(names)}" for state, names in sorted(by_state.items()))


def restore_here(plane: ControlPlane) -> None:
    """Bring the pipeline's results into this checkout from the remote's run-cache: no stage recomputes."""
    env = plane.env()
    configure_remote(plane.root, plane.settings["S2F_DVC_REMOTE"], s3_endpoint(env))
    subprocess.run(["dvc", "repro", "--pull"], cwd=plane.root, env=env, check=True)
    subprocess.run(["dvc", "metrics", "show"], cwd=plane.root, env=env, check=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m s2f.orchestration.local", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "down"], nargs="?", default="up")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="the local Prefect server's port")
    parser.add_argument("--deployment", default="pipeline/demo")
    parser.add_argument("--wait", type=float, default=3600,
                        help="seconds to watch the run; a longer run goes on, and this says how to pick it up")
    args = parser.parse_args(argv)
    root = Path.cwd()
    plane = ControlPlane(root, root / ".s2f", defaults(root, root / ".s2f", args.port))
    if args.action == "down":
        plane.stop()
        print("orchestrate: workers and server stopped")
        return
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True,
                           text=True).stdout.strip()
    if dirty:
        raise SystemExit("orchestrate: uncommitted changes here: the workers build the last commit, and restoring "
                         "their results into a changed tree would recompute stages. Commit (or stash) first.")
    plane.up()
    print(f"orchestrate: Prefect UI {plane.api_url.removesuffix('/api')}; running {args.deployment}", flush=True)
    start, ui = time.perf_counter(), plane.api_url.removesuffix('/api')
    status = watch(plane, args.deployment, args.wait)
    if status is None:
        raise SystemExit(f"orchestrate: {args.deployment} is still running after {args.wait / 60:.0f} min; it goes on "
                         f"on the workers. Watch it at {ui}/runs; once it has completed, `dvc repro --pull` here "
                         "restores its results (or run this again with a longer --wait)")
    if status != 0:
        raise SystemExit(f"orchestrate: {args.deployment} did not complete; see {ui}/runs and .s2f/logs/")
    print(f"orchestrate: {args.deployment} completed in {time.perf_counter() - start:.0f} s; restoring results here")
    restore_here(plane)
    print(f"orchestrate: done. Prefect UI {plane.api_url.removesuffix('/api')}, MLflow: make mlflow-ui, "
          "stop with: make orchestrate-down")


if __name__ == "__main__":
    main()
