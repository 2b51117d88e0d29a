"""VGG-Face (Parkhi et al., 2015), the face-feature network of the Speech2Face paper, in Keras 3 on TensorFlow.

VGG-Face is VGG-16 trained to tell 2,622 celebrities apart. Speech2Face regresses its fc7 activations (4096-D, after
the ReLU) from speech, and uses fc8 (the identity logits) as a frozen head for the distillation loss.

Weights: keras-vggface's `rcmalli_vggface_tf_vgg16.h5`, which users download themselves (docs/face_backends.md);
this module never downloads anything. The file is Keras 2's HDF5 weight format:

    /                 attrs: layer_names = every layer's name (the input, b"conv1_1", ..., b"fc8/softmax"), ...
    /conv1_1          attrs: weight_names = [b"conv1_1/kernel:0", b"conv1_1/bias:0"]
    /conv1_1/conv1_1/kernel:0   (3, 3, 3, 64) float32      ("/" in a weight name makes a nested group)
    /conv1_1/conv1_1/bias:0     (64,)
    ...                         conv1_1 … conv5_3, fc6 (25088, 4096), fc7 (4096, 4096), fc8 (4096, 2622)

Weightless layers (input, pools, flatten, activations) have groups with an empty `weight_names`. We read the
sixteen weighted layers by name and check every shape, so a wrong or truncated file fails naming the file, the
layer and the shapes, instead of Keras guessing by topology.

Importing this module is cheap: TensorFlow, Keras and h5py are imported inside the functions that need them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from s2f.faces.detect import FaceBox, crop_face

if TYPE_CHECKING:
    import keras

INPUT_SIZE = 224
# keras-vggface's `preprocess_input(version=1)`: the VGG-Face training images' mean, in B, G, R order
MEAN_BGR = np.array([93.5940, 104.7624, 129.1863], np.float32)
BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))  # VGG-16: (channels, 3×3 convs) per block
BOX_SCALE = 1.3  # the face box's side is grown 1.3× (0.15 on each side): the whole face with a little context
DOCS = "docs/face_backends.md"
_BATCH = 16  # images per forward pass: bounds the activations' memory (~400 MB at full width)


@dataclass(frozen=True)
class VggFaceConfig:
    """VGG-16 with every conv's channels scaled by `width`; the paper's net is the default (145M parameters, 580 MB).

    Tests use a narrow net (e.g. width 1/16, fc_dim 64) written in the same file format as the real one.
    """

    width: float = 1.0
    fc_dim: int = 4096
    classes: int = 2622

    def conv_channels(self) -> list[tuple[str, int]]:
        """(layer name, output channels) of the 13 convolutions, in order."""
        return [(f"conv{b}_{i}", max(1, round(c * self.width)))
                for b, (c, n) in enumerate(BLOCKS, 1) for i in range(1, n + 1)]

    def weight_shapes(self) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
        """Each weighted layer's (kernel, bias) shape in Keras layout, in network order: what a file must hold."""
        shapes, c_in = {}, 3
        for name, c in self.conv_channels():
            shapes[name] = ((3, 3, c_in, c), (c,))
            c_in = c
        side = INPUT_SIZE // 2 ** len(BLOCKS)  # 7: five 2×2 pools
        shapes["fc6"] = ((side * side * c_in, self.fc_dim), (self.fc_dim,))
        shapes["fc7"] = ((self.fc_dim, self.fc_dim), (self.fc_dim,))
        shapes["fc8"] = ((self.fc_dim, self.classes), (self.classes,))
        return shapes


def _keras() -> Any:
    """Keras 3 on TensorFlow, with TF's C++ info logs off; imported on first use only."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    # hides TF's C++ info and warning logs (not the oneDNN banner TF 2.21 prints before its logging starts)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(f"VGG-Face needs Keras on TensorFlow, but Keras runs on {keras.backend.backend()!r} "
                           "(KERAS_BACKEND was set before s2f imported keras)")
    return keras


def build_vggface(config: VggFaceConfig = VggFaceConfig()) -> "keras.Model":
    """VGG-Face with random weights: BGR mean-subtracted (B, 224, 224, 3) → [fc7 after ReLU (B, fc_dim), fc8 logits].

    Layer names follow the keras-vggface weight file. fc6 and fc7 carry their ReLU (Keras 3 forbids the file's
    separate `fc6/relu` layer names, which hold no weights); keras-vggface's final softmax is left out.
    """
    keras = _keras()
    layers, channels = keras.layers, dict(config.conv_channels())
    image = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="image")  # (B, 224, 224, 3)
    x = image
    for block, (_, convs) in enumerate(BLOCKS, 1):
        for i in range(1, convs + 1):
            name = f"conv{block}_{i}"
            x = layers.Conv2D(channels[name], 3, padding="same", activation="relu", name=name)(x)
        x = layers.MaxPooling2D(2, strides=2, name=f"pool{block}")(x)  # (B, 224 / 2**block, ..., C)
    x = layers.Flatten(name="flatten")(x)  # (B, 7*7*C) in (row, col, channel) order, as the TF file expects
    x = layers.Dense(config.fc_dim, activation="relu", name="fc6")(x)  # (B, fc_dim)
    fc7 = layers.Dense(config.fc_dim, activation="relu", name="fc7")(x)  # (B, fc_dim): the face feature
    fc8 = layers.Dense(config.classes, name="fc8")(fc7)  # (B, classes): identity logits
    return keras.Model(image, [fc7, fc8], name="vggface_vgg16")


def _expected_shapes(model: "keras.Model") -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """The (kernel, bias) shapes the model's own weighted layers expect, by name."""
    names = [name for name, _ in VggFaceConfig().conv_channels()] + ["fc6", "fc7", "fc8"]
    try:
        layers = [model.get_layer(name) for name in names]
    except ValueError as err:
        raise ValueError(f"not a VGG-Face model (built by build_vggface): {err}") from err
    return {layer.name: (tuple(layer.kernel.shape), tuple(layer.bias.shape)) for layer in layers}


