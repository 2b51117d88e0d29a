"""Train the voice encoder: voice → face feature, with the Speech2Face loss against the frozen face decoder.

Optimiser as in the paper: Adam (β1 = 0.5, ε = 1e-4), lr decayed ×`lr_decay` every `lr_decay_every` steps, batch 8.
Each step reads a random `crop_seconds` window of every 6 s clip (evaluation uses whole clips).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch import nn

from s2f.audio import SAMPLE_RATE, int16_to_float
from s2f.config import TrainEncoderParams
from s2f.losses import LossWeights, speech2face_loss
from s2f.models.presets import get_preset
from s2f.models.voice_encoder import ConvBlock, VoiceEncoder, VoiceEncoderConfig
from s2f.training.data import AudioWindows, StepBatches
from s2f.training.distributed import Runtime
from s2f.training.loop import LogFn, LoopSettings, data_digest, fingerprint, fit


def encoder_config(p: TrainEncoderParams, out_dim: int) -> VoiceEncoderConfig:
    """The preset's architecture with the keys params set explicitly, ending in the face features' size."""
    m = p.model
    overrides = {k: v for k, v in {"last_channels": m.last_channels, "last_freq_stride": m.last_freq_stride,
                                    "kernel": m.kernel, "hidden": m.hidden}.items() if v is not None}
    if m.blocks is not None:
        overrides["blocks"] = tuple(ConvBlock(**b.model_dump()) for b in m.blocks)
    return dataclasses.replace(get_preset(m.preset).encoder, **overrides, out_dim=out_dim)


def train_encoder(audio: np.ndarray, embedding: np.ndarray, f_dec: nn.Module, identity_head: nn.Module | None,
                  p: TrainEncoderParams, runtime: Runtime, log: LogFn,
                  checkpoint: Path | None = None) -> VoiceEncoder:
    """audio: (N, L) int16 clips; embedding: (N, D) their true face features; f_dec, identity_head: frozen."""
    torch.manual_seed(p.seed)
    model = VoiceEncoder(encoder_config(p, embedding.shape[1]))
    target = torch.from_numpy(np.asarray(embedding, np.float32))
    model.set_output_statistics(target)
    target = target.to(runtime.device)
    f_dec = f_dec.to(runtime.device).requires_grad_(False)
    head = identity_head.to(runtime.device).requires_grad_(False) if identity_head is not None else None
    weights = LossWeights(p.loss.decoder_l1, p.loss.normalized_l2, p.loss.distill, p.loss.temperature)

    def step_loss(encoder: nn.Module, batch: tuple, device: torch.device) -> dict[str, torch.Tensor]:
        wave, idx = batch
        predicted = encoder(wave.to(device, non_blocking=True)).float()  # (B, D)
        return speech2face_loss(f_dec, target[idx.to(device)], predicted, weights, head)

    window = min(int(p.crop_seconds * SAMPLE_RATE), audio.shape[1])
    batches = StepBatches(len(audio), p.batch_size, p.epochs, p.seed, runtime.rank, runtime.world_size)
    opt = torch.optim.Adam(model.parameters(), lr=p.lr, betas=p.betas, eps=p.eps)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=p.lr_decay_every, gamma=p.lr_decay)
    settings = LoopSettings(p.loop.checkpoint_every, checkpoint,
                            fingerprint(p.model_dump(), runtime.world_size, data_digest(audio, embedding)),
                            p.loop.amp, p.loop.loader_workers)
    fit(model, step_loss, AudioWindows(audio, window, p.seed), batches, opt, sched, settings, runtime, log)
    return model


@torch.no_grad()
def predict_features(encoder: VoiceEncoder, audio: np.ndarray, batch_size: int = 16,
                     seconds: float | None = None) -> np.ndarray:
    """Face features from (N, L) int16 clips (their first `seconds` when given) → (N, D) float32."""
    dev = next(encoder.parameters()).device
    length = audio.shape[1] if seconds is None else min(int(seconds * SAMPLE_RATE), audio.shape[1])
    out = [encoder(int16_to_float(torch.from_numpy(audio[i:i + batch_size, :length])).to(dev)).float().cpu()
           for i in range(0, len(audio), batch_size)]
    return torch.cat(out).numpy()
