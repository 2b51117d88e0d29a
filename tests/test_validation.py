"""The GX suites accept good shards and reject each kind of bad one, naming the column at fault."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from s2f.config import PreprocessParams
from s2f.validation import (ShardRules, ShardValidator, ValidationOutcome, feature_shard_frame, sample_shard_frame,
                            suite_name, write_result)

N, RATE, SECONDS, CROP = 6, 16000, 0.5, 224
RULES = ShardRules.from_params(PreprocessParams(sample_rate=RATE, seconds=SECONDS, crop_size=CROP, min_face_size=60))


@pytest.fixture(scope="module")
def validator() -> ShardValidator:
    return ShardValidator(RULES)


def sample_arrays() -> dict[str, np.ndarray]:
    """A small shard as preprocess writes it: a tone per sample, textured crops, faces well inside their frames."""
    rng = np.random.default_rng(0)
    t = np.arange(int(RATE * SECONDS)) / RATE
    tone = (0.2 * 32767 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)
    return {
        "sample_id": np.array([f"clip{i:03d}" for i in range(N)]),
        "speaker": np.array([f"spk{i % 3}" for i in range(N)]),
        "audio": np.tile(tone, (N, 1)),
        "sample_rate": np.array(RATE),
        "face": rng.integers(0, 256, (N, CROP, CROP, 3), dtype=np.uint8),
        "face_box": np.tile(np.array([50, 50, 170, 170], np.int32), (N, 1)),
        "frame_box": np.tile(np.array([100, 60, 220, 180], np.int32), (N, 1)),
        "frame_size": np.tile(np.array([320, 240], np.int32), (N, 1)),
    }


def feature_arrays(dim: int = 128) -> dict[str, np.ndarray]:
    """Descriptors scaled to dlib's typical norm (~1.46 on real faces)."""
    rng = np.random.default_rng(1)
    embedding = rng.standard_normal((N, dim)).astype(np.float32)
    embedding *= 1.46 / np.linalg.norm(embedding, axis=1, keepdims=True)
    return {"sample_id": np.array([f"clip{i:03d}" for i in range(N)]), "embedding": embedding,
            "landmarks": rng.uniform(50, 170, (N, 68, 2)).astype(np.float32)}


def failed_columns(outcome: ValidationOutcome) -> set[str]:
    """Columns named by the failure lines ('<expectation type> <column>: ...')."""
    return {line.split()[1].rstrip(":") for line in outcome.failures}


def check_sample_shard(validator: ShardValidator, arrays: dict[str, np.ndarray]) -> ValidationOutcome:
    return validator.validate("sample_shard", sample_shard_frame(arrays), "shard-00000.npz")


def test_good_sample_shard_passes(validator):
    outcome = check_sample_shard(validator, sample_arrays())
    assert outcome.success, outcome.failures
    assert outcome.failures == [] and outcome.kind == "sample_shard" and outcome.name == "shard-00000.npz"


def test_frame_is_computed_from_the_arrays():
    frame = sample_shard_frame(sample_arrays())
    assert len(frame) == N
    assert frame["duration_s"].eq(SECONDS).all()
    assert frame["audio_rms"].between(0.14, 0.15).all()  # a sine of amplitude 0.2 has RMS 0.2/√2
    assert frame["face_size"].eq(120).all() and frame["frame_box_inside"].all()


def test_good_feature_shard_passes(validator):
    outcome = validator.validate("feature_shard", feature_shard_frame(feature_arrays()), "features-00000.npz")
    assert outcome.success, outcome.failures


def test_wrong_sample_rate_fails(validator):
    arrays = sample_arrays()
    arrays["sample_rate"] = np.array(22050)
    outcome = check_sample_shard(validator, arrays)
    assert not outcome.success and "sample_rate" in failed_columns(outcome)
    assert any("22050" in line for line in outcome.failures)


def test_silent_audio_fails(validator):
    arrays = sample_arrays()
    arrays["audio"][2] = 0
    outcome = check_sample_shard(validator, arrays)
    assert not outcome.success and failed_columns(outcome) == {"audio_rms"}
    assert any("1 of 6 unexpected" in line for line in outcome.failures)


def test_duplicate_sample_id_fails(validator):
    arrays = sample_arrays()
    arrays["sample_id"][4] = arrays["sample_id"][0]
    outcome = check_sample_shard(validator, arrays)
    assert not outcome.success and failed_columns(outcome) == {"sample_id"}
    assert any("clip000" in line for line in outcome.failures)


def test_empty_sample_id_counts_as_missing(validator):
    arrays = sample_arrays()
    arrays["sample_id"][1] = ""
    outcome = check_sample_shard(validator, arrays)
    assert any(line.startswith("expect_column_values_to_not_be_null sample_id") for line in outcome.failures)


def test_face_box_outside_the_frame_fails(validator):
    arrays = sample_arrays()
    arrays["frame_box"][3] = [250, 60, 370, 180]  # right edge 370 > frame width 320
    outcome = check_sample_shard(validator, arrays)
    assert not outcome.success and failed_columns(outcome) == {"frame_box_inside"}


def test_too_small_face_fails(validator):
    arrays = sample_arrays()
    arrays["frame_box"][0] = [100, 100, 140, 180]  # 40 px wide in the frame < min_face_size 60
    outcome = check_sample_shard(validator, arrays)
    assert not outcome.success and failed_columns(outcome) == {"face_size"}


def test_blank_face_crop_fails(validator):
    arrays = sample_arrays()
    arrays["face"][5] = 128
    outcome = check_sample_shard(validator, arrays)
    assert not outcome.success and failed_columns(outcome) == {"face_pixel_std"}


