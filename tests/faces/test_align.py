import numpy as np
import pytest

from s2f.faces.align import align_faces, mean_shape, to_normalized, to_pixels
from s2f.models.face_decoder import default_shape

SIZE = 64
BASE = default_shape(68).numpy() * SIZE - 0.5          # (68, 2) pixels: a well-spread 68-point "face", radius ~19 px
MARKED = (5, 40, 67)                                   # landmarks drawn as dots, one per colour channel
# shift (px) and scale of each synthetic face; medians are 0 shift and scale 1, so the mean shape is BASE itself
MOVES = [((0, 0), 1.0), ((3, -2), 0.9), ((-3, 2), 1.1), ((2, 3), 1.05), ((-2, -3), 0.95)]


def moved(shift: tuple[float, float], scale: float) -> np.ndarray:
    centre = BASE.mean(0)
    return (centre + scale * (BASE - centre) + np.asarray(shift)).astype(np.float32)


def draw(points: np.ndarray, size: int = SIZE, sigma: float = 1.2) -> np.ndarray:
    """A black (size, size, 3) uint8 image with a Gaussian dot at each MARKED landmark, in its own channel."""
    yy, xx = np.mgrid[:size, :size]
    image = np.zeros((size, size, 3))
    for channel, i in enumerate(MARKED):
        x, y = points[i]
        image[..., channel] = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return (image * 255).round().astype(np.uint8)


def centroids(texture: np.ndarray) -> np.ndarray:
    """(3, S, S) → (3, 2) intensity-weighted (x, y) pixel centroid of each channel."""
    yy, xx = np.mgrid[: texture.shape[1], : texture.shape[2]]
    w = texture / texture.sum((1, 2), keepdims=True)
    return np.stack([(w * xx).sum((1, 2)), (w * yy).sum((1, 2))], -1)


def test_pixel_and_normalized_coordinates_round_trip():
    pts = np.array([[0.0, 0.0], [63.0, 31.5]])
    np.testing.assert_allclose(to_normalized(pts, SIZE), [[0.5 / 64, 0.5 / 64], [63.5 / 64, 32 / 64]])
    np.testing.assert_allclose(to_pixels(to_normalized(pts, SIZE), SIZE), pts)


def test_mean_shape_undoes_shift_and_scale_and_ignores_bad_faces():
    faces = np.stack([moved(*m) for m in MOVES])
    rng = np.random.default_rng(0)
    garbage = np.stack([BASE[rng.permutation(68)] for _ in range(2)]).astype(np.float32)  # failed fits: points
    # in the right place and scale but scrambled; a plain mean would put every landmark near the face's centre
    broken = np.full((1, 68, 2), np.nan, np.float32)
    mean = mean_shape(np.concatenate([faces, garbage, broken]), SIZE)
    assert mean.shape == (68, 2) and mean.dtype == np.float32
    assert np.abs(to_pixels(mean, SIZE) - BASE).max() < 0.1


def test_mean_shape_refuses_pixels_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"\(N, L, 2\)"):
        mean_shape(np.zeros((68, 2)), SIZE)


@pytest.mark.parametrize("size", [SIZE, 32])
def test_align_faces_moves_landmarks_onto_the_mean_shape(size):
    faces = np.stack([moved(*m) for m in MOVES])
    images = np.stack([draw(f) for f in faces])
    mean = to_normalized(BASE, SIZE).astype(np.float32)
    textures, landmarks = align_faces(images, faces, mean, size, batch_size=2)
    assert textures.shape == (len(MOVES), 3, size, size) and textures.dtype == np.float32
    assert 0 <= textures.min() and textures.max() <= 1
    np.testing.assert_allclose(landmarks, to_normalized(faces, SIZE), atol=1e-6)
    want = to_pixels(mean[list(MARKED)], size)               # (3, 2): where each dot must be in the texture
    for texture in textures:
        assert np.abs(centroids(texture) - want).max() < 0.5  # pixels of the texture
    # the moved faces really were off the mean shape before alignment (the test could fail)
    before = np.abs(to_pixels(landmarks[:, list(MARKED)], size) - want).max()
    assert before > 2 * size / SIZE
