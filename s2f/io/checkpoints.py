"""Save and load models as a weights file plus a JSON config: no pickle crosses a machine boundary.

The weights are a plain `state_dict` loaded with `torch.load(..., weights_only=True)`; the JSON holds the model's
config dataclass so the architecture is rebuilt from data, not from unpickled code.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from s2f.models.face_decoder import FaceDecoder, FaceDecoderConfig
from s2f.models.voice_encoder import ConvBlock, VoiceEncoder, VoiceEncoderConfig


def save_model(model: torch.nn.Module, path: Path, extra: dict | None = None) -> None:
    """Write `path` (.pt weights) and `path.with_suffix('.json')` (kind, config, extra metadata)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
    meta = {"kind": type(model).__name__, "config": dataclasses.asdict(model.config), **(extra or {})}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")


def _config_of(meta: dict) -> tuple[type[torch.nn.Module], object]:
    cfg = meta["config"]
    if meta["kind"] == "VoiceEncoder":
        return VoiceEncoder, VoiceEncoderConfig(**{**cfg, "blocks": tuple(ConvBlock(**b) for b in cfg["blocks"])})
    if meta["kind"] == "FaceDecoder":
        return FaceDecoder, FaceDecoderConfig(**cfg)
    raise ValueError(f"unknown model kind {meta['kind']!r}")


def load_model(path: Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    meta = json.loads(path.with_suffix(".json").read_text())
    cls, config = _config_of(meta)
    model = cls(config)
    model.load_state_dict(torch.load(path, map_location=device, weights_only=True))
    return model.to(device).eval()


def save_identity_head(head: torch.nn.Linear, path: Path, meta: dict) -> None:
    """The frozen identity classifier f_VGG of the distillation loss: weights plus a JSON naming its classes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in head.state_dict().items()}, path)
    info = {"kind": "IdentityHead", "in_dim": head.in_features, "classes": head.out_features, **meta}
    path.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")


def load_identity_head(path: Path) -> torch.nn.Linear:
    meta = json.loads(path.with_suffix(".json").read_text())
    head = torch.nn.Linear(meta["in_dim"], meta["classes"])
    head.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return head.requires_grad_(False).eval()
