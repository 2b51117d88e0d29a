"""The face path (HOG detection → 224 crop → dlib descriptor and 68 landmarks) on a real photo and real video."""

import numpy as np
import pytest
from skimage import data as skdata

from s2f.config import PreprocessParams
from s2f.faces.detect import FaceBox, crop_face, detect_faces, largest_face
from s2f.faces.features import get_backend, landmarks_68
from s2f.preprocess import Sample, process_clip


def test_astronaut_face_is_found_cropped_and_described():
    image = skdata.astronaut()
    boxes = detect_faces(image, upsample=0, min_score=0.5)
    assert len(boxes) == 1
    box = boxes[0]
    assert 150 < (box.left + box.right) / 2 < 260 and 50 < (box.top + box.bottom) / 2 < 150  # her face, top-centre
    crop, inner = crop_face(image, box, size=224, margin=0.4)
    assert crop.shape == (224, 224, 3) and crop.dtype == np.uint8
    assert 0 <= inner.left < inner.right <= 224 and 0 <= inner.top < inner.bottom <= 224
    descriptor = get_backend("dlib").embed(crop, inner)
    assert descriptor.shape == (128,) and np.isfinite(descriptor).all()
    points = landmarks_68(crop, inner)
    assert points.shape == (68, 2)
    assert (points[:, 0] > inner.left - 10).all() and (points[:, 0] < inner.right + 10).all()


def test_upsampling_false_positive_is_removed_by_the_score_threshold():
    image = skdata.astronaut()
    assert len(detect_faces(image, upsample=1, min_score=0.5)) == 1
    assert len(detect_faces(image, upsample=1, min_score=0.0)) >= 1


def test_unknown_backend_is_named_in_the_error():
    with pytest.raises(ValueError, match="vggfaec"):
        get_backend("vggfaec")


def test_crop_outside_the_frame_is_padded_not_shifted():
    image = np.full((100, 100, 3), 255, np.uint8)
    crop, inner = crop_face(image, FaceBox(0, 0, 40, 40, 1.0), size=224, margin=0.5)
    assert crop[0, 0].tolist() == [0, 0, 0]  # outside the frame: black
    assert abs((inner.left + inner.right) / 2 - 112) <= 1  # the face stays centred


@pytest.mark.parametrize("clip", [
    "clips/pcavs__Audio_Source__00015.mp4",        # 224×224 h264/AAC, 16 kHz
    "clips/grid_lipnet__bbaf2n.mpg",               # MPEG-1/MP2, 44.1 kHz
    "clips/eamm_mead__crop_M030_sad_3_001.mp4",    # 1920×1080, 48 kHz
    "clips/video_retalking__examples_face_2.mp4",  # 44.1 kHz stereo
])
def test_real_clips_become_samples(realsample, clip):
    result = process_clip(realsample / clip, PreprocessParams())
    assert isinstance(result, Sample), getattr(result, "reason", "")
    assert result.audio.shape == (96000,) and result.audio.dtype == np.int16
    assert result.face.shape == (224, 224, 3)
    assert result.stats["audio_rms"] > 1e-3


def test_same_person_descriptors_are_closer_than_different_people(realsample, realsample_manifest):
    """dlib's descriptor on our crops separates real people: same-speaker pairs are nearer than cross-speaker ones."""
    repeated = realsample_manifest.groupby("speaker").filter(lambda g: len(g) >= 2)
    assert repeated["speaker"].nunique() >= 2
    backend, emb, who = get_backend("dlib"), [], []
    for row in repeated.itertuples():
        sample = process_clip(realsample / row.clip, PreprocessParams())
        if isinstance(sample, Sample):
            emb.append(backend.embed(sample.face, FaceBox(*map(int, sample.face_box), 1.0)))
            who.append(row.speaker)
    emb, who = np.array(emb), np.array(who)
    dist = np.linalg.norm(emb[:, None] - emb[None], axis=-1)
    same = dist[(who[:, None] == who[None]) & ~np.eye(len(who), dtype=bool)]
    other = dist[who[:, None] != who[None]]
    assert len(same) >= 4
    assert same.max() < 0.6 <= other.min()  # dlib's own same-person threshold separates them all


def test_largest_face_picks_the_biggest_box():
    small, big = FaceBox(0, 0, 10, 10, 2.0), FaceBox(0, 0, 50, 40, 0.6)
    assert largest_face([small, big]) == big
    assert largest_face([]) is None