def _names(values: Any) -> list[str]:
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in (values if values is not None else [])]


def read_vggface_weights(path: str | Path,
                         shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]]) -> dict[str, list[np.ndarray]]:
    """The (kernel, bias) arrays of every layer in `shapes` from a keras-vggface file, each shape checked.

    Raises FileNotFoundError for a missing file and ValueError naming the file, the layer and expected vs found
    for anything else (not HDF5, truncated, a layer missing, another width or class count).
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VGG-Face weight file not found: {path} (download rcmalli_vggface_tf_vgg16.h5 "
                                f"yourself and set features.vggface_weights, see {DOCS})")
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path} cannot be opened as HDF5 ({err}): a truncated download, or not keras-vggface's "
                         f"rcmalli_vggface_tf_vgg16.h5 (see {DOCS})") from err
    with handle:
        root = handle
        if "layer_names" not in root.attrs and "model_weights" in root:  # a whole model saved by Keras 2
            root = root["model_weights"]
        if "layer_names" not in root.attrs:
            raise ValueError(f"{path} is not a Keras HDF5 weight file: no root attribute 'layer_names' (see {DOCS})")
        listed = set(_names(root.attrs["layer_names"]))
        weights = {}
        for layer, expected in shapes.items():
            if layer not in listed or layer not in root:
                raise ValueError(f"{path}: layer {layer!r} is missing (the file lists {sorted(listed)})")
            weights[layer] = _read_layer(path, root[layer], layer, expected)
    return weights


def _read_layer(path: Path, group: Any, layer: str, expected: tuple[tuple[int, ...], ...]) -> list[np.ndarray]:
    """[kernel, bias] of one layer group, in Keras's saved order, each checked against its expected shape."""
    weight_names = _names(group.attrs.get("weight_names"))
    if len(weight_names) != 2:
        raise ValueError(f"{path}: layer {layer!r} holds {len(weight_names)} weights {weight_names}, expected "
                         "2 (kernel, bias)")
    arrays = []
    for role, name, shape in zip(("kernel", "bias"), weight_names, expected):
        try:
            array = np.asarray(group[name][()], np.float32)
        except (KeyError, OSError) as err:
            raise ValueError(f"{path}: layer {layer!r} {role} {name!r} cannot be read ({err}); the file is "
                             "truncated or damaged") from err
        if array.shape != tuple(shape):
            raise ValueError(f"{path}: layer {layer!r} {role} has shape {array.shape}, expected {tuple(shape)} "
                             "(another network or width than this VggFaceConfig?)")
        arrays.append(array)
    return arrays


def load_vggface_weights(model: "keras.Model", path: str | Path) -> None:
    """Set a `build_vggface` model's weights from a keras-vggface file; all are checked before any is set."""
    weights = read_vggface_weights(path, _expected_shapes(model))
    for layer, arrays in weights.items():
        model.get_layer(layer).set_weights(arrays)


def save_vggface_weights(model: "keras.Model", path: str | Path) -> None:
    """Write the model's weights in keras-vggface's layout (Keras 2 HDF5), e.g. to make test files offline."""
    import h5py

    keras = _keras()
    layers = list(_expected_shapes(model))
    with h5py.File(path, "w") as handle:
        handle.attrs["layer_names"] = np.array([name.encode("utf8") for name in layers])
        handle.attrs["backend"] = b"tensorflow"
        handle.attrs["keras_version"] = keras.__version__.encode("utf8")
        for name in layers:
            layer = model.get_layer(name)
            weight_names = [f"{name}/kernel:0", f"{name}/bias:0"]
            group = handle.create_group(name)
            group.attrs["weight_names"] = np.array([w.encode("utf8") for w in weight_names])
            for weight_name, value in zip(weight_names, (layer.kernel, layer.bias)):
                group.create_dataset(weight_name, data=np.asarray(value, np.float32))


