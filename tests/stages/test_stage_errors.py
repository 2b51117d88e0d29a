import sys

import pytest

from s2f.stages import preprocess


def test_bad_params_end_the_stage_with_the_key_named(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("preprocess:\n  seconds: lots\n")
    with pytest.raises(SystemExit, match=r"preprocess\.seconds"):
        preprocess.main(["--params", str(params), "--raw", str(tmp_path), "--out", str(tmp_path / "out")])


def test_all_clips_rejected_is_a_clear_failure(tmp_path):
    raw = tmp_path / "raw"
    (raw / "clips").mkdir(parents=True)
    (raw / "clips" / "a.mp4").write_bytes(b"not a video")
    (raw / "manifest.csv").write_text("sample_id,clip,speaker\na,clips/a.mp4,s1\n")
    (tmp_path / "params.yaml").write_text("preprocess:\n  workers: 1\n")
    with pytest.raises(SystemExit, match="all 1 clips were rejected"):
        preprocess.main(["--raw", str(raw), "--out", str(tmp_path / "out"), "--summary", str(tmp_path / "s.json"),
                         "--params", str(tmp_path / "params.yaml")])


@pytest.mark.parametrize("name", ["train_decoder", "train-decoder"])
def test_the_s2f_command_takes_the_stage_name_in_both_spellings(name, capsys):
    from s2f import cli

    program = sys.argv[0]
    with pytest.raises(SystemExit) as ended:
        cli.main([name, "--help"])
    assert ended.value.code == 0
    assert capsys.readouterr().out.startswith("usage: s2f train-decoder ")   # the command, not a bare "s2f"
    assert sys.argv[0] == program                                            # put back for whoever called it


def test_a_partition_outside_the_param_is_named(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "manifest.csv").write_text("sample_id,clip,speaker\na,a.mp4,s1\n")
    (tmp_path / "params.yaml").write_text("preprocess:\n  partitions: [0, 1]\n")
    with pytest.raises(SystemExit, match="partition 2 does not exist: there are 2"):
        preprocess.main(["--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "out"), "--partition", "2",
                         "--params", str(tmp_path / "params.yaml")])


def test_gather_names_the_partition_that_has_not_run(tmp_path):
    from s2f.stages import gather

    (tmp_path / "params.yaml").write_text("preprocess:\n  partitions: [0, 1]\nfeatures: {}\n")
    with pytest.raises(SystemExit, match=r"gather: partition parts not found .*parts/0"):
        gather.main(["--params", str(tmp_path / "params.yaml"), "--pre-parts", str(tmp_path / "parts"),
                     "--feature-parts", str(tmp_path / "fparts")])
