"""MLflow tracking for the stages: an embedded SQLite store in the project by default, a server when configured.

`MLFLOW_TRACKING_URI` (e.g. http://127.0.0.1:5000) overrides the default `sqlite:///<cwd>/mlruns.db`. Where a new
experiment keeps its artifacts:
- `S2F_ARTIFACT_URI` when set (e.g. `s3://bucket/mlflow`: clients write to S3 themselves, with
  `MLFLOW_S3_ENDPOINT_URL` for an S3-compatible server);
- else, for a SQLite store, `mlartifacts/` beside the database file: every worker checkout that shares one database
  also shares its artifacts (a relative default would scatter them over checkouts);
- else the server decides (an `mlflow server --artifacts-destination s3://…` proxies them).

Tracking is a record of the work, never a reason to lose it:
- At start, a tracker that does not answer ends the stage within seconds, with one line naming the URI. Nothing
  has been computed yet, so failing costs nothing, while a run that trained untracked would leave the registry
  and the comparison of runs without it (set MLFLOW_TRACKING_URI right, or unset it for the local store, and rerun).
- Mid-run, every logging call goes through `TrackedRun`: the MLflow client's brief retries (bounded here unless
  MLFLOW_HTTP_REQUEST_MAX_RETRIES / _BACKOFF_FACTOR / _TIMEOUT are set), then the calls are kept in memory, sent when
  the tracker answers again, or dropped at the end. One warning line when the tracker goes away, one at the end;
  the stage goes on and writes its DVC outputs either way.
- A run ends FINISHED, FAILED when the stage raised, KILLED on Ctrl-C or SIGTERM (which then still ends the
  process, as it would have). When the tracker is gone at the end, the warning says how to end the run by hand.
`stage_run` is entered by the stages only; for its duration it bounds MLflow's HTTP client (in the environment, where
MLflow reads it) and turns SIGTERM and Ctrl-C into exceptions (held while a local store writes), and puts both back
afterwards: library code never touches MLflow, the environment or signals.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

EXPERIMENT = "speech2face"
# how the MLflow UI shows the experiment: "Model training" (runs, models, their metrics), not the GenAI views
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
# MLflow's client retries a failed request 7 times with backoff 2 (about 4 minutes) and waits 120 s for an answer:
# made for rate-limited hosted trackers, it turns a dead local server into minutes of stalled training per call
HTTP_CLIENT_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                        "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}
# how `close` tries a tracker that is still away at the end: once, briefly (the call is expected to fail)
GONE_CLIENT = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
PROBE_SECONDS = 5.0        # how long the start-up check waits for a tracking server to answer
REPROBE_SECONDS = 10.0     # while the tracker is away, how often a logging call checks whether it is back
MAX_BUFFERED = 200_000     # metric values kept while the tracker is away; later ones are dropped (and counted)
METRICS_PER_REQUEST = 1000  # MLflow's log-batch limit: one request each, so a failed send is all or nothing
# the LoggedModel type of a training run's model (its weights and config), told apart in the MLflow UI from what
# `register` logs for serving (s2f.serving.log.SERVED_TYPE)
TRAINED_TYPE = "weights"
LOG_KEY_TAG = "s2f.log_key"  # on a training run's LoggedModel: which logging call made it


def now_ms() -> int:
    """A metric's timestamp: milliseconds since the epoch, as MLflow keeps them."""
    return int(time.time() * 1000)


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlruns.db').resolve()}"


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except OSError:
        return "unknown"


# what decides a result: a change here that is not committed makes the run's commit a lie (dvc.lock and reports/,
# which the pipeline itself rewrites during a pass, are left out so that every stage of a pass agrees)
RESULT_SOURCES = ("s2f", "flows", "params.yaml", "dvc.yaml", "pyproject.toml", "requirements.lock")