def test_nan_embedding_fails(validator):
    arrays = feature_arrays()
    arrays["embedding"][1, 7] = np.nan
    outcome = validator.validate("feature_shard", feature_shard_frame(arrays), "features-00000.npz")
    assert not outcome.success and "embedding_finite" in failed_columns(outcome)


def test_wrong_embedding_dimension_fails(validator):
    outcome = validator.validate("feature_shard", feature_shard_frame(feature_arrays(dim=64)), "features-00000.npz")
    assert not outcome.success and failed_columns(outcome) == {"embedding_dim"}


def test_degenerate_embedding_norm_fails(validator):
    arrays = feature_arrays()
    arrays["embedding"][0] = 0.0
    outcome = validator.validate("feature_shard", feature_shard_frame(arrays), "features-00000.npz")
    assert failed_columns(outcome) == {"embedding_norm"}


def test_raw_manifest_with_bad_id_and_face_position_fails(validator):
    manifest = pd.DataFrame({"sample_id": ["a1", "-bad id", "c3"], "clip": ["a.mp4", "b.mp4", "c.mp4"],
                             "speaker": ["x", "y", "z"], "face_x": [0.5, 1.7, None], "face_y": [0.4, 0.5, None]})
    outcome = validator.validate("raw_manifest", manifest, "manifest.csv")
    assert not outcome.success and failed_columns(outcome) == {"sample_id", "face_x"}
    assert any("-bad id" in line for line in outcome.failures) and any("1.7" in line for line in outcome.failures)


def test_raw_manifest_without_face_positions_passes(validator):
    manifest = pd.DataFrame({"sample_id": ["a1", "b.2"], "clip": ["a.mp4", "b.mp4"], "speaker": ["x", "y"]})
    outcome = validator.validate("raw_manifest", manifest, "manifest.csv")
    assert outcome.success, outcome.failures


def test_missing_array_is_named():
    arrays = sample_arrays()
    del arrays["frame_box"]
    with pytest.raises(ValueError, match="frame_box"):
        sample_shard_frame(arrays)


def test_unknown_kind_is_named(validator):
    with pytest.raises(ValueError, match="sample_shards"):
        validator.validate("sample_shards", pd.DataFrame(), "x")


def test_written_result_loads_back(validator, tmp_path):
    arrays = sample_arrays()
    arrays["audio"][:] = 0
    outcome = check_sample_shard(validator, arrays)
    write_result(outcome, tmp_path / "validation" / "shard-00000.json")
    loaded = json.loads((tmp_path / "validation" / "shard-00000.json").read_text())
    assert loaded["success"] is False and loaded["failures"] == outcome.failures
    assert loaded["result"]["success"] is False and len(loaded["result"]["results"]) > 0


def test_the_verdict_is_byte_identical_across_runs_and_keeps_what_failed(validator, tmp_path):
    """GX stamps each result with fresh UUIDs and times; the verdict (what goes inside DVC outputs) must not."""
    from s2f.validation import write_verdict

    arrays = sample_arrays()
    arrays["audio"][:] = 0
    for name in ("a", "b"):
        write_verdict(check_sample_shard(validator, arrays), tmp_path / f"{name}.json")
        write_result(check_sample_shard(validator, arrays), tmp_path / f"full-{name}.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert (tmp_path / "full-a.json").read_bytes() != (tmp_path / "full-b.json").read_bytes()  # why it exists
    verdict = json.loads((tmp_path / "a.json").read_text())
    failed = [e for e in verdict["expectations"] if not e["success"]]
    assert verdict["success"] is False and failed and failed[0]["result"]["unexpected_count"] > 0
    assert verdict["statistics"]["unsuccessful_expectations"] == len(failed)


def test_data_docs_show_the_suites(validator, tmp_path):
    check_sample_shard(validator, sample_arrays())
    index = validator.build_data_docs(tmp_path / "docs")
    assert index.name == "index.html" and index.is_file()
    assert suite_name("sample_shard") in index.read_text()
    assert list((tmp_path / "docs" / "validations" / suite_name("sample_shard")).glob("shard-00000.npz/*/*.html"))


def test_raw_manifest_without_sample_id_column_fails(validator):
    outcome = validator.validate("raw_manifest", pd.DataFrame({"clip": ["a.mp4"], "speaker": ["x"]}), "manifest.csv")
    assert not outcome.success and failed_columns(outcome) == {"sample_id"}
    assert "expect_column_to_exist sample_id: column missing" in outcome.failures


def test_data_docs_pages_are_rendered_from_cached_templates(validator, tmp_path, monkeypatch):
    """Every page view (suites, validations, the index) takes its compiled templates from one bytecode cache, and
    a second build compiles nothing anew."""
    import jinja2

    from s2f.io import gx_views

    class CountingCache(jinja2.FileSystemBytecodeCache):
        def __init__(self, directory: str):
            super().__init__(directory)
            self.templates: set[str] = set()
            self.compiled = 0

        def get_bucket(self, environment, name, filename, source):
            self.templates.add(name)
            return super().get_bucket(environment, name, filename, source)

        def dump_bytecode(self, bucket):
            self.compiled += 1
            super().dump_bytecode(bucket)

    cache = CountingCache(str(tmp_path))
    monkeypatch.setattr(gx_views, "_bytecode_cache", lambda: cache)
    check_sample_shard(validator, sample_arrays())
    first = validator.build_data_docs(tmp_path / "first")
    assert {"page.j2", "index_page.j2"} <= cache.templates and cache.compiled >= 10
    compiled = cache.compiled
    second = validator.build_data_docs(tmp_path / "second")
    assert cache.compiled == compiled                    # everything came from the cache
    pages = [sorted(page.relative_to(index.parent).as_posix() for page in index.parent.rglob("*.html"))
             for index in (first, second)]
    assert pages[0] == pages[1] and suite_name("sample_shard") in second.read_text()
