"""Save and load models as a weights file plus a JSON config: no pickle crosses a machine boundary.

The weights are a plain `state_dict` loaded with `torch.load(..., weights_only=True)`; the JSON holds the model's
config dataclass so the architecture is rebuilt from data, not from unpickled code.

A file that cannot be a model (garbage, a truncated copy, another model's weights, a missing or broken JSON) raises
`ModelFileError` naming the file and the reason: torch's own errors (`pop from empty list`, `failed finding central
directory`) name neither.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path
from typing import Any

import torch

from s2f.models.face_decoder import FaceDecoder, FaceDecoderConfig
from s2f.models.voice_encoder import ConvBlock, VoiceEncoder, VoiceEncoderConfig


def save_model(model: torch.nn.Module, path: Path, extra: dict | None = None) -> None:
    """Write `path` (.pt weights) and `path.with_suffix('.json')` (kind, config, extra metadata)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
    meta = {"kind": type(model).__name__, "config": dataclasses.asdict(model.config), **(extra or {})}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")


class ModelFileError(ValueError):
    """A model file (weights or their JSON) that cannot be loaded; the message names the file and why."""


ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since 1.6: a zip archive


def _config_of(meta: dict) -> tuple[type[torch.nn.Module], object]:
    cfg = meta["config"]
    if meta["kind"] == "VoiceEncoder":
        return VoiceEncoder, VoiceEncoderConfig(**{**cfg, "blocks": tuple(ConvBlock(**b) for b in cfg["blocks"])})
    if meta["kind"] == "FaceDecoder":
        return FaceDecoder, FaceDecoderConfig(**cfg)
    if meta["kind"] == "VoiceToFace":
        # by name, not a top-level import: the GAN code must not enter the import closure (and so the DVC deps and
        # shard keys) of every stage that loads a model; the stages that load a GAN import this module themselves
        # (tests/test_lineage.py checks it)
        module = importlib.import_module("s2f.models.voice_to_face")
        return module.VoiceToFace, module.VoiceToFaceConfig(**cfg)
    raise ValueError(f"unknown model kind {meta['kind']!r} (expected VoiceEncoder, FaceDecoder or VoiceToFace)")


def read_meta(path: Path) -> dict:
    """The JSON written beside the weights `path`; a missing or malformed one is a ModelFileError naming it."""
    meta_path = path.with_suffix(".json")
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise ModelFileError(f"{meta_path}: missing: the model's config, written beside {path.name} by "
                             "save_model") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"{meta_path}: not a model config: {err}") from None
    if not isinstance(meta, dict):
        raise ModelFileError(f"{meta_path}: not a model config: a JSON {type(meta).__name__}, not an object")
    return meta


def read_weights(path: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """A state_dict loaded with weights_only=True (no code runs); any failure says which file and why."""
    try:
        with path.open("rb") as file:
            head = file.read(4)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: not found") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path}: a folder, not a weights file") from None
    except OSError as err:
        raise ModelFileError(f"{path}: cannot read: {err.strerror or err}") from None
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # noqa: BLE001 - a bad file surfaces as any of a dozen types (even OSError: EINVAL)
        raise ModelFileError(f"{path}: {_why_unreadable(head, err)}") from None
    if not (isinstance(state, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                            for k, v in state.items())):
        raise ModelFileError(f"{path}: a torch file holding a {type(state).__name__}, not a model's weights "
                             "(a state_dict of named tensors)")
    return state


def _why_unreadable(head: bytes, err: Exception) -> str:
    """The reason in words; torch's exception type says little (garbage raises IndexError, KeyError, EOFError…)."""
    if not head:
        return "empty file, not a torch checkpoint"
    if head != ZIP_MAGIC:
        return "not a torch checkpoint (torch.save writes a zip archive; this file is not one)"
    if "Weights only load failed" in str(err):
        return "a torch file holding objects other than tensors, refused by weights-only loading"
    return "truncated or damaged torch checkpoint: its zip archive cannot be read (an interrupted copy or download?)"


def _fit(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Load `state` into `model`, or say how the weights differ from the architecture their JSON describes."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k} {tuple(state[k].shape)} ≠ {tuple(expected[k].shape)}" for k in sorted(set(state) & set(expected))
              if state[k].shape != expected[k].shape]
    problems = [f"{label}: {', '.join(items[:3])}{' …' if len(items) > 3 else ''} ({len(items)})"
                for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes))
                if items]
    if problems:
        raise ModelFileError(f"{path}: weights do not fit the {type(model).__name__} that "
                             f"{path.with_suffix('.json').name} describes: {'; '.join(problems)}")
    model.load_state_dict(state)


def load_model(path: Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The model `save_model` wrote at `path`; a file that is not one raises ModelFileError naming it and why."""
    path = Path(path)
    meta = read_meta(path)
    try:
        cls, config = _config_of(meta)
        model = cls(config)
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(f"{path.with_suffix('.json')}: not a model config: {_reason(err)}") from None
    _fit(model, read_weights(path, device), path)
    return model.to(device).eval()


def _reason(err: Exception) -> str:
    return f"no key {err}" if isinstance(err, KeyError) else str(err)


def save_identity_head(head: torch.nn.Linear, path: Path, meta: dict) -> None:
    """The frozen identity classifier f_VGG of the distillation loss: weights plus a JSON naming its classes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in head.state_dict().items()}, path)
    info = {"kind": "IdentityHead", "in_dim": head.in_features, "classes": head.out_features, **meta}
    path.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")


def load_identity_head(path: Path) -> torch.nn.Linear:
    """The frozen identity classifier; a file that is not one raises ModelFileError naming it and why."""
    path = Path(path)
    meta: dict[str, Any] = read_meta(path)
    try:
        head = torch.nn.Linear(int(meta["in_dim"]), int(meta["classes"]))
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise ModelFileError(f"{path.with_suffix('.json')}: not an identity head config: {_reason(err)}") from None
    _fit(head, read_weights(path), path)
    return head.requires_grad_(False).eval()
