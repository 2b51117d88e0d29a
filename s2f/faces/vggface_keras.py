"""VGG-Face in Keras 3 on TensorFlow: the tests' oracle for the torch backend, and the writer of keras-vggface files.

The `vggface` backend runs in torch (s2f/faces/vggface.py); nothing on the pipeline's path imports this module. It is
kept because keras-vggface's weights were trained and saved in this exact Keras layout (channels last, TensorFlow
kernels, fc6 over a channels-last flatten), so a Keras net reading the same file is the independent reference the
torch port is checked against, and `save_vggface_weights` makes narrow test files in the public file's layout offline.

TensorFlow and Keras are imported on first use only; h5py inside the functions that need it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from s2f.faces.vggface import BLOCKS, INPUT_SIZE, VggFaceConfig, read_vggface_weights

if TYPE_CHECKING:
    import keras


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
