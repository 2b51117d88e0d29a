"""Craniofacial measures: invariant to where and how big the face is; dlib's landmarks on real and canonical faces."""

import numpy as np
import pytest
from PIL import Image

from s2f.faces.craniofacial import (MEASUREMENTS, canonical_box, craniofacial_correlation, landmarks_of_faces,
                                    measure)
from s2f.faces.detect import crop_face, detect_faces, largest_face
from s2f.io.media import read_frames


@pytest.fixture(scope="module")
def real_crops(realsample):
    """224 crops (and their face boxes) of two real speakers, cut the way preprocessing cuts them (margin 0.4)."""
    crops, boxes = [], []
    for clip in ["clips/grid_lipnet__bbaf2n.mpg", "clips/eamm_mead__crop_M030_sad_3_001.mp4"]:
        (_, frame), = read_frames(realsample / clip, 1, 1.0)
        box = largest_face(detect_faces(frame, upsample=1))
        assert box is not None, clip
        crop, inner = crop_face(frame, box, size=224, margin=0.4)
        crops.append(crop)
        boxes.append([inner.left, inner.top, inner.right, inner.bottom])
    return np.stack(crops), np.array(boxes)


def _face_like(n: int, seed: int) -> np.ndarray:
    """Plausible 68-point layouts: a real face's landmarks jittered, (n, 68, 2)."""
    rng = np.random.default_rng(seed)
    base = np.array(MEAN_FACE, float)
    return base + rng.normal(0, 2.0, (n, 68, 2))


def test_measures_are_invariant_to_translation_scale_and_rotation():
    lm = _face_like(5, 0)
    angle = 0.3
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = 3.7 * lm @ rot.T + np.array([120.0, -40.0])
    a, b = measure(lm), measure(moved)
    assert set(a) == set(MEASUREMENTS) and len(a) >= 8
    for name in MEASUREMENTS:
        assert a[name].shape == (5,)
        np.testing.assert_allclose(a[name], b[name], rtol=1e-9, err_msg=name)


def test_measures_see_what_they_name():
    lm = _face_like(1, 1)
    wide_nose = lm.copy()
    wide_nose[:, 31, 0] -= 5
    wide_nose[:, 35, 0] += 5
    before, after = measure(lm), measure(wide_nose)
    assert after["nose_width"][0] > before["nose_width"][0] and after["nasal_index"][0] > before["nasal_index"][0]
    assert after["mouth_width"][0] == before["mouth_width"][0] and after["face_width"][0] == before["face_width"][0]
    long_chin = lm.copy()
    long_chin[:, 8, 1] += 10
    assert measure(long_chin)["lower_face_height"][0] > before["lower_face_height"][0]


def test_measure_rejects_the_wrong_shape():
    with pytest.raises(ValueError, match="68"):
        measure(np.zeros((2, 5, 2)))


def test_correlation_of_a_face_set_with_itself_is_one_and_with_a_shuffle_is_low():
    lm = _face_like(200, 2)
    same = craniofacial_correlation(lm, lm)
    assert all(r == pytest.approx(1.0) for r in same.values())
    shuffled = craniofacial_correlation(lm, lm[np.random.default_rng(0).permutation(200)])
    assert all(abs(r) < 0.3 for r in shuffled.values())


def test_canonical_box_is_where_crop_face_puts_the_face():
    box = canonical_box(224, margin=0.4)
    assert (box.left, box.top, box.right, box.bottom) == (50, 50, 174, 174)
    assert canonical_box(64, margin=0.0).width == 64


def test_landmarks_of_a_real_face_crop(real_crops):
    crops, boxes = real_crops
    given = landmarks_of_faces(crops, boxes)
    canonical = landmarks_of_faces(crops)  # no boxes: the fixed box a margin-0.4 crop leaves the face in
    assert given.shape == (2, 68, 2) and given.dtype == np.float32
    assert (given > 0).all() and (given < 224).all()
    for lm, box in zip(given, boxes):
        left, top, right, bottom = box
        eyes_y, chin_y, mouth_y = lm[36:48, 1].mean(), lm[8, 1], lm[48:60, 1].mean()
        assert top < eyes_y < mouth_y < chin_y < bottom + 0.25 * (bottom - top)  # eyes above mouth above chin
        assert lm[36:42, 0].mean() < lm[42:48, 0].mean()                       # right eye on the image's left
    assert np.abs(given - canonical).max() < 6  # real crops' boxes are (nearly) the canonical one
    values = measure(given)
    assert 0.3 < values["nasal_index"].min() and values["nasal_index"].max() < 1.2
    assert 1.5 < values["face_width"].min() and values["face_width"].max() < 3.5


def test_small_images_are_upscaled_and_landmarks_come_back_in_their_pixels(real_crops):
    crops, _ = real_crops
    small = np.stack([np.asarray(Image.fromarray(c).resize((64, 64), Image.Resampling.BILINEAR)) for c in crops])
    full, tiny = landmarks_of_faces(crops), landmarks_of_faces(small)
    assert (tiny >= 0).all() and (tiny < 64).all()
    assert np.abs(tiny - full * 64 / 224).max() < 3  # the same points, in the 64 px image's coordinates
    with pytest.raises(ValueError, match="uint8"):
        landmarks_of_faces(small.astype(np.float32))


# dlib's 68 landmarks of the GRID speaker's 224 crop above (rounded): a real frontal layout for the synthetic tests.
MEAN_FACE = [
    (49, 91), (51, 108), (53, 125), (55, 142), (61, 157), (71, 170), (84, 180), (100, 186), (117, 188), (134, 185),
    (148, 177), (159, 165), (165, 151), (167, 134), (167, 118), (167, 101), (167, 85), (60, 72), (66, 63), (77, 60),
    (89, 61), (100, 64), (121, 63), (131, 60), (142, 59), (153, 62), (159, 71), (111, 78), (112, 89), (112, 99),
    (113, 111), (100, 124), (107, 124), (113, 125), (119, 124), (125, 123), (72, 81), (79, 77), (87, 77), (95, 83),
    (87, 85), (78, 85), (126, 83), (133, 76), (141, 76), (148, 80), (142, 84), (133, 84), (91, 149), (100, 146),
    (108, 144), (114, 145), (120, 143), (129, 145), (138, 147), (130, 153), (122, 156), (116, 157), (110, 157),
    (101, 155), (95, 149), (109, 148), (115, 149), (121, 148), (134, 147), (121, 150), (115, 151), (109, 151),
]
