"""VGG-Face (Parkhi et al., 2015), the face-feature network of the Speech2Face paper, in torch on the training device.

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
sixteen weighted layers by name with h5py and check every shape, so a wrong or truncated file fails naming the file,
the layer and the shapes. `torch_state` then converts Keras's layouts (channels last, TensorFlow kernels) to torch's.
The Keras network lives on in s2f/faces/vggface_keras.py, only as the tests' oracle and writer of test weight files.

Importing this module is cheap: torch and h5py are imported inside the functions that need them, and TensorFlow
is never imported here.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from s2f.faces.detect import FaceBox, crop_face
from s2f.numerics import one_thread

if TYPE_CHECKING:
    import torch
    from torch import nn

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


def build_vggface_net(config: VggFaceConfig = VggFaceConfig()) -> "nn.Sequential":
    """VGG-Face in torch with random weights: BGR mean-subtracted (B, 3, 224, 224) → fc8 logits (B, classes).

    Submodules carry the file's layer names (`conv1_1` … `conv5_3`, `fc6`, `fc7`, `fc8`), so loading is by name and
    `fc7_and_logits` can stop after fc7's ReLU. Channels first, as torch convolves; the file's channels-last fc6 is
    reordered when loading (`torch_state`), which keeps the network a plain stack of torch layers.
    """
    from torch import nn

    layers: list[tuple[str, nn.Module]] = []
    c_in, channels = 3, dict(config.conv_channels())
    for block, (_, convs) in enumerate(BLOCKS, 1):
        for i in range(1, convs + 1):
            name = f"conv{block}_{i}"
            # Keras's padding="same" for a 3×3 stride-1 conv is one pixel on every side
            layers += [(name, nn.Conv2d(c_in, channels[name], 3, padding=1)), (f"{name}_relu", nn.ReLU())]
            c_in = channels[name]
        layers.append((f"pool{block}", nn.MaxPool2d(2, stride=2)))  # (B, C, 224 / 2**block, 224 / 2**block)
    side = INPUT_SIZE // 2 ** len(BLOCKS)  # 7
    layers += [("flatten", nn.Flatten()),  # (B, C*7*7) in (channel, row, col) order
               ("fc6", nn.Linear(side * side * c_in, config.fc_dim)), ("fc6_relu", nn.ReLU()),
               ("fc7", nn.Linear(config.fc_dim, config.fc_dim)), ("fc7_relu", nn.ReLU()),  # the face feature
               ("fc8", nn.Linear(config.fc_dim, config.classes))]  # identity logits
    return nn.Sequential(OrderedDict(layers))


def fc7_and_logits(net: "nn.Sequential", images: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
    """(B, 3, 224, 224) preprocessed images → fc7 after its ReLU (B, fc_dim) and the fc8 logits (B, classes)."""
    features = net[:-1](images)  # every layer but fc8
    return features, net.fc8(features)


def _fc6_weight(kernel: np.ndarray, channels: int) -> np.ndarray:
    """Keras fc6 kernel (7*7*C, fc) → torch weight (fc, C*7*7).

    Keras flattened pool5 channels last, so the kernel's rows run over (row, col, channel); torch flattens channels
    first, (channel, row, col). Reordering the rows once here gives the same fc6 without permuting activations.
    """
    side, fc_dim = INPUT_SIZE // 2 ** len(BLOCKS), kernel.shape[1]
    by_position = kernel.reshape(side, side, channels, fc_dim)  # (row, col, channel, out)
    return by_position.transpose(3, 2, 0, 1).reshape(fc_dim, channels * side * side)  # (out, channel, row, col)


def torch_state(weights: dict[str, list[np.ndarray]], config: VggFaceConfig) -> dict[str, np.ndarray]:
    """keras-vggface [kernel, bias] arrays by layer → `build_vggface_net(config)`'s state dict (float32 arrays).

    Conv kernels go from Keras's (kh, kw, in, out) to torch's (out, in, kh, kw), dense kernels from (in, out) to
    (out, in), and fc6's rows from a channels-last to a channels-first flatten (`_fc6_weight`).
    """
    last_channels = config.conv_channels()[-1][1]
    state = {}
    for layer, (kernel, bias) in weights.items():
        if layer == "fc6":
            weight = _fc6_weight(kernel, last_channels)
        elif kernel.ndim == 4:
            weight = kernel.transpose(3, 2, 0, 1)  # (kh, kw, in, out) → (out, in, kh, kw)
        else:
            weight = kernel.T  # (in, out) → (out, in)
        state[f"{layer}.weight"] = np.ascontiguousarray(weight, np.float32)
        state[f"{layer}.bias"] = np.ascontiguousarray(bias, np.float32)
    return state


def load_vggface_net(path: str | Path, config: VggFaceConfig = VggFaceConfig(),
                     device: "str | torch.device" = "cpu") -> "nn.Sequential":
    """The torch VGG-Face with a keras-vggface file's weights, frozen, in eval mode, on `device`.

    The file is read and every shape checked before the network exists, so a wrong file fails naming the file and
    the layer. The net is built on the meta device and takes the file's tensors as its parameters: no 145M random
    numbers are drawn only to be overwritten.
    """
    import torch

    state = torch_state(read_vggface_weights(path, config.weight_shapes()), config)
    with torch.device("meta"):
        net = build_vggface_net(config)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True, assign=True)
    return net.requires_grad_(False).eval().to(device)


def default_device() -> "torch.device":
    """CUDA when present (the training device), else the CPU."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@lru_cache(maxsize=2)
