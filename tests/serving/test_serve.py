"""The logged pyfuncs for real: a temporary SQLite registry, `mlflow models serve` of `speech2face@champion` on
127.0.0.1, real clips' audio over HTTP, bad inputs answered 4xx with their reason, and `s2f infer` on the alias."""

from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from s2f.inference import Speech2Face, b64encode, decode_audio
from s2f.stages import infer
from tests.serving import IMAGE_SIZE, REAL_CLIP, audio_bytes, extract_wav, tiny_models, tone


@dataclass
class Registry:
    uri: str
    encoder: Path
    decoder: Path
    models: dict[str, str]     # "speech2face" | "voice_encoder" | "face_decoder" → model URI
    voice: Path                # a real clip's audio track, as extracted by ffmpeg (44.1 kHz stereo WAV)


@pytest.fixture(scope="module")
def registry(tracking_store, realsample) -> Registry:
    """The three models logged in one run of a fresh SQLite store; speech2face version 1 is @champion."""
    import mlflow

    from s2f.serving.log import log_face_decoder, log_speech2face, log_voice_encoder

    root = tracking_store.root
    encoder, decoder = tiny_models(root)
    with mlflow.start_run():
        composite = log_speech2face(encoder, decoder, registered_model_name="speech2face")
        models = {"speech2face": composite.model_uri, "voice_encoder": log_voice_encoder(encoder).model_uri,
                  "face_decoder": log_face_decoder(decoder).model_uri}
    client = mlflow.MlflowClient()
    client.set_registered_model_alias("speech2face", "champion", composite.registered_model_version)
    client.set_model_version_tag("speech2face", composite.registered_model_version, "data.source", "demo")  # as register
    return Registry(tracking_store.uri, encoder, decoder, models, extract_wav(realsample / REAL_CLIP,
                                                                              root / "voice.wav"))


@pytest.fixture(scope="module")
def server(registry, serve) -> str:
    """`mlflow models serve -m models:/speech2face@champion`; its URL once /ping is 200."""
    return serve("models:/speech2face@champion", registry.uri)


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
    out, err = capsys.readouterr()
    assert "wrote" in out
    assert "speech2face v1 was trained on the synthetic demo corpus" in err  # its `data.source` tag says so


def test_infer_cli_takes_a_video_and_uses_its_audio(registry, realsample, tmp_path, capsys):
    video = next(p for p in sorted((realsample / "clips").glob("*.mp4")))
    infer.main([str(video), "-o", str(tmp_path / "from_video.png")])
    assert png_image(b64encode((tmp_path / "from_video.png").read_bytes())).shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
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