@lru_cache(maxsize=2)
def _cached_model(path: str, stamp: tuple[int, int], config: VggFaceConfig) -> "keras.Model":
    """One loaded model per (file, its size and mtime, config) per process: building and loading takes seconds."""
    model = build_vggface(config)
    load_vggface_weights(model, path)
    return model


def face_input(crop: np.ndarray, box: FaceBox, box_scale: float = BOX_SCALE) -> np.ndarray:
    """(H, W, 3) uint8 crop → (224, 224, 3) uint8 RGB: the square of `box_scale` × the box's longer side, centred
    on the box, resized bilinearly; parts outside the crop are black (as in `crop_face`).

    Why not the whole 224 crop: ours grows the box by 0.4 on every side (1.8×) for the decoder's context, while
    VGG-Face was trained on tighter face crops; 1.3× keeps the whole face (chin, forehead) with a small margin.
    """
    face, _ = crop_face(np.ascontiguousarray(crop, np.uint8), box, INPUT_SIZE, margin=(box_scale - 1) / 2)
    return face


def preprocess(images: np.ndarray) -> np.ndarray:
    """keras-vggface version 1: (N, 224, 224, 3) uint8 RGB → float32 BGR minus the VGG-Face mean."""
    return images[..., ::-1].astype(np.float32) - MEAN_BGR  # (N, 224, 224, 3) BGR


class VggFaceBackend:
    """fc7 of VGG-Face (4096-D, after the ReLU) on the face box grown to `box_scale`, as Speech2Face's target."""

    name = "vggface"
    dim = 4096
    # Only catches degenerate vectors (all-zero ReLU output, blown-up values); not measured on the real weights
    # yet (none ship with the repo). VGG-style fc7 ReLU features have norms of order 10-100 on 0-255 inputs, so
    # 1 and 10^4 sit more than an order of magnitude outside; tighten after measuring (docs/face_backends.md).
    norm_range = (1.0, 1.0e4)

    def __init__(self, weights: str | Path | None = None, config: VggFaceConfig = VggFaceConfig(),
                 box_scale: float = BOX_SCALE):
        if weights is None:
            raise ValueError("the vggface backend needs its weight file: set features.vggface_weights to the path "
                             f"of rcmalli_vggface_tf_vgg16.h5 (see {DOCS})")
        self.weights = Path(weights).expanduser()
        if not self.weights.is_file():
            raise FileNotFoundError(f"VGG-Face weight file not found: {self.weights} (download "
                                    f"rcmalli_vggface_tf_vgg16.h5 yourself, see {DOCS})")
        self.config, self.dim, self.box_scale = config, config.fc_dim, box_scale

    def model(self) -> "keras.Model":
        stat = self.weights.stat()
        return _cached_model(str(self.weights.resolve()), (stat.st_size, stat.st_mtime_ns), self.config)

    def _forward(self, crops: Sequence[np.ndarray], boxes: Sequence[FaceBox]) -> tuple[np.ndarray, np.ndarray]:
        if len(crops) != len(boxes):
            raise ValueError(f"{len(crops)} crops but {len(boxes)} boxes")
        model, fc7, fc8 = self.model(), [], []
        for start in range(0, len(crops), _BATCH):
            faces = np.stack([face_input(c, b, self.box_scale)
                              for c, b in zip(crops[start:start + _BATCH], boxes[start:start + _BATCH])])
            features, logits = model(preprocess(faces), training=False)  # (n, fc_dim), (n, classes)
            fc7.append(np.asarray(features, np.float32))
            fc8.append(np.asarray(logits, np.float32))
        if not fc7:
            return np.zeros((0, self.dim), np.float32), np.zeros((0, self.config.classes), np.float32)
        return np.concatenate(fc7), np.concatenate(fc8)

    def embed(self, crop: np.ndarray, box: FaceBox) -> np.ndarray:
        """(H, W, 3) uint8 crop and the face box inside it → (dim,) float32 fc7."""
        return self._forward([crop], [box])[0][0]

    def embed_batch(self, crops: Sequence[np.ndarray], boxes: Sequence[FaceBox]) -> np.ndarray:
        """N crops (e.g. (N, 224, 224, 3) uint8) and their boxes → (N, dim) float32 fc7."""
        return self._forward(crops, boxes)[0]

    def logits_batch(self, crops: Sequence[np.ndarray], boxes: Sequence[FaceBox]) -> np.ndarray:
        """N crops and their boxes → (N, classes) float32 fc8 logits (before keras-vggface's softmax)."""
        return self._forward(crops, boxes)[1]

    def identity_head(self) -> tuple[np.ndarray, np.ndarray]:
        """fc8 as (weight (classes, dim), bias (classes,)) float32: `nn.Linear(dim, classes)`'s layout, so the
        torch side can rebuild the frozen identity head for the distillation loss."""
        fc8 = self.model().get_layer("fc8")
        weight = np.ascontiguousarray(np.asarray(fc8.kernel, np.float32).T)  # Keras (dim, classes) → (classes, dim)
        return weight, np.asarray(fc8.bias, np.float32)
