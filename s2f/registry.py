"""The MLflow model registry: what a pipeline run registers, and the aliases promotion moves.

Every run that produces new models registers, for Speech2Face, three versions together: the voice encoder (audio →
face feature), the face decoder (face feature → image) and the composite `speech2face` (audio → face PNG) that
serving loads; and for each GAN family trained (`train_gan.families`), one audio → face version registered under the
family's name (`wen2019`, `wav2pix`), served the same way. Each version carries tags that say where it came from and
how good it is (git commit, the DVC hashes of the data it was trained on, the sha256 of its model files, its
`family`, and the headline numbers of ITS OWN section of the evaluation report, with the promotion gate's metric, as
`metric.<name>`: one gate metric means the same for every family), so a promotion decision needs nothing but the
registry. A version's tags stay few enough to read; every metric of its section is linked to the version's
LoggedModel instead (as `FAMILY.<name>`, the evaluate run's names), where the MLflow UI shows them beside the model.
The composite names its component versions, so moving an alias moves all three consistently.

Aliases, not stages: `challenger` is the newest registered candidate, `champion` is what inference serves
(`models:/speech2face@champion`, `models:/wen2019@champion`). Each registered model's tag `champion_history` keeps
its previous champions, newest last, so a rollback knows where to go.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

COMPOSITE = "speech2face"
ENCODER = "s2f-voice-encoder"
DECODER = "s2f-face-decoder"
MODELS = (COMPOSITE, ENCODER, DECODER)
CHALLENGER = "challenger"
CHAMPION = "champion"
HISTORY_TAG = "champion_history"
METRIC_TAG = "metric."
DATA_SOURCE_TAG = "data.source"   # params' data.source: demo (the synthetic corpus), local or avspeech
SYNTHETIC_NOTE = ("trained on the synthetic demo corpus (data.source: demo): its faces show what the pipeline does, "
                  "not what a real voice looks like (README: \"What the demo model knows\")")


def registry_version(client, model_uri: str):
    """The model version a `models:/NAME@ALIAS` or `models:/NAME/VERSION` URI names, or None for any other URI."""
    if not model_uri.startswith("models:/"):
        return None
    name, _, rest = model_uri.removeprefix("models:/").partition("@")
    if rest:
        return client.get_model_version_by_alias(name, rest)
    name, _, version = name.partition("/")
    return client.get_model_version(name, version) if version else None


def trained_on_note(tags: dict[str, str]) -> str | None:
    """What a person must be told about a model version's training data, from its tags: None for real data."""
    return SYNTHETIC_NOTE if tags.get(DATA_SOURCE_TAG) == "demo" else None
COMPONENT_TAG = "component."
FAMILY_TAG = "family"      # the model family a version belongs to: speech2face, wen2019, wav2pix
SHA_TAG = "model.sha256"

# dvc.lock outputs whose content hashes identify the data a model was trained on, by the tag's name (`gather`
# writes data/preprocessed and data/features; the tags keep the names of the data they hash)
DATA_OUTPUTS = {"features": "data/features", "preprocess": "data/preprocessed", "download": "data/raw"}


@dataclass(frozen=True)
class Registered:
    """The versions one registration created, by registered model name."""

    versions: dict[str, str]
    run_id: str


def dvc_data_version(lock_path: Path = Path("dvc.lock")) -> dict[str, str]:
    """The DVC content hashes of the pipeline's data outputs (`dvc.data.features` → md5 of `data/features`, …).

    The features hash is what the models were fitted on; together with the git commit it pins a version's inputs
    (`git checkout COMMIT && dvc checkout` brings them back). Missing entries read "unknown" rather than failing:
    a registration outside `dvc repro` still records the commit and the metrics.
    """
    try:
        stages = (yaml.safe_load(lock_path.read_text()) or {}).get("stages", {})
    except OSError:
        stages = {}
    outs = {o.get("path"): o.get("md5", "unknown") for stage in stages.values() for o in stage.get("outs", [])}
    return {f"dvc.data.{name}": outs.get(path, "unknown") for name, path in DATA_OUTPUTS.items()}