def git_dirty() -> str:
    """"true" when the code or params that decide a result differ from the commit, "false", or "unknown"."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *RESULT_SOURCES],
                             capture_output=True, text=True, timeout=10)
    except OSError:
        return "unknown"
    return "unknown" if out.returncode != 0 else str(bool(out.stdout.strip())).lower()


def pipeline_pass(commit: str | None = None, dirty: str | None = None) -> str:
    """The name every stage run of one pipeline pass shares (tag `pipeline_pass`, and in each run's name), so that
    three passes give three groups of runs, not ten runs of repeated names: `S2F_PIPELINE_PASS` when set, the DVC
    experiment under `dvc exp run` (DVC_EXP_NAME), else the commit, `+dirty` when uncommitted, and a digest of
    params.yaml: one state of the project, which is what one `dvc repro` runs. `commit` and `dirty` spare asking git
    again when the caller has them."""
    named = os.environ.get("S2F_PIPELINE_PASS") or os.environ.get("DVC_EXP_NAME")
    if named:
        return named
    import hashlib

    params = Path("params.yaml")
    digest = hashlib.sha256(params.read_bytes()).hexdigest()[:6] if params.is_file() else "none"
    commit, dirty = commit or git_commit(), dirty or git_dirty()
    return f"{commit[:8]}{'+dirty' if dirty == 'true' else ''}-p{digest}"


def dvc_digest(out_path: str, lock: Path = Path("dvc.lock")) -> str | None:
    """The DVC hash (md5) that dvc.lock records for the output `out_path`, or None outside a DVC pipeline."""
    import yaml

    try:
        stages = yaml.safe_load(lock.read_text()).get("stages", {})
    except (OSError, AttributeError, yaml.YAMLError):
        return None
    return next((out.get("md5") for stage in stages.values() for out in stage.get("outs", [])
                 if out.get("path") == out_path), None)


def artifact_location() -> str | None:
    """Where a new experiment's artifacts go (see the module docstring); None lets the tracking server decide."""
    if os.environ.get("S2F_ARTIFACT_URI"):
        return os.environ["S2F_ARTIFACT_URI"]
    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").resolve().as_uri()
    return None


def use_experiment(name: str | None = None) -> str:
    """Point MLflow at the tracking store and the experiment (created on first use); returns the experiment name."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    experiment = name or os.environ.get("S2F_EXPERIMENT", EXPERIMENT)
    if mlflow.get_experiment_by_name(experiment) is None:
        try:
            mlflow.create_experiment(experiment, artifact_location=artifact_location(), tags=EXPERIMENT_KIND)
        except mlflow.exceptions.MlflowException:  # created meanwhile by a stage on another worker
            if mlflow.get_experiment_by_name(experiment) is None:
                raise
    found = mlflow.set_experiment(experiment)
    for key, value in EXPERIMENT_KIND.items():  # an experiment made before the tag existed gets it too
        if found.tags.get(key) != value:
            mlflow.set_experiment_tag(key, value)
    return experiment


def unreachable(uri: str, timeout: float) -> str | None:
    """Why the tracking server at `uri` cannot be reached, or None when it answers (or `uri` is not a server).

    A quick GET of its /health with our own timeout, not through MLflow's client, whose retries are what made a
    dead server cost minutes. Any answer below 500 counts (a 401 or 404 is a server that is up)."""
    if not _is_server(uri):
        return None
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout):
            return None
    except urllib.error.HTTPError as err:
        return None if err.code < 500 else f"HTTP {err.code} {err.reason}"
    except (OSError, ValueError) as err:
        return _reason(err)


def _reason(err: BaseException) -> str:
    """One short line for an error: the OS-level cause when the message buries one (MLflow's are pages long)."""
    text = str(getattr(err, "reason", None) or err) or type(err).__name__
    cause = re.search(r"\[Errno -?\d+\][^'\")\]]*|Read timed out|timed out|Name or service not known", text)
    if cause:
        return cause.group(0).strip()
    line = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    return line if len(line) <= 200 else line[:197] + "..."


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """`values` in os.environ for the block (MLflow's client reads its settings there, per request), then restored."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def bounded_http_client() -> AbstractContextManager[None]:
    """MLflow's HTTP client with brief retries (HTTP_CLIENT_DEFAULTS) for the block; values the user set are kept."""
    return _environment({k: v for k, v in HTTP_CLIENT_DEFAULTS.items() if k not in os.environ})


def log_linked_metrics(client, run_id: str, model_id: str, metrics: list) -> None:
    """Log `metrics` (mlflow.entities.Metric) in the run, each linked to the LoggedModel `model_id`, one request per
    METRICS_PER_REQUEST. A value the run already has (same key, step, timestamp and value) is linked, not logged
    again, so a repeated request, or several models given the same values, leave one point in the run's history."""
    from mlflow.entities import Metric

    linked = [Metric(m.key, m.value, m.timestamp, m.step, model_id=model_id, dataset_name=m.dataset_name,
                     dataset_digest=m.dataset_digest) for m in metrics]
    for lo in range(0, len(linked), METRICS_PER_REQUEST):
        client.log_batch(run_id, synchronous=True, metrics=linked[lo:lo + METRICS_PER_REQUEST])


@dataclass
class _LoggedModel:
    """A trained model's files (X.pt and X.json) as an MLflow LoggedModel of the run, with the scores it ended on
    linked to it, so the UI's model page shows them. Sent in steps that each remember they are done: a retry after
    an outage neither makes a second model nor uploads or links twice."""

    weights: Path
    name: str
    experiment_id: str
    metrics: list                    # mlflow.entities.Metric, without the model id until it exists
    params: dict[str, str]
    key: str = field(default_factory=lambda: uuid.uuid4().hex)  # finds a model made by a call whose answer was lost
    model_id: str | None = None
    tried: bool = False
    uploaded: bool = False
    linked: bool = False

    def send(self, client, run_id: str) -> None:
        import shutil
        import tempfile

        if self.model_id is None and self.tried:  # a tracker that hung may have made it before its answer was lost
            made = client.search_logged_models([self.experiment_id], filter_string=(
                f"name = '{self.name}' AND tags.`{LOG_KEY_TAG}` = '{self.key}'"))
            self.model_id = made[0].model_id if made else None
        if self.model_id is None:
            self.tried = True
            self.model_id = client.create_logged_model(self.experiment_id, name=self.name, source_run_id=run_id,
                                                       tags={LOG_KEY_TAG: self.key}, params=self.params,
                                                       model_type=TRAINED_TYPE).model_id
        if not self.uploaded:
            with tempfile.TemporaryDirectory() as tmp:  # the model's artifacts are a folder: these two files
                for path in (self.weights, self.weights.with_suffix(".json")):
                    shutil.copyfile(path, Path(tmp) / path.name)
                client.log_model_artifacts(self.model_id, tmp)
            self.uploaded = True
        if not self.linked:
            log_linked_metrics(client, run_id, self.model_id, self.metrics)
            self.linked = True
        client.finalize_logged_model(self.model_id, "READY")

    def give_up(self, client) -> None:
        """Mark a model the tracker refused to complete as FAILED, not left PENDING (best effort)."""
        if self.model_id is not None:
            try:
                client.finalize_logged_model(self.model_id, "FAILED")
            except Exception:  # noqa: BLE001 - the refusal has been reported already
                pass

    def unsent(self) -> str:
        """What of this model has not reached the tracker, for the last warning line."""
        missing = [part for part, done in (("files", self.uploaded), ("scores", self.linked)) if not done]
        return f"model {self.name} ({' and '.join(missing) or 'not marked ready'})"


@dataclass
class _Call:
    """One logging call kept until the tracker takes it: metrics and params (one log-batch request), a file, dataset
    inputs or a model."""

    metrics: list = field(default_factory=list)
    params: list = field(default_factory=list)
    artifact: tuple[str, str | None] | None = None
    inputs: list = field(default_factory=list)    # mlflow.entities.DatasetInput
    model: _LoggedModel | None = None

    @property
    def metrics_only(self) -> bool:
        return not self.params and self.artifact is None and not self.inputs and self.model is None

    def send(self, client, run_id: str) -> None:
        if self.model is not None:
            self.model.send(client, run_id)
        elif self.artifact is not None:
            client.log_artifact(run_id, *self.artifact)
        elif self.inputs:
            client.log_inputs(run_id, datasets=self.inputs)
        else:
            client.log_batch(run_id, metrics=self.metrics, params=self.params, synchronous=True)


class TrackedRun:
    """A stage's MLflow run seen through one guarded path: a logging call never raises for the tracker's sake.

    A call that fails (after the client's retries, and one more for a local store) marks the tracker away with one
    warning line; from then on calls are kept in memory (up to MAX_BUFFERED metric values) and, every
    REPROBE_SECONDS, sent if the tracker answers again. `close` makes a last attempt and ends the run."""

    def __init__(self, run, uri: str, reprobe_seconds: float = REPROBE_SECONDS) -> None:
        from mlflow import MlflowClient

        self.info = run.info
        self.uri = uri
        self._local = not _is_server(uri)  # a store in this process: its calls are not cut by a signal (_SignalGate)
        self._client = MlflowClient(uri)
        self._reprobe_seconds = reprobe_seconds
        self._pending: list[_Call] = []
        self._kept_values = 0           # metric values in `_pending` (counted, not summed per call)
        self._away: str | None = None   # why the tracker is taken to be away; None while it takes calls
        self._next_probe = 0.0
        self._dropped = 0               # metric values past MAX_BUFFERED
        self._refused: list[_Call] = []  # calls a tracker that answers turned down (a bad value, a deleted run)
        self._dataset: tuple[str, str] | None = None  # (name, digest) of the data the run logged it trained on

    @property
    def run_id(self) -> str:
        return self.info.run_id

    def log_params(self, params: dict) -> None:
        from mlflow.entities import Param

        flat = [Param(key, value) for key, value in _flatten(params).items()]
        for lo in range(0, len(flat), 100):
            self._submit(_Call(params=flat[lo:lo + 100]))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None, stamp: int | None = None) -> None:
        from mlflow.entities import Metric

        stamp = stamp or now_ms()  # when it happened, also for a value sent later from the buffer
        values = [Metric(key, float(value), stamp, step or 0) for key, value in metrics.items()]
        for lo in range(0, len(values), METRICS_PER_REQUEST):
            self._submit(_Call(metrics=values[lo:lo + METRICS_PER_REQUEST]))

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self._submit(_Call(artifact=(str(path), artifact_path)))

    def log_dataset(self, frame, name: str, source: str, context: str = "training") -> None:
        """The rows a stage trained or evaluated on (its manifest table) as an MLflow dataset input, digested by the
        DVC hash of `source` when dvc.lock has it (so a run names the very data version DVC restores)."""
        import warnings

        import mlflow
        from mlflow.entities import DatasetInput, InputTag

        digest = dvc_digest(source)
        with warnings.catch_warnings():  # MLflow's hints on resolving a local path and on integer columns: noise
            warnings.simplefilter("ignore", UserWarning)
            dataset = mlflow.data.from_pandas(frame, source=source, name=name,
                                              digest=digest.removesuffix(".dir") if digest else None)
            entity = dataset._to_mlflow_entity()  # the schema is inferred here, with its hint
        if context == "training":
            self._dataset = (entity.name, entity.digest)
        self._submit(_Call(inputs=[DatasetInput(entity, tags=[InputTag("mlflow.data.context", context)])]))

    def log_model(self, weights: Path, name: str, metrics: dict[str, float], step: int = 0,
                  stamp: int | None = None, params: dict | None = None) -> None:
        """Log a saved model (weights and its JSON config) as a LoggedModel of this run, named `name` and typed
        TRAINED_TYPE, with `metrics` (what it scored at `step`) logged in the run and linked to it, and `params` on it.

        A value the run already has at that step and `stamp` (an epoch's, from `EpochCurve.scores`) is linked,
        not logged twice: its metric history keeps one point per epoch. The metrics name the training data the run
        logged (`log_dataset`), so the model's page says what it was trained on."""
        from mlflow.entities import Metric

        stamp = stamp or now_ms()
        name_digest = self._dataset or (None, None)
        values = [Metric(key, float(value), stamp, step, dataset_name=name_digest[0], dataset_digest=name_digest[1])
                  for key, value in metrics.items()]
        self._submit(_Call(model=_LoggedModel(weights, name, self.info.experiment_id, values,
                                              _flatten(params or {}))))

    def close(self, status: str) -> None:
        """End the run with `status` after a last try at the kept calls; warns (never raises) when it cannot. A
        signal meanwhile waits until the run has ended (a second one does not)."""
        with _GATE.shut(self._local):
            self._close(status)

    def _close(self, status: str) -> None:
        import mlflow

        if self._away is not None:
            self._next_probe = 0.0
            self._send_pending()
        try:  # a tracker still away gets one short try, not the client's retries (whatever the user set for those)
            with _environment(GONE_CLIENT if self._away else {}):
                mlflow.end_run(status)  # pops the fluent run first, so the process is left clean either way
        except Exception as err:  # noqa: BLE001 - whatever the tracker did, the stage's outputs stand
            self._warn(f"could not end run {self.run_id} ({_reason(err)}){self._lost()}; the stage's outputs are "
                       f"complete, but the run may show RUNNING on the tracker: once it is back, end it with "
                       f"`python -c \"import mlflow; mlflow.MlflowClient('{self.uri}')"
                       f".set_terminated('{self.run_id}', '{status}')\"`")
            return
        if self._pending or self._dropped or self._refused:
            self._warn(f"run {self.run_id} ended {status}{self._lost()}")

    def _submit(self, call: _Call) -> None:
        if self._away is None:
            try:
                self._send(call)
                return
            except Exception as err:  # noqa: BLE001 - any failure of the tracker; the call is kept
                if self._refuse(call, err):
                    return
                self._away = _reason(err)
                self._warn(f"failed ({self._away}); the stage goes on, keeping run {self.run_id}'s tracking in "
                           f"memory to send when the tracker answers again")
                self._next_probe = time.monotonic() + self._reprobe_seconds
        self._keep(call)
        self._send_pending()

    def _refuse(self, call: _Call, err: Exception) -> bool:
        """Drop a call the tracker answered with a 4xx (retrying it cannot help, and keeping it would hold up the
        calls behind it); warn on the first such call only. False for an outage (no answer, 5xx)."""
        from mlflow.exceptions import MlflowException

        if not isinstance(err, MlflowException) or not 400 <= err.get_http_status_code() < 500:
            return False
        if not self._refused:
            self._warn(f"refused a logging call of run {self.run_id} ({_reason(err)}); calls it refuses are "
                       f"dropped, the stage goes on")
        if call.model is not None:
            with _GATE.shut(self._local):
                call.model.give_up(self._client)
        self._refused.append(call)
        return True

    def _send(self, call: _Call) -> None:
        """One call, retried once after a pause for a local store (a server's client has retried already)."""
        attempts = 2 if self._local else 1
        for attempt in range(attempts):
            try:
                with _GATE.shut(self._local):
                    call.send(self._client, self.run_id)
                return
            except Exception:
                if attempt == attempts - 1:
                    raise
                time.sleep(1.0)

    def _keep(self, call: _Call) -> None:
        if call.metrics and self._kept_values + len(call.metrics) > MAX_BUFFERED:
            self._dropped += len(call.metrics)
            return
        self._pending.append(call)
        self._kept_values += len(call.metrics)

    def _send_pending(self) -> None:
        """Send the kept calls, oldest first, when it is time to look and the tracker answers; stop at a failure."""
        if self._away is None or time.monotonic() < self._next_probe:
            return
        self._next_probe = time.monotonic() + self._reprobe_seconds
        if unreachable(self.uri, 2.0) is not None:
            return
        sent = len(self._pending)
        while self._pending:
            self._merge_head()
            try:
                with _GATE.shut(self._local):
                    self._pending[0].send(self._client, self.run_id)
            except Exception as err:  # noqa: BLE001 - refused: dropped; else still away: keep the rest
                if not self._refuse(self._pending[0], err):
                    self._away = _reason(err)
                    self._kept_values = sum(len(c.metrics) for c in self._pending)
                    return
            del self._pending[0]
        self._kept_values = 0
        self._away = None
        self._warn(f"answers again: sent the {sent} logging calls kept for run {self.run_id}", prefix="note")

    def _merge_head(self) -> None:
        """Fold the metric-only calls at the head of the queue into one request of up to METRICS_PER_REQUEST."""
        head = self._pending[0]
        if not head.metrics_only:
            return
        n = 1
        while (n < len(self._pending) and self._pending[n].metrics_only
               and len(head.metrics) + len(self._pending[n].metrics) <= METRICS_PER_REQUEST):
            head.metrics = head.metrics + self._pending[n].metrics
            n += 1
        del self._pending[1:n]

    def _lost(self) -> str:
        """What never reached the tracker, for the last warning line."""
        lost = self._pending + self._refused
        values = sum(len(c.metrics) for c in lost) + self._dropped
        files = [Path(c.artifact[0]).name for c in lost if c.artifact is not None] + \
                [c.model.unsent() for c in lost if c.model is not None]
        params = sum(len(c.params) for c in lost)
        parts = [f"{values} metric values"] * bool(values) + [f"{params} params"] * bool(params) + \
                [f"the files {', '.join(files)}"] * bool(files)
        return f"; not logged: {', '.join(parts)}" if parts else ""

    def _warn(self, message: str, prefix: str = "warning") -> None:
        print(f"{prefix}: MLflow tracking at {self.uri} {message}", file=sys.stderr, flush=True)


class Interrupted(BaseException):
    """SIGTERM during a stage run, raised in the main thread so the stage unwinds as on Ctrl-C and the run can be
    ended KILLED; a BaseException, so no `except Exception` on the way swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by signal {signum}")
        self.signum = signum


@dataclass
class _SignalGate:
    """Where SIGTERM and Ctrl-C may interrupt the main thread during a stage run: anywhere but inside a call to a
    local (SQLite) store. MLflow's session rolls back on an Exception, not on the BaseException a signal raises, so
    a write cut there kept its transaction, and its lock, open until the process exited: the run could not be ended
    KILLED ("database is locked"). There the signal is held until the call returns; a second one cuts the call at
    once (a store that hangs is left the way a person expects of a second Ctrl-C). A call to a server is cut at
    once: the server finishes or drops the request on its own."""

    depth: int = 0                 # nested `shut` blocks the main thread is inside
    held: int | None = None        # the signal that arrived inside one, raised when the outermost ends

    @contextmanager
    def shut(self, local: bool) -> Iterator[None]:
        if not local or threading.current_thread() is not threading.main_thread():
            yield
            return
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if not self.depth and self.held is not None:
                signum, self.held = self.held, None
                _raise_for(signum)

    def on_signal(self, signum: int, frame) -> None:
        if self.depth and self.held is None:
            self.held = signum
            return
        self.held = None  # raised now: not again when the block ends
        _raise_for(signum)


_GATE = _SignalGate()


def _raise_for(signum: int) -> None:
    raise KeyboardInterrupt if signum == signal.SIGINT else Interrupted(signum)


def _is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


@contextmanager
def _signals_unwind() -> Iterator[None]:
    """SIGTERM raises `Interrupted` and Ctrl-C `KeyboardInterrupt` in the block, held through calls to a local store
    (`_SignalGate`); once the block has unwound from SIGTERM, the signal is delivered again with the previous
    disposition, so the process still dies by it (the exit its parent, DVC or torchrun, expects). SIGTERM is left
    alone where the process ignores it, Ctrl-C wherever its handler is not Python's default."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signal.SIGTERM: signal.getsignal(signal.SIGTERM), signal.SIGINT: signal.getsignal(signal.SIGINT)}
    ours = [signal.SIGTERM] * (previous[signal.SIGTERM] != signal.SIG_IGN) + \
           [signal.SIGINT] * (previous[signal.SIGINT] is signal.default_int_handler)

    def restore() -> None:
        for signum in ours:
            signal.signal(signum, previous[signum] if previous[signum] is not None else signal.SIG_DFL)

    _GATE.held = None
    try:
        for signum in ours:
            signal.signal(signum, _GATE.on_signal)
        yield
    except Interrupted as err:
        restore()
        os.kill(os.getpid(), err.signum)
        raise
    finally:
        restore()
        _GATE.held = None


def _end_status(err: BaseException) -> str:
    """The status of a run its stage left by `err`: a clean `sys.exit(0)` finished the work, Ctrl-C or SIGTERM
    stopped it from outside (KILLED: rerun, nothing to debug), anything else is a failure to look into."""
    if isinstance(err, (Interrupted, KeyboardInterrupt)):
        return "KILLED"
    if isinstance(err, SystemExit) and err.code in (0, None):
        return "FINISHED"
    return "FAILED"


def _open_run(stage: str, system_metrics: bool = False):
    """Start the stage's run (named `STAGE PASS`, tagged with its stage, pass, commit and whether the tree was
    dirty; with `system_metrics`, MLflow samples CPU, memory and GPU use while it runs), or end the stage with one
    line naming the tracker and why it cannot be used."""
    import logging

    import mlflow

    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # no INFO lines about the sampler
    uri = tracking_uri()
    reason = unreachable(uri, PROBE_SECONDS)
    if reason is None:
        try:
            commit, dirty = git_commit(), git_dirty()
            group = pipeline_pass(commit, dirty)
            use_experiment()
            return mlflow.start_run(run_name=f"{stage} {group}", log_system_metrics=system_metrics,
                                    tags={"stage": stage, "pipeline_pass": group, "git_commit": commit,
                                          "git_dirty": dirty})
        except Exception as err:  # noqa: BLE001 - reported as one line below
            reason = _reason(err)
    raise SystemExit(f"error: {stage}: the MLflow tracker at {uri} cannot be used ({reason}); start it, or set "
                     f"MLFLOW_TRACKING_URI to one that answers (unset, stages track to ./mlruns.db)")


@contextmanager
def stage_run(stage: str, params: dict, system_metrics: bool = False) -> Iterator[TrackedRun]:
    """An MLflow run named after the stage and its pipeline pass, with its params section logged and the git commit
    tagged, ended FINISHED, FAILED or KILLED (see the module docstring for what happens when the tracker is away)."""
    with bounded_http_client(), _signals_unwind():
        run, status = None, "FINISHED"
        try:
            with store_writes():  # a signal now ends the run it started
                run = TrackedRun(_open_run(stage, system_metrics), tracking_uri())
            run.log_params(params)
            yield run
        except BaseException as err:
            status = _end_status(err)
            raise
        finally:
            if run is not None:
                run.close(status)


def store_writes() -> AbstractContextManager[None]:
    """For a stage that writes to the tracking store through MLflow itself, inside `stage_run` (`register`): a
    SIGTERM or Ctrl-C waits until the block ends when the store is local (`_SignalGate`), so the run can still be
    ended KILLED."""
    return _GATE.shut(local=not _is_server(tracking_uri()))


@contextmanager
def main_process_run(stage: str, params: dict, is_main: bool) -> Iterator[TrackedRun | None]:
    """`stage_run` of a training stage (system metrics sampled) on the main process of a distributed job; the other
    ranks log nothing."""
    if not is_main:
        yield None
        return
    with stage_run(stage, params, system_metrics=True) as run:
        yield run


class EpochCurve:
    """The per-epoch callback the training loops take: keeps the rows (for the DVC plot), logs them to `run` and,
    given a `label` and the run's `epochs`, shows a person the progress (`s2f.progress`: a bar on a terminal, a
    line at most every 15 s in a log) with the epoch's total loss and validation R@1."""

    SHOWN = {"loss_total": "loss", "loss_g_total": "G", "loss_d_total": "D", "val_recall_at_1": "val R@1"}

    def __init__(self, run: TrackedRun | None = None, prefix: str = "", label: str | None = None,
                 epochs: int | None = None) -> None:
        self.rows: list[dict] = []
        self.stamps: list[int] = []   # when each row's values were logged (MLflow's timestamp)
        self.run = run
        self.prefix = prefix
        self.progress = None
        if label is not None:
            from s2f.progress import Progress

            self.progress = Progress(label, epochs, unit="epochs", every=15.0)

    def __call__(self, epoch: int, metrics: dict[str, float]) -> None:
        self.rows.append({"epoch": epoch, **metrics})
        self.stamps.append(now_ms())
        if self.run is not None:
            self.run.log_metrics({f"{self.prefix}{k}": v for k, v in metrics.items()}, step=epoch,
                                 stamp=self.stamps[-1])
        if self.progress is not None:  # epochs count from 0; a resumed run starts past the first
            shown = {name: float(metrics[key]) for key, name in self.SHOWN.items() if key in metrics}
            self.progress.update(epoch + 1 - self.progress.done, **shown)
            if self.progress.total is not None and epoch + 1 >= self.progress.total:
                self.progress.close()

    @property
    def last(self) -> dict[str, float]:
        return {k: v for k, v in self.rows[-1].items() if k != "epoch"}

    def scores(self, epoch: int | None = None) -> tuple[dict[str, float], int, int]:
        """An epoch's values as logged (the last epoch's by default or when it has no row), its step and its
        timestamp: what `TrackedRun.log_model` links to the model trained, without logging them twice."""
        k = next((i for i, r in enumerate(self.rows) if r["epoch"] == epoch), len(self.rows) - 1)
        values = {f"{self.prefix}{key}": v for key, v in self.rows[k].items() if key != "epoch"}
        return values, int(self.rows[k]["epoch"]), self.stamps[k]


def _flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:500]
    return flat
