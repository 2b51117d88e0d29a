"""Local corpora: a clip manifest, a folder of videos, VoxCeleb audio joined with VGGFace photos by identity."""

import shutil

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from s2f.config import LocalSourceParams, PreprocessParams
from s2f.preprocess import preprocess_corpus
from s2f.sources.local import fetch_local, from_folder, from_voxceleb, voxceleb_identities
from tests.conftest import ROOT, ffmpeg

META = ROOT.parent / "shared" / "data" / "metadata"


def test_realsample_manifest_is_copied_under_the_output(tmp_path, realsample):
    params = LocalSourceParams(kind="manifest", manifest=str(realsample / "manifest.csv"))
    manifest = fetch_local(params, tmp_path)
    assert len(manifest) == 33 and manifest["speaker"].nunique() == 29
    assert manifest["sample_id"].is_unique
    assert all((tmp_path / c).is_file() for c in manifest["clip"])  # relative to the output, so DVC versions them


def test_manifest_without_copying_points_at_the_media(tmp_path, realsample):
    params = LocalSourceParams(kind="manifest", manifest=str(realsample / "manifest.csv"), copy_clips=False)
    manifest = fetch_local(params, tmp_path)
    assert all(c.startswith("/") and (realsample / "clips").resolve().as_posix() in c for c in manifest["clip"])
    assert not (tmp_path / "clips").exists()


def test_manifest_without_the_required_columns_is_named(tmp_path):
    (tmp_path / "m.csv").write_text("path,who\na.mp4,x\n")
    with pytest.raises(ValueError, match=r"m\.csv.*clip and speaker"):
        fetch_local(LocalSourceParams(kind="manifest", manifest=str(tmp_path / "m.csv")), tmp_path / "out")


def test_folder_speaker_is_the_first_subfolder(tmp_path, demo_clips):
    raw_dir, manifest = demo_clips
    for i, clip in enumerate(manifest["clip"][:3]):
        target = tmp_path / "vids" / ("alice" if i < 2 else "bob") / f"yt{i}" / "00001.mp4"
        target.parent.mkdir(parents=True)
        shutil.copy(raw_dir / clip, target)
    shutil.copy(raw_dir / manifest["clip"].iloc[3], tmp_path / "vids" / "loose.mp4")
    found = from_folder(tmp_path / "vids")
    assert dict(zip(found["sample_id"], found["speaker"])) == {
        "alice__yt0__00001": "alice", "alice__yt1__00001": "alice", "bob__yt2__00001": "bob", "loose": "loose"}


@pytest.mark.parametrize("meta", ["vox1_meta.csv", "vox2_meta.csv"])
def test_both_voxceleb_metadata_layouts_are_read(meta):
    ids = voxceleb_identities(META / meta)
    assert len(ids) > 1000 and ids["speaker"].str.fullmatch(r"id\d{5}").all()
    assert set(ids["gender"].dropna()) == {"m", "f"}


def test_voxceleb_audio_joins_vggface_photos_and_becomes_samples(tmp_path, demo_clips):
    """VoxCeleb1 layout + VGGFace1 names: each utterance is paired with a photo of its speaker, then preprocessed."""
    raw_dir, manifest = demo_clips
    audio, photos = tmp_path / "vox" / "wav", tmp_path / "vggface"
    people = {"id10001": "A.J._Buckley", "id10002": "A.R._Rahman"}  # rows of the real vox1_meta.csv
    face = skdata.astronaut()
    for n, (vox_id, name) in enumerate(people.items()):
        for k in range(2):
            wav = audio / vox_id / f"video{k}" / "00001.wav"
            wav.parent.mkdir(parents=True)
            ffmpeg("-i", str(raw_dir / manifest["clip"].iloc[2 * n + k]), "-vn", "-ac", "1", "-ar", "16000", str(wav))
        (photos / name).mkdir(parents=True)
        Image.fromarray(np.roll(face, 20 * n, axis=1)).save(photos / name / "0001.jpg")
    (audio / "id10003").mkdir()  # an identity with audio but no photos is skipped, not an error
    found = from_voxceleb(audio, photos, META / "vox1_meta.csv")
    assert sorted(found["speaker"].unique()) == ["id10001", "id10002"] and len(found) == 4
    assert (found["gender"] == "m").all()
    assert found.groupby("speaker")["image"].nunique().eq(1).all()
    accepted, quarantined = preprocess_corpus(found, tmp_path, tmp_path / "pre", PreprocessParams(), workers=1)
    assert len(accepted) == 4, quarantined.to_dict("records")
    assert (accepted["frame_width"] == 512).all()  # the face came from the photo, not from a video frame
