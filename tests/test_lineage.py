"""The code a result depends on is derived, not listed by hand: import closures, `dvc.yaml` deps, fingerprints."""

from __future__ import annotations

from pathlib import Path

import yaml

from s2f.lineage import closure_hash, import_closure, relative_closure
from tests.conftest import ROOT


def _stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _covered(path: str, deps: list[str]) -> bool:
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


def test_every_stage_depends_on_its_whole_import_closure():
    """A change to any module a stage loads must make DVC rerun it (the review found `features` without
    s2f/dataset.py and s2f/io/checkpoints.py, `evaluate` without s2f/training/encoder.py)."""
    missing = {}
    for name, stage in _stages().items():
        stage = stage.get("do", stage)  # a foreach stage (train_gan@<family>) is defined under `do:`
        module = f"s2f.stages.{name}"
        assert module in stage["cmd"], f"{name}: cmd does not run {module}"
        deps = [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]
        gaps = [f for f in relative_closure(module) if not _covered(f, deps)]
        if gaps:
            missing[name] = gaps
    assert not missing, (f"dvc.yaml deps miss files the stages import: {missing}; "
                         "run `.venv/bin/python scripts/update_dvc_deps.py`")


def test_closure_follows_function_level_and_relative_imports():
    closure = relative_closure("s2f.preprocess")
    assert "s2f/validation.py" in closure  # imported inside ShardWriter's methods only
    assert "s2f/io/media.py" in closure and "s2f/__init__.py" in closure
    assert "s2f/demo/corpus.py" not in closure  # reading a manifest does not load the fetchers
    assert import_closure("s2f.stages.download")[0].name == "__init__.py"


def test_the_preprocess_fingerprint_hashes_every_file_of_its_closure(monkeypatch):
    """A changed validation suite must redo shards (their verdicts are published with them): the fingerprint is
    the hash of the closure's files, so changing validation.py's text changes it."""
    from s2f.preprocess import code_fingerprint

    before = code_fingerprint()
    assert before == closure_hash("s2f.preprocess")
    validation = ROOT / "s2f" / "validation.py"
    real_read = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes",
                        lambda self: real_read(self) + (b"# a changed suite" if self == validation else b""))
    assert code_fingerprint() != before


def test_an_unknown_module_is_refused():
    import pytest

    with pytest.raises(ValueError, match="not a module"):
        relative_closure("s2f.nope")


def test_the_stages_that_load_a_gan_import_its_model_code():
    """`load_model` imports the GAN wrapper by name (so GAN code stays out of every other stage's deps); a stage
    that loads one must import it itself, or a change to it would not rerun the stage."""
    for stage in ("train_gan", "evaluate", "register"):
        assert "s2f/models/voice_to_face.py" in relative_closure(f"s2f.stages.{stage}"), stage
    for stage in ("features", "train_decoder", "train_encoder"):
        assert "s2f/models/wen2019.py" not in relative_closure(f"s2f.stages.{stage}"), stage
