"""Worker checkouts and the DVC publish step, on a toy DVC project and a folder remote (real git, real DVC)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from s2f.orchestration.checkout import CheckoutError, resolve_commit, worker_checkout
from s2f.orchestration.dvc_stage import parse_repro, publish, repro
from tests.tiny_repo import commit_all, run, tool_env

DVC_YAML = """stages:
  make:
    cmd: python make.py
    deps: [make.py]
    outs: [out]
    metrics:
      - metrics.json:
          cache: false
"""
MAKE = "import json, os\nos.makedirs('out', exist_ok=True)\nopen('out/x', 'w').write('1')\n" \
       "json.dump({'made': 1}, open('metrics.json', 'w'))\nprint('MADE')\n"


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    repo = tmp_path / "origin"
    repo.mkdir()
    (repo / "dvc.yaml").write_text(DVC_YAML)
    (repo / "make.py").write_text(MAKE)
    run(["git", "init", "-q"], repo)
    run([sys.executable, "-m", "dvc", "init", "-q"], repo)
    commit_all(repo, "toy")
    monkeypatch.setenv("PATH", tool_env()["PATH"])
    monkeypatch.setenv("S2F_DVC_REMOTE", str(tmp_path / "remote"))
    return repo


def test_resolve_commit_fixes_a_ref_and_rejects_an_unknown_one(project):
    head = run(["git", "rev-parse", "HEAD"], project).stdout.strip()
    assert resolve_commit(str(project), "HEAD") == head
    with pytest.raises(CheckoutError, match="no ref 'nope'"):
        resolve_commit(str(project), "nope")


def test_concurrent_runs_get_separate_checkouts(project, tmp_path):
    head = resolve_commit(str(project))
    with worker_checkout(str(project), head, tmp_path / "home") as first:
        with worker_checkout(str(project), head, tmp_path / "home") as second:
            assert first != second and (first / "dvc.yaml").is_file() and (second / "dvc.yaml").is_file()
    with worker_checkout(str(project), head, tmp_path / "home", slots=1):
        with pytest.raises(CheckoutError, match="in use"):
            with worker_checkout(str(project), head, tmp_path / "home", slots=1):
                pass


def test_a_stage_published_by_one_worker_is_restored_by_another_with_its_metrics(project, tmp_path):
    head = resolve_commit(str(project))
    with worker_checkout(str(project), head, tmp_path / "worker-a") as a:
        report, _ = repro(a, "make")
        assert report.ran == ["make"]
        publish(a)
    with worker_checkout(str(project), head, tmp_path / "worker-b") as b:
        report, output = repro(b, "make")
        assert report.ran == [] and report.restored == ["make"], output
        assert (b / "metrics.json").read_text() == '{"made": 1}'   # the cache: false output came back too


def test_parse_repro_reads_what_dvc_did():
    text = ("Stage 'download' is cached - skipping run, checking out outputs\n"
            "Stage 'features' didn't change, skipping\nRunning stage 'evaluate':\n")
    report = parse_repro("evaluate", text)
    assert (report.restored, report.unchanged, report.ran) == (["download"], ["features"], ["evaluate"])


def test_a_checkout_without_any_remote_is_refused(project, tmp_path, monkeypatch):
    monkeypatch.delenv("S2F_DVC_REMOTE")
    with pytest.raises(CheckoutError, match="S2F_DVC_REMOTE is not set"):
        with worker_checkout(str(project), resolve_commit(str(project)), tmp_path / "home"):
            pass
