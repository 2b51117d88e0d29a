"""Compute face features and landmarks for every preprocessed sample, shard by shard, and fix the split.

Each feature shard is validated with Great Expectations as it is written (dimension, norm range, finite values,
unique ids); a failing shard is moved to `quarantine/` with its result, and its samples leave the manifest. Like
preprocessing, a shard is done once its record is written, so a rerun skips shards whose input shard is unchanged.
"""

from __future__ import annotations

import hashlib
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from s2f.config import FeaturesParams
from s2f.faces.detect import FaceBox
from s2f.faces.features import get_backend, landmarks_68
from s2f.io.shards import (move_to_quarantine, read_record, read_shard, work_key, write_record, write_shard,
                           write_table)
from s2f.parallel import process_map
from s2f.split import split_speakers


def backend_options(params: FeaturesParams) -> dict:
    return {"weights": params.vggface_weights} if params.backend == "vggface" else {}


def _weights_identity(options: dict) -> dict:
    """Size and mtime of a weight file, so replacing the file at the same path recomputes the features."""
    path = Path(options["weights"]) if options.get("weights") else None
    if path is None or not path.is_file():
        return options
    stat = path.stat()
    return {**options, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _features_of(item: tuple[np.ndarray, np.ndarray], backend_name: str, options: dict) -> tuple[np.ndarray, np.ndarray]:
    crop, box = item
    face_box = FaceBox(*map(int, box), score=1.0)
    return get_backend(backend_name, **options).embed(crop, face_box), landmarks_68(crop, face_box)


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def compute_features(pre_dir: Path, out_dir: Path, params: FeaturesParams, workers: int) -> pd.DataFrame:
    """Write `out_dir/features-*.npz` (sample_id, embedding, landmarks) and `manifest.parquet` with a split column."""
    from s2f.validation import ShardRules, ShardValidator, write_result

    manifest = pd.read_parquet(pre_dir / "manifest.parquet")
    backend = get_backend(params.backend, **backend_options(params))  # fails early on a missing weight file
    work = partial(_features_of, backend_name=params.backend, options=backend_options(params))
    validator, failed = None, []
    with process_map(workers) as pmap:
        for shard in sorted(manifest["shard"].unique()):
            name = shard.replace("shard-", "features-")
            key = work_key({"shard": _file_hash(pre_dir / shard), "backend": params.backend,
                            "options": _weights_identity(backend_options(params))})
            record = read_record(out_dir / name.replace(".npz", ".done.json"), key)
            if record is None:
                arrays = read_shard(pre_dir / shard, ["sample_id", "face", "face_box"])
                results = pmap(work, list(zip(arrays["face"], arrays["face_box"])))
                features = {"sample_id": arrays["sample_id"], "embedding": np.stack([r[0] for r in results]),
                            "landmarks": np.stack([r[1] for r in results])}
                write_shard(out_dir / name, features)
                validator = validator or ShardValidator(ShardRules(embedding_dim=backend.dim,
                                                                   embedding_norm_range=backend.norm_range))
                outcome = validator.validate_arrays("feature_shard", features, name)
                write_result(outcome, out_dir / "validation" / f"{Path(name).stem}.json")
                if not outcome.success:
                    move_to_quarantine(out_dir, name)
                record = {"success": outcome.success, "failures": outcome.failures}
                write_record(out_dir / name.replace(".npz", ".done.json"), key, record)
            if not record["success"]:
                failed.append(shard)
    if validator is not None:
        validator.build_data_docs(out_dir / "validation" / "docs")
    kept = manifest[~manifest["shard"].isin(failed)]
    if failed:
        print(f"features: {len(failed)} shards failed validation and were quarantined: {failed}")
    kept = kept.assign(features_shard=kept["shard"].str.replace("shard-", "features-"), backend=params.backend,
                       split=split_speakers(kept["speaker"], params.split.test_fraction, params.split.seed))
    write_table(out_dir / "manifest.parquet", kept)
    write_identity_head(pre_dir, out_dir, params, backend)
    return kept


def write_identity_head(pre_dir: Path, out_dir: Path, params: FeaturesParams, backend) -> None:
    """`identity_head.pt`: the distillation loss's classifier over identities (VGG-Face's fc8, or fitted on the
    training speakers' features for backends without one), next to the features it classifies."""
    from s2f.dataset import load_split
    from s2f.io.checkpoints import save_identity_head
    from s2f.training.identity import accuracy, fit_identity_head, head_from_arrays

    train = load_split(pre_dir, out_dir, "train", audio=False)
    if hasattr(backend, "identity_head"):
        head = head_from_arrays(*backend.identity_head())
        meta = {"source": f"{params.backend} fc8", "backend": params.backend}
    else:
        head, ids = fit_identity_head(train.embedding, train.speakers, params.identity_head.epochs,
                                      params.identity_head.lr, params.split.seed)
        meta = {"source": "fitted on the training speakers", "backend": params.backend, "identities": ids,
                "train_accuracy": accuracy(head, train.embedding, train.speakers, ids)}
    save_identity_head(head, out_dir / "identity_head.pt", meta)
