"""Train the face decoder (Cole et al. 2017) on aligned faces, and the feature proxy its identity term needs.

Targets come from the true crops and their dlib landmarks: every face is warped to the training set's mean shape
(its "texture") and its landmarks are kept. The decoder learns texture L1 + landmark MSE + identity consistency,
where identity is judged by a small CNN fitted first to map crops to their (non-differentiable) backend features.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from s2f.config import TrainDecoderParams
from s2f.dataset import MappedRows, is_lazy
from s2f.faces.align import align_faces, mean_shape
from s2f.models.face_decoder import (DecoderLossWeights, FaceDecoder, FaceDecoderConfig, FeatureProxy,
                                     FeatureProxyConfig, decoder_loss)
from s2f.training.data import Rows, StepBatches
from s2f.training.distributed import Runtime
from s2f.training.loop import LogFn, LoopSettings, data_digest, fingerprint, fit


@dataclass
class DecoderTargets:
    """Each field (N, ...) is a tensor, or rows computed as they are read (`s2f.dataset.MappedRows`) when the
    split streams from its shards; `mean` is always a tensor."""

    features: torch.Tensor   # (N, D)
    images: torch.Tensor     # (N, 3, S, S) true crops in [0, 1]
    textures: torch.Tensor   # (N, 3, S, S) crops warped to the mean shape
    landmarks: torch.Tensor  # (N, 68, 2) normalized [0, 1]
    mean: torch.Tensor       # (68, 2) the mean shape, normalized


def faces_to_tensor(faces: np.ndarray, size: int) -> torch.Tensor:
    """(N, H, W, 3) uint8 → (N, 3, size, size) float in [0, 1], area-downsampled."""
    x = torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 255.0
    return F.interpolate(x, size=(size, size), mode="area")


def decoder_targets(embedding, faces, landmarks, size: int) -> DecoderTargets:
    """Aligned once up front for arrays; for streamed rows (`s2f.dataset`) each face is aligned as it is read, and
    only the landmarks (544 bytes a face, for the mean shape's median) are read whole."""
    mean = mean_shape(np.asarray(landmarks), faces.shape[1])
    if is_lazy(faces):
        rows = np.arange(len(faces))
        return DecoderTargets(MappedRows(embedding, _feature_row), MappedRows(faces, partial(_image_row, size=size)),
                              MappedRows(rows, partial(_texture_row, faces=faces, landmarks=landmarks, mean=mean,
                                                       size=size)),
                              MappedRows(landmarks, partial(_landmark_row, crop=faces.shape[1:3])),
                              torch.as_tensor(mean))
    textures, norm_landmarks = align_faces(faces, landmarks, mean, size)
    return DecoderTargets(torch.from_numpy(np.asarray(embedding, np.float32)), faces_to_tensor(faces, size),
                          torch.as_tensor(textures), torch.as_tensor(norm_landmarks), torch.as_tensor(mean))


def _feature_row(row: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(row, np.float32))


def _image_row(face: np.ndarray, size: int) -> torch.Tensor:
    return faces_to_tensor(face[None], size)[0]


def _texture_row(i, faces, landmarks, mean: np.ndarray, size: int) -> torch.Tensor:
    return torch.as_tensor(align_faces(faces[int(i)][None], landmarks[int(i)][None], mean, size)[0][0])


def _landmark_row(points: np.ndarray, crop: tuple[int, int]) -> torch.Tensor:
    """A face's landmarks normalized as `align_faces` returns them."""
    h, w = crop
    return (torch.as_tensor(np.asarray(points, np.float32)) + 0.5) / torch.tensor([w, h], dtype=torch.float32)


class _DecodeAll(nn.Module):
    """forward = decode (image, texture, landmarks), so DDP, which only wraps forward, syncs every part."""

    def __init__(self, decoder: FaceDecoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, feature: torch.Tensor):
        return self.decoder.decode(feature)


def _settings(p: TrainDecoderParams, checkpoint: Path | None, *key: object) -> LoopSettings:
    return LoopSettings(p.loop.checkpoint_every, checkpoint,
                        fingerprint(p.model_dump(), *key), p.loop.amp, p.loop.loader_workers)


def train_proxy(t: DecoderTargets, p: TrainDecoderParams, runtime: Runtime, log: LogFn) -> FeatureProxy:
    """Fit image → feature (cosine) on the true crops; frozen afterwards."""
    torch.manual_seed(p.seed)
    proxy = FeatureProxy(FeatureProxyConfig(image_size=t.images.shape[-1], out_dim=t.features.shape[1],
                                            channels=p.proxy.channels))

    def step_loss(model: nn.Module, batch: tuple, device: torch.device) -> dict[str, torch.Tensor]:
        image, feature = (b.to(device) for b in batch)
        return {"total": (1 - F.cosine_similarity(model(image).float(), feature, dim=1)).mean()}

    batches = StepBatches(len(t.images), p.batch_size, p.proxy.epochs, p.seed + 1, runtime.rank,
                                     runtime.world_size)
    opt = torch.optim.Adam(proxy.parameters(), lr=p.proxy.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=batches.steps)
    fit(proxy, step_loss, Rows(t.images, t.features), batches, opt, sched,
        _settings(p, None), runtime, log)
    return proxy.requires_grad_(False).eval()


def train_decoder(t: DecoderTargets, proxy: FeatureProxy | None, p: TrainDecoderParams, runtime: Runtime,
                  log: LogFn, checkpoint: Path | None = None) -> FaceDecoder:
    """Fit feature → (landmarks, texture, warped face) against the aligned targets."""
    torch.manual_seed(p.seed)
    decoder = FaceDecoder(FaceDecoderConfig(in_dim=t.features.shape[1], hidden=p.hidden, image_size=p.image_size,
                                            texture_grid=p.texture_grid, texture_channels=p.texture_channels,
                                            landmark_hidden=p.landmark_hidden, warp_field=p.warp_field))
    decoder.set_mean_shape(t.mean)
    weights = DecoderLossWeights(texture=p.loss.texture, landmarks=p.loss.landmarks, identity=p.loss.identity)
    identity = proxy.to(runtime.device) if proxy is not None and p.loss.identity > 0 else None

    def step_loss(model: nn.Module, batch: tuple, device: torch.device) -> dict[str, torch.Tensor]:
        feature, texture, landmarks = (b.to(device) for b in batch)
        return decoder_loss(model(feature), texture, landmarks, weights, identity=identity, feature=feature)

    batches = StepBatches(len(t.features), p.batch_size, p.epochs, p.seed, runtime.rank,
                                     runtime.world_size)
    opt = torch.optim.Adam(decoder.parameters(), lr=p.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=batches.steps)
    key = (runtime.world_size, data_digest(t.features, t.textures))
    fit(_DecodeAll(decoder), step_loss, Rows(t.features, t.textures, t.landmarks), batches, opt, sched,
        _settings(p, checkpoint, *key), runtime, log)
    return decoder.eval()
