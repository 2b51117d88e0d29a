"""The logged pyfuncs for real: a temporary SQLite registry, `mlflow models serve` of `speech2face@champion` on
127.0.0.1, real clips' audio over HTTP, bad inputs answered 4xx with their reason, and `s2f infer` on the alias."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from s2f.io.http import wait_until_answers
from s2f.inference import Speech2Face, b64encode, decode_audio
from s2f.stages import infer
from tests.s3_server import free_port
from tests.serving import IMAGE_SIZE, REAL_CLIP, audio_bytes, extract_wav, tiny_models, tone

BIN = Path(sys.executable).parent   # the venv's bin: `mlflow models serve` execs `uvicorn` from PATH


@dataclass
class Registry:
    uri: str
    encoder: Path
    decoder: Path
    models: dict[str, str]     # "speech2face" | "voice_encoder" | "face_decoder" → model URI
    voice: Path                # a real clip's audio track, as extracted by ffmpeg (44.1 kHz stereo WAV)


@pytest.fixture(scope="module")
def registry(tmp_path_factory, realsample) -> Iterator[Registry]:
    """The three models logged in one run of a fresh SQLite store; speech2face version 1 is @champion."""
    import mlflow

    from s2f.serving.log import log_face_decoder, log_speech2face, log_voice_encoder

    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root / 'mlruns.db'}"
    encoder, decoder = tiny_models(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")
        mlflow.set_tracking_uri(uri)
        try:
            mlflow.set_experiment(experiment_id=mlflow.create_experiment(
                "serving", artifact_location=(root / "mlartifacts").as_uri()))
            with mlflow.start_run():
                composite = log_speech2face(encoder, decoder, registered_model_name="speech2face")
                models = {"speech2face": composite.model_uri, "voice_encoder": log_voice_encoder(encoder).model_uri,
                          "face_decoder": log_face_decoder(decoder).model_uri}
            mlflow.MlflowClient().set_registered_model_alias("speech2face", "champion",
                                                             composite.registered_model_version)
            yield Registry(uri, encoder, decoder, models, extract_wav(realsample / REAL_CLIP, root / "voice.wav"))
        finally:
            mlflow.set_tracking_uri(None)   # back to the environment's (restored by the context) for later tests


@pytest.fixture(scope="module")
def server(registry, tmp_path_factory) -> Iterator[str]:
    """`mlflow models serve -m models:/speech2face@champion` in its own process group; its URL once /ping is 200."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "serve.log"
    env = {**os.environ, "MLFLOW_TRACKING_URI": registry.uri, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(BIN / "mlflow"), "models", "serve", "-m", "models:/speech2face@champion",
                                 "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, proc, log)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_until_up(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    if wait_until_answers(f"{url}/ping", timeout, gave_up=lambda: proc.poll() is not None):
        return
    if proc.poll() is not None:
        pytest.fail(f"mlflow models serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
    pytest.fail(f"mlflow models serve not up after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def invoke(url: str, audio: list[str]) -> tuple[int, dict]:
    """POST the documented request body; (HTTP status, JSON body)."""
    body = json.dumps({"dataframe_split": {"columns": ["audio"], "data": [[a] for a in audio]}}).encode()
    request = urllib.request.Request(f"{url}/invocations", body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def png_image(text: str) -> np.ndarray:
    image = Image.open(io.BytesIO(base64.b64decode(text)))
    assert image.format == "PNG"
    return np.asarray(image)


def test_served_champion_draws_a_face_for_a_real_voice(server, registry):
    status, body = invoke(server, [b64encode(registry.voice.read_bytes())])
    assert status == 200, body
    (prediction,) = body["predictions"]
    face = png_image(prediction["face"])
    assert face.shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
    local = Speech2Face.from_files(registry.encoder, registry.decoder, "cpu")
    np.testing.assert_allclose(face.astype(int), local.face(decode_audio(registry.voice.read_bytes())), atol=1)


@pytest.mark.parametrize("audio, reason", [
    (b64encode(b"this is not a sound file"), "not_audio"),
    ("%%% not base64 %%%", "not_audio"),
    ("", "empty"),
    (b64encode(audio_bytes(np.zeros(0, np.float32), 16_000)), "empty"),
    (b64encode(audio_bytes(tone(31.0, 8_000), 8_000)), "too_long"),
    (b64encode(audio_bytes(tone(0.4, 16_000), 16_000)), "too_short"),
    # 2 s of 8 silent channels at 655 kHz: 10 KB on the wire, 42 MB as float32 if it were decoded
    (b64encode(audio_bytes(np.zeros((2 * 655_000, 8), np.float32), 655_000, "FLAC")), "too_large"),
])
def test_bad_audio_is_a_400_naming_its_reason(server, audio, reason):
    good = b64encode(audio_bytes(tone(1.5, 16_000), 16_000))
    status, body = invoke(server, [good, audio])   # the bad row is named: row 1
    assert status == 400, body
    assert body["error_code"] == "INVALID_PARAMETER_VALUE" and body["reason"] == reason
    assert f"row 1: {reason}" in body["message"]


def test_a_request_without_the_audio_column_is_a_400(server):
    body = json.dumps({"dataframe_split": {"columns": ["voice"], "data": [["x"]]}}).encode()
    request = urllib.request.Request(f"{server}/invocations", body, {"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=30)
    assert err.value.code == 400 and "audio" in err.value.read().decode()


def test_encoder_and_decoder_pyfuncs_compose_to_the_composite(registry):
    import mlflow

    audio = pd.DataFrame({"audio": [b64encode(registry.voice.read_bytes())]})
    feature = mlflow.pyfunc.load_model(registry.models["voice_encoder"]).predict(audio)["feature"][0]
    assert len(feature) == 128 and all(isinstance(x, float) for x in feature)
    decoder = mlflow.pyfunc.load_model(registry.models["face_decoder"])
    face = png_image(decoder.predict(pd.DataFrame({"feature": [feature]}))["face"][0])
    composite = mlflow.pyfunc.load_model(registry.models["speech2face"]).predict(audio)
    np.testing.assert_array_equal(face, png_image(composite["face"][0]))
    with pytest.raises(mlflow.exceptions.MlflowException, match="row 0: bad_feature") as err:
        decoder.predict(pd.DataFrame({"feature": [[0.0] * 7]}))
    assert err.value.get_http_status_code() == 400 and err.value.json_kwargs["reason"] == "bad_feature"


def test_logged_models_carry_no_pickle_and_pinned_requirements(registry):
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(registry.models["speech2face"]))
    mlmodel = (local / "MLmodel").read_text()
    assert "loader_module: mlflow.pyfunc.loaders.code_model" in mlmodel and "python_model.pkl" not in mlmodel
    assert not list(local.rglob("*.pkl"))
    assert (local / "code" / "s2f" / "inference.py").is_file()
    assert {p.name for p in (local / "artifacts").rglob("model.*")} == {"model.pt", "model.json"}
    requirements = (local / "requirements.txt").read_text().split()
    assert {r.split("==")[0] for r in requirements} >= {"mlflow", "torch", "soundfile", "scipy", "pillow"}


def test_infer_cli_writes_one_face_from_the_champion(registry, tmp_path, capsys):
    infer.main([str(registry.voice), "-o", str(tmp_path / "face.png")])
    assert png_image(b64encode((tmp_path / "face.png").read_bytes())).shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
    assert "wrote" in capsys.readouterr().out


def test_infer_cli_folder_skips_a_bad_file_and_fails_at_the_end(registry, tmp_path, capsys):
    voices = tmp_path / "voices"
    voices.mkdir()
    (voices / "real.wav").write_bytes(registry.voice.read_bytes())
    (voices / "tone.flac").write_bytes(audio_bytes(tone(2.0, 48_000), 48_000, "FLAC"))
    (voices / "broken.wav").write_bytes(b"not a wav at all")
    (voices / "notes.txt").write_text("ignored: not an audio file name")
    with pytest.raises(SystemExit) as exit_:
        infer.main([str(voices), "-o", str(tmp_path / "faces")])
    assert exit_.value.code == 1
    assert sorted(p.name for p in (tmp_path / "faces").iterdir()) == ["real.png", "tone.png"]
    out, err = capsys.readouterr()
    assert "broken.wav: not_audio" in err and "2 of 3 faces written" in out


def test_infer_cli_with_local_files_and_a_missing_model(registry, tmp_path, capsys):
    infer.main([str(registry.voice), "-o", str(tmp_path / "local.png"),
                "--encoder", str(registry.encoder), "--decoder", str(registry.decoder)])
    assert (tmp_path / "local.png").is_file()
    with pytest.raises(SystemExit, match="cannot load models:/nope@champion"):
        infer.main([str(registry.voice), "-o", str(tmp_path / "x.png"), "--model-uri", "models:/nope@champion"])
    with pytest.raises(SystemExit, match="is not a Speech2Face composite"):
        infer.main([str(registry.voice), "-o", str(tmp_path / "x.png"),
                    "--model-uri", registry.models["voice_encoder"]])
