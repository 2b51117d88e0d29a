"""A GAN family served and inferred like the composite: its pyfunc logged to a temporary SQLite registry as
`wav2pix@champion`, `mlflow models serve -m models:/wav2pix@champion` on 127.0.0.1 answering real audio with a PNG of
the family's size (and bad audio with the composite's 4xx reasons), the pyfunc round trip, `s2f infer --model wav2pix`
and `s2f infer --gan FILE`. One tiny family only: the other is served by the same code."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from s2f.inference import GanFaces, b64encode, decode_audio
from s2f.stages import infer
from tests.serving import REAL_CLIP, audio_bytes, extract_wav, tiny_gan, tone
from tests.serving.test_serve import invoke, png_image

FAMILY = "wav2pix"
URI = f"models:/{FAMILY}@champion"


@dataclass
class Registry:
    uri: str
    model: Path                # the family's FAMILY.pt (FAMILY.json beside it)
    local: GanFaces            # the same model loaded from the file, on the CPU
    voice: Path                # a real clip's audio track (44.1 kHz stereo WAV)


@pytest.fixture(scope="module")
def registry(tracking_store, realsample) -> Registry:
    """The family logged and registered as `wav2pix` version 1, aliased @champion, in a fresh SQLite store."""
    import mlflow

    from s2f.serving.log import log_voice_to_face

    root = tracking_store.root
    model = tiny_gan(root, FAMILY)
    with mlflow.start_run():
        info = log_voice_to_face(model, FAMILY, registered_model_name=FAMILY)
    mlflow.MlflowClient().set_registered_model_alias(FAMILY, "champion", info.registered_model_version)
    return Registry(tracking_store.uri, model, GanFaces.from_file(model, "cpu"),
                    extract_wav(realsample / REAL_CLIP, root / "voice.wav"))


@pytest.fixture(scope="module")
def server(registry, serve) -> str:
    """`mlflow models serve -m models:/wav2pix@champion`; its URL once /ping is 200."""
    return serve(URI, registry.uri)


def test_served_family_draws_a_face_of_its_size_for_a_real_voice(server, registry):
    status, body = invoke(server, [b64encode(registry.voice.read_bytes())])
    assert status == 200, body
    (prediction,) = body["predictions"]
    face = png_image(prediction["face"])
    size = registry.local.image_size
    assert face.shape == (size, size, 3)
    np.testing.assert_allclose(face.astype(int), registry.local.face(decode_audio(registry.voice.read_bytes())),
                               atol=1)


def test_served_family_refuses_bad_audio_with_the_composites_reasons(server):
    good = b64encode(audio_bytes(tone(1.5, 16_000), 16_000))
    status, body = invoke(server, [good, b64encode(audio_bytes(tone(0.4, 16_000), 16_000))])
    assert status == 400, body
    assert body["error_code"] == "INVALID_PARAMETER_VALUE" and body["reason"] == "too_short"
    assert "row 1: too_short" in body["message"]


def test_the_pyfunc_round_trip_repeats_short_clips_to_6_seconds(registry):
    """Logged, loaded back through the registry alias, predicted: the local model's faces, short clips repeated."""
    import mlflow

    short = tone(2.0, 16_000, 300.0)
    clips = [audio_bytes(short, 16_000), audio_bytes(np.tile(short, 3), 16_000), registry.voice.read_bytes()]
    faces = mlflow.pyfunc.load_model(URI).predict(pd.DataFrame({"audio": [b64encode(c) for c in clips]}))["face"]
    images = [png_image(face) for face in faces]
    np.testing.assert_array_equal(images[0], images[1])                 # 2 s = itself three times
    expected = registry.local.faces([decode_audio(c) for c in clips])
    for image, local in zip(images, expected):
        np.testing.assert_allclose(image.astype(int), local.astype(int), atol=1)


def test_logged_family_carries_no_pickle_and_its_weights_as_artifacts(registry):
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(URI))
    mlmodel = (local / "MLmodel").read_text()
    assert "loader_module: mlflow.pyfunc.loaders.code_model" in mlmodel and not list(local.rglob("*.pkl"))
    assert {p.relative_to(local / "artifacts").as_posix() for p in (local / "artifacts").rglob("model.*")} == {
        "model/model.pt", "model/model.json"}
    assert (local / "code" / "s2f" / "serving" / "voice_to_face_model.py").is_file()


def test_infer_cli_with_a_family_champion_and_with_its_local_file(registry, tmp_path, capsys):
    infer.main([str(registry.voice), "-o", str(tmp_path / "champion.png"), "--model", FAMILY])
    infer.main([str(registry.voice), "-o", str(tmp_path / "local.png"), "--gan", str(registry.model)])
    size = registry.local.image_size
    champion, local = (png_image(b64encode((tmp_path / f"{name}.png").read_bytes())) for name in ("champion", "local"))
    assert champion.shape == (size, size, 3)
    np.testing.assert_allclose(champion.astype(int), local.astype(int), atol=1)
    assert capsys.readouterr().out.count("wrote") == 2
    with pytest.raises(SystemExit, match="cannot load models:/wen2019@champion"):   # never registered here
        infer.main([str(registry.voice), "-o", str(tmp_path / "x.png"), "--model", "wen2019"])


@pytest.mark.parametrize("args", [["--model", FAMILY, "--gan", "x.pt"], ["--model", FAMILY, "--model-uri", URI],
                                  ["--gan", "x.pt", "--encoder", "e.pt", "--decoder", "d.pt"]])
def test_infer_takes_one_model_source(args, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        infer.parse([str(tmp_path), "-o", str(tmp_path / "faces"), *args])
    assert exit_.value.code == 2 and "give one of --model, --model-uri, --encoder/--decoder or --gan" in \
        capsys.readouterr().err
