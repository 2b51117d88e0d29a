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
