"""Compute face features and landmarks for every preprocessed sample, shard by shard, and fix the split.

Each feature shard is validated with Great Expectations as it is written (dimension, norm range, finite values,
unique ids); a failing shard is moved to `quarantine/` with its verdict, and its samples leave the manifest. The
shard engine (`s2f.shard_engine`, shared with preprocessing) keeps the records, so a rerun or a resumed killed run
skips exactly the shards whose input shard, backend and code are unchanged.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from s2f.config import FeaturesParams
from s2f.faces.detect import FaceBox
from s2f.faces.features import get_backend, landmarks_68
from s2f.io.hashing import file_sha256
from s2f.io.shards import read_shard, work_key, write_table
from s2f.lineage import closure_hash
from s2f.shard_engine import ShardEngine, ShardKind, ShardTask
from s2f.split import split_speakers


def backend_options(params: FeaturesParams) -> dict:
    return {"weights": params.vggface_weights} if params.backend == "vggface" else {}


def _weights_identity(options: dict) -> dict:
    """The weight file's content hash, so replacing the file at the same path recomputes the features (and the
    same bytes at another path or mtime do not)."""
    path = Path(options["weights"]) if options.get("weights") else None
    if path is None or not path.is_file():
        return options
    return {**{k: v for k, v in options.items() if k != "weights"}, "sha256": file_sha256(path)}


def _features_of(item: tuple[str, np.ndarray, np.ndarray], backend_name: str,
                 options: dict) -> tuple[str, np.ndarray, np.ndarray]:
    sample_id, crop, box = item
    face_box = FaceBox(*map(int, box), score=1.0)
    return sample_id, get_backend(backend_name, **options).embed(crop, face_box), landmarks_68(crop, face_box)


def _shard_items(path: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    arrays = read_shard(path, ["sample_id", "face", "face_box"])
    return list(zip(arrays["sample_id"], arrays["face"], arrays["face_box"]))


def _feature_arrays(results: list[tuple[str, np.ndarray, np.ndarray]]) -> dict[str, np.ndarray] | None:
    if not results:
        return None
    return {"sample_id": np.array([r[0] for r in results], dtype=str), "embedding": np.stack([r[1] for r in results]),
            "landmarks": np.stack([r[2] for r in results])}


def compute_features(pre_dir: Path, out_dir: Path, params: FeaturesParams, workers: int,
                     work_dir: Path | None = None) -> pd.DataFrame:
    """Write `out_dir/features-*.npz` (sample_id, embedding, landmarks), their validation verdicts,
    `manifest.parquet` with a split column and the identity head: `feature_shards`, then `finish_features`.

    `work_dir` (default `out_dir`) keeps finished shards and their records between runs (the shard engine,
    `s2f.shard_engine`): DVC empties a stage's outputs before running it, so a killed `dvc repro` resumes only
    from a folder outside them.
    """
    kept = feature_shards(pre_dir, out_dir, params, workers, work_dir)
    return finish_features(kept, pre_dir, out_dir, params)


def feature_shards(pre_dir: Path, out_dir: Path, params: FeaturesParams, workers: int,
                   work_dir: Path | None = None) -> pd.DataFrame:
    """Features of every shard in `pre_dir` (the whole corpus, or one partition's part): shards and verdicts in
    `out_dir`; returns the samples of shards that passed validation, with their feature shard (no split yet: the
    split needs every speaker, so a partition leaves it to `finish_features` in `gather`)."""
    from s2f.validation import ShardRules

    manifest = pd.read_parquet(pre_dir / "manifest.parquet")
    backend = get_backend(params.backend, **backend_options(params))  # fails early on a missing weight file
    rules = partial(ShardRules, embedding_dim=backend.dim, embedding_norm_range=backend.norm_range)
    engine = ShardEngine(ShardKind("features", "feature_shard", rules, unit="faces"), work_dir or out_dir)
    options, code = _weights_identity(backend_options(params)), closure_hash(__name__)
    shards = sorted(manifest["shard"].unique()) if len(manifest) else []
    with engine.hash_cache() as hashes:
        tasks = [ShardTask(shard.replace("shard-", "features-"),
                           work_key({"shard": hashes.sha256(pre_dir / shard), "backend": params.backend,
                                     "options": options, "code": code}),
                           partial(_shard_items, pre_dir / shard)) for shard in shards]
    work = partial(_features_of, backend_name=params.backend, options=backend_options(params))
    records = engine.run(tasks, work, workers,
                         lambda task, results: engine.finish(task.name, task.key, _feature_arrays(results)))
    engine.publish(out_dir, tasks, records)
    failed = [shard for shard, record in zip(shards, records) if not (record["validation"] or {}).get("success")]
    if failed:
        print(f"features: {len(failed)} shards failed validation and were quarantined: {failed}")
    if manifest.empty:
        return manifest
    kept = manifest[~manifest["shard"].isin(failed)]
    return kept.assign(features_shard=kept["shard"].str.replace("shard-", "features-"), backend=params.backend)


def finish_features(kept: pd.DataFrame, pre_dir: Path, out_dir: Path, params: FeaturesParams,
                    backend=None) -> pd.DataFrame:
    """The corpus-wide half: the speaker split over every kept sample, `manifest.parquet` and the identity head
    fitted on the training speakers (`pre_dir`, `out_dir`: the whole corpus's folders)."""
    kept = kept.assign(split=split_speakers(kept["speaker"], params.split.test_fraction, params.split.seed))
    write_table(out_dir / "manifest.parquet", kept)
    write_identity_head(pre_dir, out_dir, params, backend or get_backend(params.backend, **backend_options(params)))
    return kept


def write_identity_head(pre_dir: Path, out_dir: Path, params: FeaturesParams, backend) -> None:
    """`identity_head.pt`: the distillation loss's classifier over identities (VGG-Face's fc8, or fitted on the
    training speakers' features for backends without one), next to the features it classifies."""
    from s2f.dataset import load_split
    from s2f.io.checkpoints import save_identity_head
    from s2f.training.identity import accuracy, fit_identity_head, head_from_arrays

    train = load_split(pre_dir, out_dir, "train", audio=False).in_memory()
    if hasattr(backend, "identity_head"):
        head = head_from_arrays(*backend.identity_head())
        meta = {"source": f"{params.backend} fc8", "backend": params.backend}
    else:
        head, ids = fit_identity_head(train.embedding, train.speakers, params.identity_head.epochs,
                                      params.identity_head.lr, params.split.seed)
        meta = {"source": "fitted on the training speakers", "backend": params.backend, "identities": ids,
                "train_accuracy": accuracy(head, train.embedding, train.speakers, ids)}
    save_identity_head(head, out_dir / "identity_head.pt", meta)
