"""Compute face features and landmarks for every preprocessed sample, shard by shard, and fix the split.

Each feature shard is validated with Great Expectations as it is written (dimension, norm range, finite values,
unique ids); a failing shard is moved to `quarantine/` with its verdict, and its samples leave the manifest. Like
preprocessing, a shard is done once its record is written (in the work folder, with its files' sizes and hashes), so
a rerun or a resumed killed run skips exactly the shards whose input shard, backend and code are unchanged.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from s2f.config import FeaturesParams
from s2f.faces.detect import FaceBox
from s2f.faces.features import get_backend, landmarks_68
from s2f.io.hashing import HashCache, file_sha256
from s2f.io.shards import (GX_DOCS, GX_RESULTS, link_or_copy, move_to_quarantine, read_record, read_shard,
                           record_name, verdict_name, work_key, write_record, write_shard, write_table)
from s2f.lineage import closure_hash
from s2f.parallel import process_map
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


def _features_of(item: tuple[np.ndarray, np.ndarray], backend_name: str, options: dict) -> tuple[np.ndarray, np.ndarray]:
    crop, box = item
    face_box = FaceBox(*map(int, box), score=1.0)
    return get_backend(backend_name, **options).embed(crop, face_box), landmarks_68(crop, face_box)


def compute_features(pre_dir: Path, out_dir: Path, params: FeaturesParams, workers: int,
                     work_dir: Path | None = None) -> pd.DataFrame:
    """Write `out_dir/features-*.npz` (sample_id, embedding, landmarks), their validation verdicts and
    `manifest.parquet` with a split column.

    `work_dir` (default `out_dir`) keeps finished shards and their records between runs: DVC empties a stage's
    outputs before running it, so a killed `dvc repro` resumes only from a folder outside them. A record carries
    its files' sizes and hashes, so a truncated or deleted shard is redone, never republished.
    """
    from s2f.validation import ShardRules, ShardValidator, write_result, write_verdict

    work_dir = work_dir or out_dir
    work_dir.mkdir(parents=True, exist_ok=True)
    manifest = pd.read_parquet(pre_dir / "manifest.parquet")
    backend = get_backend(params.backend, **backend_options(params))  # fails early on a missing weight file
    work = partial(_features_of, backend_name=params.backend, options=backend_options(params))
    options = _weights_identity(backend_options(params))
    code = closure_hash(__name__)
    validator, failed, published = None, [], []
    with process_map(workers) as pmap, HashCache(work_dir / "hashes.sqlite") as hashes:
        shards = sorted(manifest["shard"].unique())
        for n, shard in enumerate(shards, 1):
            name = shard.replace("shard-", "features-")
            key = work_key({"shard": hashes.sha256(pre_dir / shard), "backend": params.backend, "options": options,
                            "code": code})
            record = read_record(work_dir / record_name(name), key, work_dir, hashes)
            if record is None:
                arrays = read_shard(pre_dir / shard, ["sample_id", "face", "face_box"])
                results = pmap(work, list(zip(arrays["face"], arrays["face_box"])))
                features = {"sample_id": arrays["sample_id"], "embedding": np.stack([r[0] for r in results]),
                            "landmarks": np.stack([r[1] for r in results])}
                (work_dir / record_name(name)).unlink(missing_ok=True)  # no old record may vouch for new content
                write_shard(work_dir / name, features)
                validator = validator or ShardValidator(ShardRules(embedding_dim=backend.dim,
                                                                   embedding_norm_range=backend.norm_range))
                outcome = validator.validate_arrays("feature_shard", features, name)
                write_verdict(outcome, work_dir / verdict_name(name))
                write_result(outcome, work_dir / GX_RESULTS / f"{Path(name).stem}.json")
                kept = name
                if not outcome.success:
                    move_to_quarantine(work_dir, name)
                    kept = f"quarantine/{name}"
                record = {"success": outcome.success, "failures": outcome.failures}
                write_record(work_dir / record_name(name), key, record, work_dir, [kept, verdict_name(name)])
                print(f"features: {name} done ({n} of {len(shards)})", flush=True)
            if not record["success"]:
                failed.append(shard)
            published.append((name, record["success"]))
    if validator is not None:
        validator.build_data_docs(work_dir / GX_DOCS)
    if work_dir != out_dir:
        _link_outputs(work_dir, out_dir, published)
    kept = manifest[~manifest["shard"].isin(failed)]
    if failed:
        print(f"features: {len(failed)} shards failed validation and were quarantined: {failed}")
    kept = kept.assign(features_shard=kept["shard"].str.replace("shard-", "features-"), backend=params.backend,
                       split=split_speakers(kept["speaker"], params.split.test_fraction, params.split.seed))
    write_table(out_dir / "manifest.parquet", kept)
    write_identity_head(pre_dir, out_dir, params, backend)
    return kept


def _link_outputs(work_dir: Path, out_dir: Path, published: list[tuple[str, bool]]) -> None:
    """Hard-link each shard (or its quarantined copy) and its verdict into the output; nothing else of WORK."""
    for name, success in published:
        shard = name if success else f"quarantine/{name}"
        link_or_copy(work_dir / shard, out_dir / shard)
        link_or_copy(work_dir / verdict_name(name), out_dir / verdict_name(name))


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