def models_sha256(*models: Path) -> str:
    """One content hash of the weights and configs of the models (X.pt and X.json each): what a version is, whatever
    store holds it. Speech2Face's is over the encoder and the decoder, a GAN family's over its one model."""
    import hashlib

    from s2f.io.hashing import file_sha256

    files = [f for model in models for f in (model, model.with_suffix(".json"))]
    return hashlib.sha256("".join(file_sha256(f) for f in files).encode()).hexdigest()


def report_section(report: dict, name: str, source: object = "the evaluation report") -> dict[str, float]:
    """The flattened metrics of `name`'s own section of the family-keyed report (`report["wen2019"]`); a missing
    section is an error naming it, not a version registered without metrics that no gate could compare."""
    from s2f.evaluation import flatten_metrics

    section = report.get(name)
    if not isinstance(section, dict):
        raise ValueError(f"{source} has no section {name!r} (sections: {', '.join(map(str, report)) or 'none'}); "
                         f"the evaluate stage writes one per model family")
    return flatten_metrics(section)


def headline_metrics(flat_metrics: dict[str, float], gate_metric: str) -> dict[str, float]:
    """The metrics a version is tagged with: its section's headline numbers (those of reports/headline.json, under
    their flattened names, Speech2Face's decoded face under `decoded.`) and the gate's metric, whichever it is."""
    from s2f.report_summary import HEADLINE

    paths = {".".join(path) for path in HEADLINE.values()}
    kept = paths | {f"decoded.{path}" for path in paths} | {gate_metric}
    return {name: value for name, value in flat_metrics.items() if name in kept}


def metric_tags(flat_metrics: dict[str, float]) -> dict[str, str]:
    return {f"{METRIC_TAG}{name}": repr(float(value)) for name, value in flat_metrics.items()}


def link_metrics(client, run_id: str, model_id: str, prefix: str, flat_metrics: dict[str, float], stamp: int) -> None:
    """Log `flat_metrics` in the run at `stamp` as `prefix.<name>`, each linked to the LoggedModel `model_id` (MLflow
    shows them on its page). Several models given the same values and stamp share one point of the run's history."""
    from mlflow.entities import Metric

    from s2f.io.tracking import log_linked_metrics

    log_linked_metrics(client, run_id, model_id, [Metric(f"{prefix}.{name}", float(value), stamp, 0)
                                                  for name, value in flat_metrics.items()])


def version_metric(client, version, name: str) -> float | None:
    """A metric of a model version: its `metric.<name>` tag or else, for a gate changed to a metric the version was
    not tagged with, the value linked to its LoggedModel (`FAMILY.<name>`); None when it has neither."""
    from mlflow.exceptions import MlflowException

    tagged = metric_of(version.tags, name)
    if tagged is not None or not (version.source or "").startswith("models:/"):
        return tagged
    key = f"{version.tags.get(FAMILY_TAG, version.name)}.{name}"
    try:
        linked = client.get_logged_model(version.source.removeprefix("models:/")).metrics or []
    except MlflowException:
        return None
    return next((m.value for m in linked if m.key == key), None)


def metric_of(tags: dict[str, str], name: str) -> float | None:
    """A metric recorded on a model version, or None when that version has no such metric."""
    text = tags.get(f"{METRIC_TAG}{name}")
    return None if text is None else float(text)


def log_candidates(encoder: Path, decoder: Path) -> dict[str, object]:
    """Log and register Speech2Face's three models in the active MLflow run: their ModelInfo by registered name."""
    from s2f.serving.log import log_face_decoder, log_speech2face, log_voice_encoder

    _active_run("log_candidates")
    return {ENCODER: log_voice_encoder(encoder, ENCODER, registered_model_name=ENCODER),
            DECODER: log_face_decoder(decoder, DECODER, registered_model_name=DECODER),
            COMPOSITE: log_speech2face(encoder, decoder, COMPOSITE, registered_model_name=COMPOSITE)}


