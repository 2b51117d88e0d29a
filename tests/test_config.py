import pytest
import yaml

from s2f.config import SECTIONS, EvaluateParams, ParamsError, clip_length_problem, load_section
from tests.conftest import ROOT


def test_project_params_are_valid():
    for section in SECTIONS:
        load_section(section, ROOT / "params.yaml")


def test_wrong_type_names_the_key(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train_decoder:\n  epochs: many\n")
    with pytest.raises(ParamsError, match=r"train_decoder\.epochs"):
        load_section("train_decoder", path)


def test_misspelt_key_is_an_error(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("preprocess:\n  sampel_rate: 8000\n")
    with pytest.raises(ParamsError, match=r"preprocess\.sampel_rate"):
        load_section("preprocess", path)


def _leaves(tree: object, prefix: str = "") -> dict[str, object]:
    """Every scalar or list under `tree` by its dotted key (lists are values: `ks`, `betas`)."""
    if not isinstance(tree, dict):
        return {prefix: list(tree) if isinstance(tree, tuple) else tree}
    out: dict[str, object] = {}
    for key, value in tree.items():
        out |= _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    return out


def test_every_default_equals_params_yaml():
    """`s2f ingest` without a params file runs on config.py's defaults: they must be what the pipeline runs on."""
    project = _leaves(yaml.safe_load((ROOT / "params.yaml").read_text()))
    defaults = _leaves({name: model().model_dump(mode="json") for name, model in SECTIONS.items()})
    assert set(project) <= set(defaults), f"params.yaml keys config.py lacks: {sorted(set(project) - set(defaults))}"
    disagree = {k: (defaults[k], project[k]) for k in project if defaults[k] != project[k]}
    assert not disagree, "config.py default ≠ params.yaml: " + "; ".join(
        f"{k}: {d!r} ≠ {p!r}" for k, (d, p) in disagree.items())


def test_a_missing_section_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("preproces:\n  sample_rate: 8000\n")
    with pytest.raises(ParamsError, match=r"params\.yaml: no `preprocess` section.*`preproces` \(did you mean"):
        load_section("preprocess", path)


def test_an_unknown_section_beside_the_wanted_one_is_an_error(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("preprocess: {workers: 1}\nevalute: {ks: [1]}\n")
    with pytest.raises(ParamsError, match=r"unknown section `evalute` \(did you mean `evaluate`\?\)"):
        load_section("preprocess", path)


def test_an_empty_section_means_the_defaults(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("evaluate:\n")
    assert load_section("evaluate", path) == EvaluateParams()


def test_a_file_that_is_not_sections_is_named(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("- evaluate\n")
    with pytest.raises(ParamsError, match=r"params\.yaml: expected sections .* got a list"):
        load_section("evaluate", path)


@pytest.mark.parametrize(("text", "message"), [
    ("promote:\n  min_improvement: -0.1\n", r"promote\.min_improvement = -0\.1: Input should be greater than or equal"),
    ("promote:\n  metric: ''\n", r"promote\.metric = '': String should have at least 1 character"),
    ("preprocess:\n  second_face_ratio: 2\n", r"preprocess\.second_face_ratio = 2: .*\(allowed: \(0, 1\]\)"),
    ("train_encoder:\n  betas: [0.5, 1.0]\n", r"train_encoder\.betas\[1\] = 1\.0: .*\(allowed: \[0, 1\)\)"),
    ("train_encoder:\n  lr: .nan\n", r"train_encoder\.lr = nan: Input should be a finite number"),
    ("train_decoder:\n  texture_grid: 7\n  image_size: 64\n", r"train_decoder\.image_size = 64: .* 7, 14, 28"),
    ("data:\n  demo: {min_seconds: 8}\n", r"data\.demo\.max_seconds = 7\.0: must be at least min_seconds \(8\.0\)"),
    ("evaluate:\n  ks: [1, 5]\n  gallery_size: 5\n", r"evaluate\.ks = \[1, 5\]: each K must be below gallery_size"),
])
def test_out_of_range_values_name_key_value_and_range(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match=message):
        load_section(next(iter(yaml.safe_load(text))), path)


def test_allowed_roots_are_absolute_folders(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(f"data:\n  local: {{allowed_roots: [{tmp_path}]}}\n")
    assert load_section("data", path).local.allowed_roots == [str(tmp_path)]


@pytest.mark.parametrize(("seconds", "equal_ok", "problem"), [
    (2.5, True, None), (6.0, True, None), (6.0, False, "must be below the clip length, 6 s"),
    (100.0, True, "must be at most the clip length, 6 s"),
])
def test_clip_length_problem_names_key_and_clip(seconds, equal_ok, problem):
    found = clip_length_problem("evaluate.short_seconds", seconds, 6.0, "p.yaml", equal_ok=equal_ok)
    if problem is None:
        assert found is None
    else:
        assert found.startswith(f"p.yaml: evaluate.short_seconds = {seconds:g}: ") and problem in found
