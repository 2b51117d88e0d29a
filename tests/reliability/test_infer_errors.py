"""`s2f infer` with an output it cannot write: one line naming the path and the reason, a non-zero exit, no
traceback, and no model loaded or voice decoded first (the check comes before the work).

Tests run as root, where a read-only mode does not stop writes; a path under a regular FILE cannot be created by
anyone, so that is the unwritable destination used here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.serving import audio_bytes, tiny_models, tone


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("infer")
    encoder, decoder = tiny_models(root)
    voices = root / "voices"
    voices.mkdir()
    (voices / "voice.wav").write_bytes(audio_bytes(tone(2.0, 16_000), 16_000))
    (root / "notes.txt").write_text("a regular file, so nothing can be created under it")
    return {"root": root, "encoder": encoder, "decoder": decoder, "voice": voices / "voice.wav", "voices": voices,
            "file": root / "notes.txt"}


def infer(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    """The real command line, `python -m s2f.cli infer ...`, in its own process: exit status and stderr as seen."""
    return subprocess.run([sys.executable, "-m", "s2f.cli", "infer", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def assert_one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("infer: "), proc.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


@pytest.mark.parametrize("target, reason", [
    ("file/face.png", "is a file, not a folder"),         # the PNG's folder would have to be made under a file
    ("file/deeper/face.png", "is a file, not a folder"),
    ("voices", "is a folder"),                            # a PNG cannot replace a folder
])
def test_a_file_input_with_an_unwritable_output_fails_in_one_line_before_any_work(setup, target, reason):
    out = setup["file"] / target.removeprefix("file/") if target.startswith("file/") else setup[target]
    # weights that do not exist: had the model been loaded first, this would fail on them instead
    proc = infer(setup["voice"], "-o", out, "--encoder", setup["root"] / "missing_encoder.pt",
                 "--decoder", setup["root"] / "missing_decoder.pt", cwd=setup["root"])
    assert_one_line_error(proc, str(out), reason)


def test_a_file_input_with_real_weights_and_an_output_under_a_file_fails_in_one_line(setup):
    out = setup["file"] / "face.png"
    proc = infer(setup["voice"], "-o", out, "--encoder", setup["encoder"], "--decoder", setup["decoder"],
                 cwd=setup["root"])
    assert_one_line_error(proc, str(out), "is a file, not a folder")


def test_a_folder_input_with_an_output_folder_under_a_file_fails_in_one_line(setup):
    out = setup["file"] / "faces"
    proc = infer(setup["voices"], "-o", out, "--encoder", setup["encoder"], "--decoder", setup["decoder"],
                 cwd=setup["root"])
    assert_one_line_error(proc, str(setup["file"]), "is a file, not a folder")
    assert setup["file"].is_file()


def test_a_folder_input_whose_output_is_a_file_fails_in_one_line(setup):
    proc = infer(setup["voices"], "-o", setup["file"], "--encoder", setup["encoder"], "--decoder", setup["decoder"],
                 cwd=setup["root"])
    assert_one_line_error(proc, str(setup["file"]), "is a file, not a folder")


def test_a_writable_output_still_gets_its_face(setup):
    out = setup["root"] / "new" / "dir" / "face.png"
    proc = infer(setup["voice"], "-o", out, "--encoder", setup["encoder"], "--decoder", setup["decoder"],
                 cwd=setup["root"])
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes().startswith(b"\x89PNG")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full (every write: no space left)")
def test_a_write_that_fails_during_the_run_is_one_line_too(setup):
    """/dev/full passes the check (it exists and may be opened for writing) but every write fails: a full disk."""
    proc = infer(setup["voice"], "-o", "/dev/full", "--encoder", setup["encoder"], "--decoder", setup["decoder"],
                 cwd=setup["root"])
    assert_one_line_error(proc, "cannot write /dev/full", "No space left on device")


def test_a_gan_model_with_an_unwritable_output_fails_in_one_line_before_loading_it(setup):
    out = setup["file"] / "face.png"
    proc = infer(setup["voice"], "-o", out, "--gan", setup["root"] / "missing_gan.pt", cwd=setup["root"])
    assert_one_line_error(proc, str(out), "is a file, not a folder")


def test_a_gan_option_given_another_models_file_fails_in_one_line(setup):
    proc = infer(setup["voice"], "-o", setup["root"] / "gan.png", "--gan", setup["encoder"], cwd=setup["root"])
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"s2f infer: {setup['encoder']}: a VoiceEncoder model, not a GAN family's audio → face model (VoiceToFace)"]
