"""VGG-Face backend: the keras-vggface weight layout, strict loading, and features on a real face crop.

No real weights ship with the repo (and nothing is downloaded), so the tests build a narrow VGG-Face, write it in the
public file's layout, and check what a user would: a round trip is exact, Keras's own Keras-2 HDF5 reader agrees with
ours on the file, a wrong or damaged file names the layer, and the backend gives finite fc7 features of a real face.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from s2f.faces.detect import crop_face, detect_faces, largest_face
from s2f.faces.features import get_backend
from s2f.faces.vggface import (MEAN_BGR, VggFaceBackend, VggFaceConfig, build_vggface, load_vggface_weights,
                               preprocess, save_vggface_weights)
from s2f.io.media import read_frames

NARROW = VggFaceConfig(width=1 / 16, fc_dim=64, classes=10)
CLIP = "clips/sadtalker_hdtf__WDA_KatieHill_000.mp4"  # one clear frontal face, 512×512


@pytest.fixture(scope="module")
def narrow(tmp_path_factory):
    """A narrow VGG-Face with seeded random weights, and its keras-vggface-layout weight file."""
    import keras

    keras.utils.set_random_seed(0)
    model = build_vggface(NARROW)
    path = tmp_path_factory.mktemp("vggface") / "narrow_vggface_tf_vgg16.h5"
    save_vggface_weights(model, path)
    return model, path


@pytest.fixture(scope="module")
def face(realsample):
    """A real face: one frame of a real clip, cropped to 224 as preprocessing does, and its box in the crop."""
    (_, frame), = read_frames(realsample / CLIP, count=1, span=1.0)
    box = largest_face(detect_faces(frame))
    assert box is not None
    return crop_face(frame, box, size=224, margin=0.4)


def images(seed: int, n: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 60, (n, 224, 224, 3)).astype(np.float32)  # (N, 224, 224, 3)


def test_file_has_the_keras_vggface_layout(narrow):
    _, path = narrow
    with h5py.File(path, "r") as f:
        assert [n.decode() for n in f.attrs["layer_names"]][:3] == ["conv1_1", "conv1_2", "conv2_1"]
        assert [n.decode() for n in f["conv1_1"].attrs["weight_names"]] == ["conv1_1/kernel:0", "conv1_1/bias:0"]
        assert f["conv1_1/conv1_1/kernel:0"].shape == (3, 3, 3, 4)
        assert f["fc6/fc6/kernel:0"].shape == (7 * 7 * 32, 64)
        assert f["fc8/fc8/bias:0"].shape == (10,)


def test_saved_weights_load_back_exactly_and_keras_reads_them_the_same(narrow):
    from keras.src.legacy.saving.legacy_h5_format import load_weights_from_hdf5_group_by_name

    model, path = narrow
    x = images(1)
    fc7, fc8 = (np.asarray(t) for t in model(x))
    assert fc7.shape == (2, 64) and fc8.shape == (2, 10) and (fc7 >= 0).all() and fc7.any()

    ours = build_vggface(NARROW)
    assert not np.allclose(np.asarray(ours(x)[1]), fc8)  # fresh random weights differ ...
    load_vggface_weights(ours, path)
    for got, want in zip(ours(x), (fc7, fc8)):
        np.testing.assert_array_equal(np.asarray(got), want)  # ... until loaded

    keras_reader = build_vggface(NARROW)  # Keras's own reader for Keras 2 weight files, by layer name
    with h5py.File(path, "r") as f:
        load_weights_from_hdf5_group_by_name(f, keras_reader)
    np.testing.assert_array_equal(np.asarray(keras_reader(x)[1]), fc8)


def test_a_file_laid_out_like_the_public_one_loads(narrow, tmp_path):
    """The public file also lists weightless layers (input, pools, flatten, `fc6/relu`, ...) with no weights."""
    model, path = narrow
    public = tmp_path / "rcmalli_vggface_tf_vgg16.h5"
    shutil.copy(path, public)
    extra = ["input_1", "pool1", "pool5", "flatten", "fc6/relu", "fc7/relu", "fc8/softmax"]
    with h5py.File(public, "a") as f:
        names = [n.decode() for n in f.attrs["layer_names"]]
        f.attrs["layer_names"] = np.array([n.encode() for n in ["input_1", *names, *extra[1:]]])
        for name in extra:
            f.create_group(name).attrs["weight_names"] = np.array([], "S1")
    loaded = build_vggface(NARROW)
    load_vggface_weights(loaded, public)
    np.testing.assert_array_equal(np.asarray(loaded(images(2))[0]), np.asarray(model(images(2))[0]))


def test_a_file_of_another_width_fails_naming_the_layer_and_shapes(tmp_path):
    wider = tmp_path / "wider.h5"
    save_vggface_weights(build_vggface(VggFaceConfig(width=1 / 8, fc_dim=64, classes=10)), wider)
    target = build_vggface(NARROW)
    before = np.asarray(target.get_layer("fc8").kernel).copy()
    with pytest.raises(ValueError, match=r"wider\.h5: layer 'conv1_1' kernel has shape \(3, 3, 3, 8\), "
                                         r"expected \(3, 3, 3, 4\)"):
        load_vggface_weights(target, wider)
    np.testing.assert_array_equal(np.asarray(target.get_layer("fc8").kernel), before)  # nothing half-loaded


def test_a_damaged_file_fails_naming_the_layer(narrow, tmp_path):
    _, path = narrow
    wrong, missing, cut = tmp_path / "wrong.h5", tmp_path / "missing.h5", tmp_path / "cut.h5"
    for copy in (wrong, missing):
        shutil.copy(path, copy)
    with h5py.File(wrong, "a") as f:  # one kernel replaced by one of another shape
        del f["conv3_2/conv3_2/kernel:0"]
        f["conv3_2"].create_dataset("conv3_2/kernel:0", data=np.zeros((3, 3, 16, 15), np.float32))
    with h5py.File(missing, "a") as f:  # the identity layer gone
        del f["fc8"]
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # a download stopped halfway

    model = build_vggface(NARROW)
    with pytest.raises(ValueError, match=r"wrong\.h5: layer 'conv3_2' kernel has shape \(3, 3, 16, 15\), "
                                         r"expected \(3, 3, 16, 16\)"):
        load_vggface_weights(model, wrong)
    with pytest.raises(ValueError, match=r"missing\.h5: layer 'fc8' is missing"):
        load_vggface_weights(model, missing)
    with pytest.raises(ValueError, match=r"cut\.h5 cannot be opened as HDF5 .*truncated"):
        load_vggface_weights(model, cut)


def test_a_missing_file_is_named_with_where_to_read_more(tmp_path):
    absent = tmp_path / "rcmalli_vggface_tf_vgg16.h5"
    with pytest.raises(FileNotFoundError, match=r"rcmalli_vggface_tf_vgg16\.h5.*docs/face_backends\.md"):
        get_backend("vggface", weights=absent)
    with pytest.raises(ValueError, match=r"features\.vggface_weights.*docs/face_backends\.md"):
        get_backend("vggface")
    with pytest.raises(FileNotFoundError, match=str(absent)):
        load_vggface_weights(build_vggface(NARROW), absent)


def test_preprocessing_is_keras_vggface_version_1():
    rgb = np.zeros((1, 224, 224, 3), np.uint8)
    rgb[..., :] = (200, 100, 50)  # R, G, B
    out = preprocess(rgb)
    assert out.dtype == np.float32 and out.shape == (1, 224, 224, 3)
    np.testing.assert_allclose(out[0, 0, 0], [50 - 93.5940, 100 - 104.7624, 200 - 129.1863], rtol=1e-6)
    np.testing.assert_array_equal(MEAN_BGR, np.float32([93.5940, 104.7624, 129.1863]))


def test_backend_embeds_a_real_face(narrow, face):
    _, path = narrow
    crop, box = face
    backend = get_backend("vggface", weights=path, config=NARROW)
    assert backend.name == "vggface" and backend.dim == 64 and backend.norm_range[0] < backend.norm_range[1]
    feature = backend.embed(crop, box)
    assert feature.shape == (64,) and feature.dtype == np.float32 and np.isfinite(feature).all()
    assert (feature >= 0).all() and np.linalg.norm(feature) > 0  # fc7 is taken after its ReLU

    batch = backend.embed_batch(np.stack([crop, crop[:, ::-1]]), [box, box])  # the face and its mirror image
    assert batch.shape == (2, 64)
    np.testing.assert_allclose(batch[0], feature, rtol=1e-5, atol=1e-6)

    # what is fed is the face box grown 1.3×: pixels beyond it do not matter, the face does
    outside, inside = crop.copy(), crop.copy()
    outside[:20, :20] = 255
    assert box.left - 0.15 * box.width > 20 and box.top - 0.15 * box.height > 20
    cx, cy = (box.left + box.right) // 2, (box.top + box.bottom) // 2
    inside[cy - 20:cy + 20, cx - 20:cx + 20] = 255
    np.testing.assert_allclose(backend.embed(outside, box), feature, rtol=1e-5, atol=1e-6)
    assert not np.allclose(backend.embed(inside, box), feature, rtol=1e-3, atol=1e-4)


def test_identity_head_is_fc8_in_torch_linear_layout(narrow, face):
    _, path = narrow
    crop, box = face
    backend = VggFaceBackend(path, NARROW)
    weight, bias = backend.identity_head()
    assert weight.shape == (10, 64) and bias.shape == (10,) and weight.dtype == bias.dtype == np.float32
    fc7 = backend.embed_batch([crop], [box])
    np.testing.assert_allclose(backend.logits_batch([crop], [box]), fc7 @ weight.T + bias, rtol=1e-4, atol=1e-5)
    assert VggFaceBackend(path, NARROW).model() is backend.model()  # loaded once per process


def test_the_paper_net_has_the_public_files_shapes():
    shapes = VggFaceConfig().weight_shapes()
    assert list(shapes)[0] == "conv1_1" and list(shapes)[-4:] == ["conv5_3", "fc6", "fc7", "fc8"] and len(shapes) == 16
    assert shapes["conv1_1"] == ((3, 3, 3, 64), (64,)) and shapes["conv5_3"] == ((3, 3, 512, 512), (512,))
    assert shapes["fc6"] == ((25088, 4096), (4096,)) and shapes["fc8"] == ((4096, 2622), (2622,))
    params = sum(np.prod(k) + np.prod(b) for k, b in shapes.values())
    assert params == 145_002_878  # VGG-16's 138,357,544 with 2,622 instead of 1,000 classes
    assert VggFaceBackend.dim == 4096


def test_importing_the_backends_does_not_import_tensorflow():
    code = "import sys, s2f.faces.features; print(sorted({'tensorflow', 'keras', 'h5py'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]"
