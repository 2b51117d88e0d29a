"""VGG-Face backend: the keras-vggface weight layout, strict loading, and features on a real face crop.

No real weights ship with the repo (and nothing is downloaded), so the tests build a narrow VGG-Face in Keras (the
network the public file was saved from), write it in the public file's layout, and check what a user would: a round
trip is exact, Keras's own Keras-2 HDF5 reader agrees with ours on the file, the torch backend gives Keras's fc7 and
fc8 on real faces, a wrong or damaged file names the layer, and the backend gives finite fc7 features of a real face.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from s2f.faces import vggface
from s2f.faces.detect import FaceBox, crop_face, detect_faces, largest_face
from s2f.faces.features import get_backend
from s2f.faces.vggface import (MEAN_BGR, VggFaceBackend, VggFaceConfig, build_vggface_net, face_input, load_vggface_net,
                               preprocess, torch_state)
from s2f.faces.vggface_keras import build_vggface, load_vggface_weights, save_vggface_weights
from s2f.io.media import read_frames

NARROW = VggFaceConfig(width=1 / 16, fc_dim=64, classes=10)
CLIP = "clips/sadtalker_hdtf__WDA_KatieHill_000.mp4"  # one clear frontal face, 512×512
# more real faces for the torch-vs-Keras oracle: other people, sizes and sources
ORACLE_CLIPS = (CLIP, "clips/grid_lipnet__bbaf2n.mpg", "clips/pcavs__Input__00010.mp4")
# torch vs Keras, both float32 on the CPU: max |difference| ≤ ORACLE_RTOL × the largest |Keras output| of that layer.
# Relative to scale because the narrow net's outputs are ~0.3, not ~1; measured 3e-7 (fc7) and 8e-7 (fc8), while
# fc6 converted with a plain transpose (the channels-last flatten ignored) is off by ~1 × the scale.
ORACLE_RTOL = 1e-4
BOX = FaceBox(60, 60, 160, 160, 1.0)  # a face box for inputs whose content does not matter


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


@pytest.fixture(scope="module")
def faces(realsample):
    """Real faces of three people: one frame per clip, cropped to 224 as preprocessing does, and their boxes."""
    crops, boxes = [], []
    for clip in ORACLE_CLIPS:
        (_, frame), = read_frames(realsample / clip, count=1, span=1.0)
        box = largest_face(detect_faces(frame))
        assert box is not None, clip
        crop, box = crop_face(frame, box, size=224, margin=0.4)
        crops.append(crop)
        boxes.append(box)
    return crops, boxes


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
    with pytest.raises(ValueError, match=r"wider\.h5: layer 'conv1_1' kernel has shape \(3, 3, 3, 8\), "
                                         r"expected \(3, 3, 3, 4\)"):
        load_vggface_net(wider, NARROW)  # the torch backend's loader: same reader, same message


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
    with pytest.raises(ValueError, match=r"wrong\.h5: layer 'conv3_2' kernel has shape \(3, 3, 16, 15\)"):
        VggFaceBackend(wrong, NARROW, device="cpu").embed(np.zeros((224, 224, 3), np.uint8), BOX)


def test_a_missing_file_is_named_with_where_to_read_more(tmp_path):
    absent = tmp_path / "rcmalli_vggface_tf_vgg16.h5"
    with pytest.raises(FileNotFoundError, match=r"rcmalli_vggface_tf_vgg16\.h5.*docs/face_backends\.md"):
        get_backend("vggface", weights=absent)
    with pytest.raises(ValueError, match=r"features\.vggface_weights.*docs/face_backends\.md"):
        get_backend("vggface")
    with pytest.raises(FileNotFoundError, match=str(absent)):
        load_vggface_weights(build_vggface(NARROW), absent)


def test_fc6_rows_are_reordered_from_keras_channels_last_flatten():
    """Keras flattened pool5 as (row, col, channel), torch flattens (channel, row, col): fc6 must agree on both."""
    rng = np.random.default_rng(3)
    channels = NARROW.conv_channels()[-1][1]
    pool5 = rng.normal(size=(channels, 7, 7)).astype(np.float32)  # (C, 7, 7): torch's layout
    kernel = rng.normal(size=(7 * 7 * channels, 5)).astype(np.float32)  # Keras (7*7*C, out)
    state = torch_state({"fc6": [kernel, np.zeros(5, np.float32)]}, NARROW)
    keras_out = pool5.transpose(1, 2, 0).reshape(-1) @ kernel  # Keras: channels-last flatten
    np.testing.assert_allclose(state["fc6.weight"] @ pool5.reshape(-1), keras_out, rtol=1e-5, atol=1e-4)
    assert not np.allclose(kernel.T @ pool5.reshape(-1), keras_out, atol=1e-2)  # a plain transpose would be wrong


def test_torch_backend_gives_keras_fc7_and_logits_on_real_faces(narrow, faces, monkeypatch):
    """The oracle: the Keras net the file was saved from and the torch backend reading that file, on real faces."""
    model, path = narrow
    crops, boxes = faces
    keras_in = preprocess(np.stack([face_input(c, b) for c, b in zip(crops, boxes)]))  # (3, 224, 224, 3) BGR
    keras_fc7, keras_fc8 = (np.asarray(t) for t in model(keras_in))
    assert (keras_fc7 > 0).mean() > 0.2  # live ReLUs: the comparison is not one of zeros

    monkeypatch.setattr(vggface, "_BATCH", 2)  # three faces: one full batch and one partial
    backend = VggFaceBackend(path, NARROW, device="cpu")
    fc7, fc8 = backend.embed_batch(crops, boxes), backend.logits_batch(crops, boxes)
    for got, want in ((fc7, keras_fc7), (fc8, keras_fc8)):
        assert got.shape == want.shape and got.dtype == np.float32
        worst, scale = np.abs(got - want).max(), np.abs(want).max()
        assert worst <= ORACLE_RTOL * scale, f"max |torch - keras| = {worst:.3g} at output scale {scale:.3g}"


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
    model, path = narrow
    crop, box = face
    backend = VggFaceBackend(path, NARROW)
    weight, bias = backend.identity_head()
    assert weight.shape == (10, 64) and bias.shape == (10,) and weight.dtype == bias.dtype == np.float32
    fc7 = backend.embed_batch([crop], [box])
    np.testing.assert_allclose(backend.logits_batch([crop], [box]), fc7 @ weight.T + bias, rtol=1e-4, atol=1e-5)
    assert VggFaceBackend(path, NARROW).model() is backend.model()  # loaded once per process
    np.testing.assert_array_equal(weight, np.asarray(model.get_layer("fc8").kernel).T)  # Keras (dim, classes)


def test_the_paper_net_has_the_public_files_shapes():
    shapes = VggFaceConfig().weight_shapes()
    assert list(shapes)[0] == "conv1_1" and list(shapes)[-4:] == ["conv5_3", "fc6", "fc7", "fc8"] and len(shapes) == 16
    assert shapes["conv1_1"] == ((3, 3, 3, 64), (64,)) and shapes["conv5_3"] == ((3, 3, 512, 512), (512,))
    assert shapes["fc6"] == ((25088, 4096), (4096,)) and shapes["fc8"] == ((4096, 2622), (2622,))
    params = sum(np.prod(k) + np.prod(b) for k, b in shapes.values())
    assert params == 145_002_878  # VGG-16's 138,357,544 with 2,622 instead of 1,000 classes
    assert VggFaceBackend.dim == 4096

    import torch

    with torch.device("meta"):  # shapes only: no 145M random numbers
        net = build_vggface_net()
    converted = torch_state({layer: [np.empty(k, np.float32), np.empty(b, np.float32)] for layer, (k, b) in
                             shapes.items()}, VggFaceConfig())
    assert {k: v.shape for k, v in converted.items()} == {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert sum(p.numel() for p in net.parameters()) == params


def test_importing_the_backends_does_not_import_tensorflow():
    code = ("import sys, s2f.faces.features; "
            "print(sorted({'tensorflow', 'keras', 'h5py', 'torch'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]"


def test_embedding_runs_without_tensorflow(narrow):
    """The features stage's path: torch and h5py only; TensorFlow and Keras stay out of the process."""
    _, path = narrow
    code = ("import sys, numpy as np; from s2f.faces.detect import FaceBox; "
            "from s2f.faces.vggface import VggFaceBackend, VggFaceConfig; "
            f"b = VggFaceBackend({str(path)!r}, VggFaceConfig(width=1 / 16, fc_dim=64, classes=10)); "
            f"f = b.embed(np.zeros((224, 224, 3), np.uint8), {BOX!r}); "
            "print(f.shape, sorted({'tensorflow', 'keras'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "(64,) []"


def test_features_are_the_same_bytes_whatever_the_callers_thread_count(narrow, faces):
    """The features are a DVC output: on a CPU the forward runs on one thread, whatever torch was set to."""
    import torch

    _, path = narrow
    crops, boxes = faces
    crops, boxes = list(crops) * 3, list(boxes) * 3  # a batch of 9: GEMMs big enough to be split over threads
    backend = VggFaceBackend(path, NARROW, device="cpu")
    before, got = torch.get_num_threads(), []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            got.append(backend.embed_batch(crops, boxes).tobytes() + backend.logits_batch(crops, boxes).tobytes())
            assert torch.get_num_threads() == threads  # the caller's setting is given back
    finally:
        torch.set_num_threads(before)
    assert got[0] == got[1]