def log_family(model: Path, family: str) -> dict[str, object]:
    """Log and register a GAN family's audio → face model in the active MLflow run as the registered model
    `family`: its ModelInfo by that name."""
    from s2f.serving.log import log_voice_to_face

    _active_run("log_family")
    return {family: log_voice_to_face(model, family, registered_model_name=family)}


def tag_challengers(logged: dict[str, object], flat_metrics: dict[str, dict[str, float]], gate_metric: str,
                    provenance: dict[str, dict[str, str]]) -> Registered:
    """Tag each logged version (its `family`, provenance, its section's headline metrics and the gate's, run id),
    link every metric of its section to its LoggedModel and alias it `challenger`.

    `flat_metrics` and `provenance` are by family (Speech2Face's components take `speech2face`'s). Call it once every
    model of the run is logged: MLflow copies a run's metrics onto each model logged after them, so a family logged
    after another's metrics were linked would carry those too."""
    import mlflow

    from s2f.io.tracking import now_ms

    run = _active_run("tag_challengers")
    client = mlflow.MlflowClient()
    versions = {name: str(info.registered_model_version) for name, info in logged.items()}
    stamp = now_ms()
    for name, info in logged.items():
        family = COMPOSITE if name in MODELS else name
        link_metrics(client, run.info.run_id, info.model_id, family, flat_metrics[family], stamp)
        tags = {FAMILY_TAG: family, **provenance[family], **metric_tags(headline_metrics(flat_metrics[family],
                                                                                         gate_metric)),
                "run_id": run.info.run_id}
        if name == COMPOSITE:
            tags |= {f"{COMPONENT_TAG}{c}": versions[c] for c in (ENCODER, DECODER) if c in versions}
        for key, value in tags.items():
            client.set_model_version_tag(name, versions[name], key, value)
        client.set_registered_model_alias(name, CHALLENGER, versions[name])
    return Registered(versions, run.info.run_id)


def register_candidates(encoder: Path, decoder: Path, flat_metrics: dict[str, float], gate_metric: str,
                        provenance: dict[str, str]) -> Registered:
    """Speech2Face's three models registered, tagged and aliased `challenger` (`log_candidates`, `tag_challengers`)."""
    return tag_challengers(log_candidates(encoder, decoder), {COMPOSITE: flat_metrics}, gate_metric,
                           {COMPOSITE: provenance})


def register_family(model: Path, family: str, flat_metrics: dict[str, float], gate_metric: str,
                    provenance: dict[str, str]) -> str:
    """A GAN family's model registered, tagged and aliased `challenger` (`log_family`, `tag_challengers`); returns
    its version."""
    registered = tag_challengers(log_family(model, family), {family: flat_metrics}, gate_metric, {family: provenance})
    return registered.versions[family]


def _active_run(caller: str):
    import mlflow

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError(f"{caller} needs an active MLflow run (s2f.io.tracking.stage_run)")
    return run


def alias_version(client, name: str, alias: str):
    """The version `name@alias`, or None when the alias is not set."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def champion_history(client, name: str = COMPOSITE) -> list[str]:
    """The previous champions of the registered model `name`, newest last ([] when it is not registered at all)."""
    from mlflow.exceptions import MlflowException

    try:
        tags = client.get_registered_model(name).tags
    except MlflowException:
        return []
    return json.loads(tags.get(HISTORY_TAG, "[]"))


def set_champion(client, version, history: list[str], name: str = COMPOSITE) -> None:
    """Alias `champion` on the version of `name` and on the component versions it was registered with (the
    composite's encoder and decoder; a GAN family has none)."""
    client.set_registered_model_alias(name, CHAMPION, version.version)
    for component in (ENCODER, DECODER) if name == COMPOSITE else ():
        component_version = version.tags.get(f"{COMPONENT_TAG}{component}")
        if component_version:
            client.set_registered_model_alias(component, CHAMPION, component_version)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
