"""Generated-face metrics on real faces shrunk to a generator's output size: a perfect generator's images must be
detected, and embed to the person they show; blank or noise images must not be detected."""

import numpy as np
import pytest

from s2f.config import PreprocessParams
from s2f.faces.detect import FaceBox, detect_faces
from s2f.faces.features import get_backend
from s2f.faces.generated import detection_ratio, embed_generated, generated_face_box, upscale
from s2f.preprocess import Sample, process_clip


@pytest.fixture(scope="module")
def real_crops(realsample, realsample_manifest):
    """Preprocessed 224 crops (as training sees them) of every speaker with two clips plus 12 others (cheap clips)."""
    m = realsample_manifest
    repeated = m.duplicated("speaker", keep=False)
    singles = m[~repeated & m["clip"].str.startswith(("clips/grid", "clips/pcavs"))].head(12)
    faces, boxes, speakers = [], [], []
    for row in [*m[repeated].itertuples(), *singles.itertuples()]:
        sample = process_clip(realsample / row.clip, PreprocessParams())
        assert isinstance(sample, Sample), (row.clip, getattr(sample, "reason", ""))
        faces.append(sample.face)
        boxes.append(FaceBox(*map(int, sample.face_box), 1.0))
        speakers.append(row.speaker)
    return np.stack(faces), boxes, np.array(speakers)


@pytest.mark.parametrize("size", [64, 128])
def test_real_faces_at_generator_size_are_all_detected(real_crops, size):
    faces, _, _ = real_crops
    out = detection_ratio(upscale(faces, size))
    assert out == {"detected": len(faces), "images": len(faces), "ratio": 1.0}


def test_grey_and_noise_images_are_not_faces():
    rng = np.random.default_rng(0)
    greys = np.stack([np.full((64, 64, 3), value, np.uint8) for value in (0, 128, 255)])
    images = np.concatenate([greys, rng.integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)])
    assert detection_ratio(images) == {"detected": 0, "images": 8, "ratio": 0.0}


def test_a_face_cut_off_by_the_frame_is_found_but_not_counted(real_crops):
    """Framed by the detector's own box, the chin and jaw leave the image: HOG still fires, the landmarks do not fit."""
    faces, boxes, _ = real_crops
    b = boxes[0]
    tight = upscale(np.ascontiguousarray(faces[:, b.top:b.bottom, b.left:b.right]), 160)
    found = sum(bool(detect_faces(img, upsample=0, min_score=0.0)) for img in tight)
    assert found >= 0.8 * len(tight)
    assert detection_ratio(tight)["ratio"] < 0.3


def test_the_generated_face_box_is_where_preprocessing_put_the_face(real_crops):
    """crop_face centres the detector's box and scales its longer side to 1/(1 + 2·margin) of the crop."""
    _, boxes, _ = real_crops
    expected = generated_face_box(224, PreprocessParams().crop_margin)
    assert (expected.left, expected.top, expected.right, expected.bottom) == (50, 50, 174, 174)
    for b in boxes:
        assert abs((b.left + b.right) / 2 - 112) <= 1 and abs((b.top + b.bottom) / 2 - 112) <= 1
        assert max(b.width, b.height) == expected.width == expected.height


def test_a_64px_face_embeds_nearest_to_the_same_person(real_crops):
    """Each 64 px face is more cosine-similar to the full-size crops of its own person (the same clip, and another
    clip of the same speaker) than to any other person's crop."""
    faces, boxes, speakers = real_crops
    backend = get_backend("dlib")
    full = np.stack([backend.embed(face, box) for face, box in zip(faces, boxes)])    # (N, 128)
    small = embed_generated(upscale(faces, 64), backend)                               # (N, 128)
    assert small.shape == full.shape and small.dtype == np.float32
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    cos = unit(small) @ unit(full).T                                                   # (N, N)
    same = speakers[:, None] == speakers[None]
    nearest_other = np.where(same, -np.inf, cos).max(axis=1)                           # (N,)
    assert (np.diag(cos) > nearest_other).all()
    other_clip = same & ~np.eye(len(faces), dtype=bool)
    assert other_clip.sum() >= 8                                                       # 4 speakers with 2 clips
    rows, cols = np.nonzero(other_clip)
    assert (cos[rows, cols] > nearest_other[rows]).all()