def _cached_net(path: str, stamp: tuple[int, int], config: VggFaceConfig, device: str) -> "nn.Sequential":
    """One loaded net per (file, its size and mtime, config, device) per process: reading 580 MB takes seconds."""
    return load_vggface_net(path, config, device)



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
    """fc7 of VGG-Face (4096-D, after the ReLU) on the face box grown to `box_scale`, as Speech2Face's target.

    Runs in torch on `device` (None: CUDA when present, else the CPU), float32, `_BATCH` faces per pass.
    """

    name = "vggface"
    dim = 4096
    # Only catches degenerate vectors (all-zero ReLU output, blown-up values); not measured on the real weights
    # yet (none ship with the repo). VGG-style fc7 ReLU features have norms of order 10-100 on 0-255 inputs, so
    # 1 and 10^4 sit more than an order of magnitude outside; tighten after measuring (docs/face_backends.md).
    norm_range = (1.0, 1.0e4)

    def __init__(self, weights: str | Path | None = None, config: VggFaceConfig = VggFaceConfig(),
                 box_scale: float = BOX_SCALE, device: str | None = None):
        if weights is None:
            raise ValueError("the vggface backend needs its weight file: set features.vggface_weights to the path "
                             f"of rcmalli_vggface_tf_vgg16.h5 (see {DOCS})")
        self.weights = Path(weights).expanduser()
        if not self.weights.is_file():
            raise FileNotFoundError(f"VGG-Face weight file not found: {self.weights} (download "
                                    f"rcmalli_vggface_tf_vgg16.h5 yourself, see {DOCS})")
        self.config, self.dim, self.box_scale, self.device = config, config.fc_dim, box_scale, device

    def model(self) -> "nn.Sequential":
        """The loaded torch net (`build_vggface_net`'s layout), shared by every backend on the same file."""
        stat = self.weights.stat()
        device = str(self.device or default_device())
        return _cached_net(str(self.weights.resolve()), (stat.st_size, stat.st_mtime_ns), self.config, device)

    def _forward(self, crops: Sequence[np.ndarray], boxes: Sequence[FaceBox]) -> tuple[np.ndarray, np.ndarray]:
        """fc7 and fc8 of the crops; on a CPU on one thread, so that the features (a DVC output) do not depend on
        the core count (`s2f.numerics`; each `features` worker process has its own cores anyway)."""
        if len(crops) != len(boxes):
            raise ValueError(f"{len(crops)} crops but {len(boxes)} boxes")
        net = self.model()
        device = next(net.parameters()).device
        with one_thread() if device.type == "cpu" else nullcontext():
            return self._forward_on(net, device, crops, boxes)

    def _forward_on(self, net: "nn.Sequential", device: "torch.device", crops: Sequence[np.ndarray],
                    boxes: Sequence[FaceBox]) -> tuple[np.ndarray, np.ndarray]:
        import torch

        fc7, fc8 = [], []
        for start in range(0, len(crops), _BATCH):
            faces = np.stack([face_input(c, b, self.box_scale)
                              for c, b in zip(crops[start:start + _BATCH], boxes[start:start + _BATCH])])
            images = torch.from_numpy(preprocess(faces)).to(device).permute(0, 3, 1, 2)  # (n, 3, 224, 224) BGR
            with torch.inference_mode(), torch.backends.cudnn.flags(enabled=True, allow_tf32=False):  # fp32 convs
                features, logits = fc7_and_logits(net, images)  # (n, fc_dim), (n, classes)
            fc7.append(features.float().cpu().numpy())
            fc8.append(logits.float().cpu().numpy())
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
        fc8 = self.model().fc8
        return fc8.weight.detach().float().cpu().numpy().copy(), fc8.bias.detach().float().cpu().numpy().copy()
