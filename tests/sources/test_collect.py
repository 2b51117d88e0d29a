"""Download partitions (`download@K`), collected, give byte for byte the raw corpus one unpartitioned download
writes; AVSpeech partitions each fetch only their segments, with their own ledger."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from s2f.stages import collect, download
from tests.sources.test_avspeech import VID, Server, ledger_rows, params, server, write_csv  # noqa: F401

DEMO = {"source": "demo", "workers": 1,
        "demo": {"speakers": 3, "clips_per_speaker": 2, "min_seconds": 1.0, "max_seconds": 1.5, "seed": 3}}


def _tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _params(tmp_path: Path, data: dict, count: int) -> str:
    path = tmp_path / f"params-{count}.yaml"
    path.write_text(yaml.safe_dump({"data": {**data, "partitions": list(range(count))}}))
    return str(path)


def _download_in_partitions(tmp_path: Path, data: dict, count: int) -> Path:
    for k in range(count):
        download.main(["--params", _params(tmp_path, data, count), "--partition", str(k),
                       "--out", str(tmp_path / "parts" / str(k)), "--work", str(tmp_path / "work" / str(k))])
    collect.main(["--params", _params(tmp_path, data, count), "--parts", str(tmp_path / "parts"),
                  "--out", str(tmp_path / "raw"), "--work", str(tmp_path / "work")])
    return tmp_path / "raw"


def test_collected_demo_partitions_equal_one_download(tmp_path):
    download.main(["--params", _params(tmp_path, DEMO, 1), "--out", str(tmp_path / "whole"),
                   "--work", str(tmp_path / "whole-work")])
    raw = _download_in_partitions(tmp_path, DEMO, 2)
    assert sorted(p.name for p in (tmp_path / "parts" / "1" / "clips").iterdir()) == ["spk001_00.mp4",
                                                                                     "spk001_01.mp4"]
    expected = _tree(tmp_path / "whole")
    assert len(expected) == 6 + 2  # clips, manifest, its verdict
    assert _tree(raw) == expected


def test_each_avspeech_partition_fetches_its_own_segments_with_its_own_ledger(tmp_path, server):  # noqa: F811
    rows = [f"{VID},{s},{s + 2},0.5,0.5" for s in (1, 3, 5)]
    data = {"source": "avspeech", "avspeech": params(write_csv(tmp_path / "av.csv", rows),
                                                     server.url + "/{youtube_id}.mp4").model_dump()}
    raw = _download_in_partitions(tmp_path, data, 2)
    assert sorted(ledger_rows(tmp_path / "work" / "0")) == [f"yt{VID}_1000_3000", f"yt{VID}_5000_7000"]
    assert sorted(ledger_rows(tmp_path / "work" / "1")) == [f"yt{VID}_3000_5000"]
    manifest = (raw / "manifest.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in manifest[1:]] == [f"yt{VID}_{s}000_{s + 2}000" for s in (1, 3, 5)]
    summary = json.loads((raw / "fetch_summary.json").read_text())
    assert (summary["segments"], summary["done"], len(summary["partitions"])) == (3, 3, 2)


def test_a_missing_partition_is_named(tmp_path):
    with pytest.raises(SystemExit, match=r"collect: download partitions not found .*parts/1"):
        (tmp_path / "parts" / "0").mkdir(parents=True)
        (tmp_path / "parts" / "0" / "manifest.csv").write_text("sample_id,clip,speaker,source_row\n")
        collect.main(["--params", _params(tmp_path, DEMO, 2), "--parts", str(tmp_path / "parts"),
                      "--out", str(tmp_path / "raw")])
