import pytest

from s2f.config import ParamsError, load_section
from tests.conftest import ROOT


def test_project_params_are_valid():
    for section in ("data", "preprocess", "features", "train_decoder", "train_encoder", "evaluate"):
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
