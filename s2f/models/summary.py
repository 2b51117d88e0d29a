"""Per-layer output shapes, parameter counts and FLOPs of a model, computed on the `meta` device.

A meta tensor has a shape and a dtype but no storage, so running the paper-sized encoder (~165M parameters, a 6 s
spectrogram) through its layers allocates nothing and takes milliseconds: build the model under
`with torch.device("meta"):` and pass a meta example. FLOPs count multiply-adds × 2 of Conv2d and Linear only (bias,
normalisation, activation and pooling are a rounding error next to them); a training step costs about 3× the
forward FLOPs (forward, then gradients for activations and for weights).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from s2f.audio import SAMPLE_RATE, num_frames
from s2f.models.voice_encoder import FREQ_BINS, VoiceEncoder, VoiceEncoderConfig


@dataclass(frozen=True)
class LayerRow:
    name: str                     # qualified module name, e.g. "convs.1"
    kind: str                     # module class, e.g. "Conv2d"
    shape: tuple[int, ...]        # output shape, batch first
    params: int
    flops: int                    # forward FLOPs of this layer for the whole example batch


def _flops(module: nn.Module, output: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        # every output element is a dot product over (in_channels / groups) × kernel_h × kernel_w inputs
        per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        return 2 * output.numel() * per_output
    if isinstance(module, nn.Linear):
        return 2 * output.numel() * module.in_features
    return 0


def layer_table(model: nn.Module, example: torch.Tensor, forward: str = "forward") -> list[LayerRow]:
    """One row per leaf module, in the order the forward pass calls them (`getattr(model, forward)(example)`)."""
    rows: list[LayerRow] = []

    def record(name: str):
        def hook(module: nn.Module, _inputs, output: torch.Tensor) -> None:
            rows.append(LayerRow(name, type(module).__name__, tuple(output.shape),
                                 sum(p.numel() for p in module.parameters(recurse=False)), _flops(module, output)))
        return hook

    leaves = [(name, m) for name, m in model.named_modules() if not any(m.children())]
    handles = [m.register_forward_hook(record(name)) for name, m in leaves]
    try:
        with torch.no_grad():
            getattr(model, forward)(example)
    finally:
        for handle in handles:
            handle.remove()
    return rows


def _shape(shape: tuple[int, ...]) -> str:
    return "×".join(str(s) for s in shape[1:])  # without the batch axis


def format_table(rows: list[LayerRow], title: str) -> str:
    """A fixed-width text table with totals; shapes are printed without the batch axis."""
    header = f"{'layer':<12} {'kind':<12} {'output':>16} {'params':>13} {'FLOPs':>17}"
    lines = [title, header, "-" * len(header)]
    lines += [f"{r.name:<12} {r.kind:<12} {_shape(r.shape):>16} {r.params:>13,} {r.flops:>17,}" for r in rows]
    lines += ["-" * len(header),
              f"{'total':<12} {'':<12} {'':>16} {sum(r.params for r in rows):>13,} {sum(r.flops for r in rows):>17,}"]
    return "\n".join(lines)


def meta_encoder(config: VoiceEncoderConfig) -> VoiceEncoder:
    """The encoder with shapes but no storage: free to build and to run at any size."""
    with torch.device("meta"):
        return VoiceEncoder(config).eval()


def spectrogram_shape(seconds: float) -> tuple[int, int, int]:
    """(T, 257, 2) of `seconds` of 16 kHz audio: (598, 257, 2) for 6 s."""
    return (num_frames(round(seconds * SAMPLE_RATE)), FREQ_BINS, 2)


def encoder_table(config: VoiceEncoderConfig, seconds: float) -> list[LayerRow]:
    """`layer_table` of the encoder for one clip of `seconds`, from the spectrogram on (the STFT is not counted)."""
    example = torch.empty(1, *spectrogram_shape(seconds), device="meta")
    return layer_table(meta_encoder(config), example, forward="forward_spectrogram")


def encoder_flops(config: VoiceEncoderConfig, seconds: float) -> int:
    """Forward FLOPs of the encoder for one clip of `seconds` (a training step: about 3× this)."""
    return sum(row.flops for row in encoder_table(config, seconds))
