"""The MLflow model registry: what a pipeline run registers, and the aliases promotion moves.

Every run that produces new models registers three versions together: the voice encoder (audio → face feature), the
face decoder (face feature → image) and the composite `speech2face` (audio → face PNG) that serving loads. Each
version carries tags that say where it came from and how good it is (git commit, the DVC hashes of the data it was
trained on, every evaluation metric as `metric.<name>`), so a promotion decision needs nothing but the registry. The
composite names its component versions, so moving an alias moves all three consistently.

Aliases, not stages: `challenger` is the newest registered candidate, `champion` is what inference serves
(`models:/speech2face@champion`). The registered model tag `champion_history` keeps the previous champions, newest
last, so a rollback knows where to go.
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
COMPONENT_TAG = "component."

# dvc.lock outputs whose content hashes identify the data a model was trained on
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
    version = {}
    for stage, path in DATA_OUTPUTS.items():
        outs = {o.get("path"): o.get("md5", "unknown") for o in stages.get(stage, {}).get("outs", [])}
        version[f"dvc.data.{stage}"] = outs.get(path, "unknown")
    return version


def models_sha256(encoder: Path, decoder: Path) -> str:
    """One content hash of the weights and configs of both models: what a version is, whatever store holds it."""
    import hashlib

    from s2f.io.hashing import file_sha256

    files = [encoder, encoder.with_suffix(".json"), decoder, decoder.with_suffix(".json")]
    return hashlib.sha256("".join(file_sha256(f) for f in files).encode()).hexdigest()


def metric_tags(flat_metrics: dict[str, float]) -> dict[str, str]:
    return {f"{METRIC_TAG}{name}": repr(float(value)) for name, value in flat_metrics.items()}


def metric_of(tags: dict[str, str], name: str) -> float | None:
    """A metric recorded on a model version, or None when that version has no such metric."""
    text = tags.get(f"{METRIC_TAG}{name}")
    return None if text is None else float(text)


def register_candidates(encoder: Path, decoder: Path, flat_metrics: dict[str, float],
                        provenance: dict[str, str]) -> Registered:
    """Log and register the three models in the active MLflow run, tag them and alias them `challenger`."""
    import mlflow

    from s2f.serving.log import log_face_decoder, log_speech2face, log_voice_encoder

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("register_candidates needs an active MLflow run (s2f.io.tracking.stage_run)")
    infos = {ENCODER: log_voice_encoder(encoder, registered_model_name=ENCODER),
             DECODER: log_face_decoder(decoder, registered_model_name=DECODER),
             COMPOSITE: log_speech2face(encoder, decoder, registered_model_name=COMPOSITE)}
    versions = {name: str(info.registered_model_version) for name, info in infos.items()}
    client = mlflow.MlflowClient()
    tags = {**provenance, **metric_tags(flat_metrics), "run_id": run.info.run_id}
    components = {f"{COMPONENT_TAG}{ENCODER}": versions[ENCODER], f"{COMPONENT_TAG}{DECODER}": versions[DECODER]}
    for name, version in versions.items():
        for key, value in (tags | (components if name == COMPOSITE else {})).items():
            client.set_model_version_tag(name, version, key, value)
        client.set_registered_model_alias(name, CHALLENGER, version)
    return Registered(versions, run.info.run_id)


def alias_version(client, name: str, alias: str):
    """The version `name@alias`, or None when the alias is not set."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def champion_history(client) -> list[str]:
    tags = client.get_registered_model(COMPOSITE).tags
    return json.loads(tags.get(HISTORY_TAG, "[]"))


def set_champion(client, composite_version, history: list[str]) -> None:
    """Alias `champion` on the composite version and on the component versions it was registered with."""
    client.set_registered_model_alias(COMPOSITE, CHAMPION, composite_version.version)
    for component in (ENCODER, DECODER):
        version = composite_version.tags.get(f"{COMPONENT_TAG}{component}")
        if version:
            client.set_registered_model_alias(component, CHAMPION, version)
    client.set_registered_model_tag(COMPOSITE, HISTORY_TAG, json.dumps(history))
