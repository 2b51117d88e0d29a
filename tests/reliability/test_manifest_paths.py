"""A clip manifest cannot pull files from elsewhere on the machine into data/raw (where `dvc push` uploads them):
paths that resolve outside the manifest's folder, symlinks included, fail the manifest unless their folder is in
data.local.allowed_roots (`s2f ingest --allow-root`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from s2f.config import LocalSourceParams
from s2f.sources.local import fetch_local
from s2f.stages import download
from tests.conftest import ROOT

PASSWD = "../" * 16 + "etc/passwd"  # resolves to /etc/passwd from any folder


@pytest.fixture
def corpus(tmp_path: Path, realsample: Path) -> Path:
    """tmp/corpus/clips/a.mp4 (a real clip) and, beside the corpus, tmp/outside/{secret,other}.mp4."""
    clip, other = sorted((realsample / "clips").glob("*.mp4"))[:2]
    (tmp_path / "corpus" / "clips").mkdir(parents=True)
    shutil.copy(clip, tmp_path / "corpus" / "clips" / "a.mp4")
    (tmp_path / "outside").mkdir()
    shutil.copy(clip, tmp_path / "outside" / "secret.mp4")
    shutil.copy(other, tmp_path / "outside" / "other.mp4")
    return tmp_path / "corpus"


def _manifest(corpus: Path, *rows: str, header: str = "clip,speaker") -> Path:
    path = corpus / "manifest.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _fetch(manifest: Path, out: Path, copy: bool = True, roots: tuple[str, ...] = ()):
    return fetch_local(LocalSourceParams(kind="manifest", manifest=str(manifest), copy_clips=copy,
                                         allowed_roots=list(roots)), out)


@pytest.mark.parametrize("copy", [True, False])
def test_a_row_escaping_the_manifest_folder_fails_the_manifest(tmp_path, corpus, copy):
    manifest = _manifest(corpus, "clips/a.mp4,s1", f"{PASSWD},s2", "../../../../etc/group,s3")
    with pytest.raises(ValueError, match=rf"^{manifest}: 2 media paths resolve outside {corpus}.*row 1 clip "
                                         rf"'{PASSWD}' → /etc/passwd; row 2 clip '\.\./\.\./\.\./\.\./etc"):
        _fetch(manifest, tmp_path / "raw", copy=copy)
    assert not (tmp_path / "raw" / "clips").exists()  # nothing was copied, not even the good row


def test_an_image_column_escaping_is_refused_too(tmp_path, corpus):
    manifest = _manifest(corpus, "clips/a.mp4,s1,/etc/passwd", header="clip,speaker,image")
    with pytest.raises(ValueError, match=r"row 0 image '/etc/passwd' → /etc/passwd"):
        _fetch(manifest, tmp_path / "raw")
    assert not (tmp_path / "raw" / "clips" / "etc").exists()


def test_a_symlink_leading_outside_counts_as_outside(tmp_path, corpus):
    (corpus / "clips" / "link.mp4").symlink_to(tmp_path / "outside" / "secret.mp4")
    manifest = _manifest(corpus, "clips/a.mp4,s1", "clips/link.mp4,s2")
    with pytest.raises(ValueError, match=rf"row 1 clip 'clips/link\.mp4' → {tmp_path / 'outside' / 'secret.mp4'}"):
        _fetch(manifest, tmp_path / "raw")


def test_inside_paths_absolute_or_relative_and_s3_are_fine(tmp_path, corpus):
    manifest = _manifest(corpus, "r0,clips/a.mp4,s1", f"r1,{corpus / 'clips' / 'a.mp4'},s2",
                         "r2,clips/../clips/a.mp4,s3", "r3,s3://bucket/clips/b.mp4,s4", header="sample_id,clip,speaker")
    placed = _fetch(manifest, tmp_path / "raw")
    assert placed["clip"].iloc[0] == "clips/a.mp4" and placed["clip"].iloc[3] == "s3://bucket/clips/b.mp4"
    assert all((tmp_path / "raw" / c).is_file() for c in placed["clip"][:3])


def test_allowed_roots_admit_a_named_folder(tmp_path, corpus):
    manifest = _manifest(corpus, "clips/a.mp4,s1", "../outside/secret.mp4,s2")
    placed = _fetch(manifest, tmp_path / "raw", roots=(str(tmp_path / "outside"),))
    copied = tmp_path / "raw" / placed["clip"].iloc[1]
    assert copied.read_bytes() == (tmp_path / "outside" / "secret.mp4").read_bytes()
    with pytest.raises(ValueError, match=r"row 2 clip"):  # a root admits its folder, not the rest of the machine
        _fetch(_manifest(corpus, "clips/a.mp4,s1", "../outside/secret.mp4,s2", f"{PASSWD},s3"),
               tmp_path / "raw2", roots=(str(tmp_path / "outside"),))


def test_the_download_stage_refuses_such_a_manifest(tmp_path, corpus):
    manifest = _manifest(corpus, "clips/a.mp4,s1", f"{PASSWD},s2")
    params = tmp_path / "params.yaml"
    params.write_text(f"data:\n  source: local\n  local: {{kind: manifest, manifest: {manifest}, copy_clips: true}}\n")
    with pytest.raises(SystemExit, match=rf"{manifest}: 1 media paths resolve outside .*row 1 clip '{PASSWD}'"):
        download.main(["--params", str(params), "--out", str(tmp_path / "raw"), "--work", str(tmp_path / "work")])
    assert not (tmp_path / "raw" / "clips" / "etc").exists()


def _ingest(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "s2f.cli", "ingest", "--workers", "1", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_ingest_refuses_then_accepts_with_allow_root(tmp_path, corpus):
    manifest = _manifest(corpus, "../outside/secret.mp4,s1", "../outside/other.mp4,s2")  # a split needs 2
    refused = _ingest("--manifest", str(manifest), "--out", str(tmp_path / "o1"))
    assert refused.returncode != 0 and "Traceback" not in refused.stderr, refused.stderr[-2000:]
    assert f"{manifest}: 2 media paths resolve outside" in refused.stderr and "--allow-root" in refused.stderr
    allowed = _ingest("--manifest", str(manifest), "--out", str(tmp_path / "o2"), "--allow-root",
                      str(tmp_path / "outside"))
    assert allowed.returncode == 0, allowed.stderr[-2000:]
    assert "of 2 clips accepted" in allowed.stdout, allowed.stdout[-2000:]
