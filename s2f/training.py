"""Training loops for the face decoder and the voice encoder (no I/O: callers pass arrays and a logging callback).

Both run on CUDA when present (with bf16 autocast) and on CPU otherwise, and are deterministic on CPU for a seed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from s2f.audio import SAMPLE_RATE, int16_to_float
from s2f.config import TrainDecoderParams, TrainEncoderParams
from s2f.losses import speech2face_loss
from s2f.models.face_decoder import FaceDecoder, FaceDecoderConfig
from s2f.models.voice_encoder import ConvBlock, VoiceEncoder, VoiceEncoderConfig

LogFn = Callable[[int, dict[str, float]], None]


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _autocast(dev: torch.device):
    return torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda")


def faces_to_tensor(faces: np.ndarray, size: int) -> torch.Tensor:
    """(N, H, W, 3) uint8 → (N, 3, size, size) float in [0, 1], area-downsampled."""
    x = torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 255.0
    return F.interpolate(x, size=(size, size), mode="area")


def train_decoder(embedding: np.ndarray, faces: np.ndarray, p: TrainDecoderParams, log: LogFn) -> FaceDecoder:
    """Fit feature → face image with an L1 loss on the crops of the training speakers."""
    torch.manual_seed(p.seed)
    dev = device()
    model = FaceDecoder(FaceDecoderConfig(in_dim=embedding.shape[1], hidden=p.hidden, image_size=p.image_size,
                                          base_channels=p.base_channels)).to(dev)
    x = torch.from_numpy(embedding).float()
    y = faces_to_tensor(faces, p.image_size)
    opt = torch.optim.Adam(model.parameters(), lr=p.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=p.epochs)
    gen = torch.Generator().manual_seed(p.seed)
    for epoch in range(p.epochs):
        model.train()
        total, count = 0.0, 0
        for idx in torch.randperm(len(x), generator=gen).split(p.batch_size):
            with _autocast(dev):
                loss = (model(x[idx].to(dev)) - y[idx].to(dev)).abs().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, count = total + loss.item() * len(idx), count + len(idx)
        sched.step()
        log(epoch, {"l1": total / count, "lr": sched.get_last_lr()[0]})
    return model.eval()


def encoder_config(p: TrainEncoderParams, out_dim: int) -> VoiceEncoderConfig:
    m = p.model
    return VoiceEncoderConfig(blocks=tuple(ConvBlock(**b.model_dump()) for b in m.blocks),
                              last_channels=m.last_channels, kernel=m.kernel, hidden=m.hidden, out_dim=out_dim)


def random_crops(audio: np.ndarray, length: int, gen: torch.Generator) -> torch.Tensor:
    """One random window of `length` samples from each row of (N, L) int16 audio → (N, length) float."""
    starts = torch.randint(0, audio.shape[1] - length + 1, (len(audio),), generator=gen)
    return int16_to_float(torch.stack([torch.from_numpy(a[s:s + length]) for a, s in zip(audio, starts.tolist())]))


def train_encoder(audio: np.ndarray, embedding: np.ndarray, decoder: FaceDecoder, p: TrainEncoderParams,
                  log: LogFn) -> VoiceEncoder:
    """Fit voice → face feature with the Speech2Face loss against the frozen decoder's first layer.

    Optimiser as in the paper: Adam (β1 = 0.5, ε = 1e-4), lr decayed ×`lr_decay` every `lr_decay_every` steps.
    """
    torch.manual_seed(p.seed)
    dev = device()
    model = VoiceEncoder(encoder_config(p, embedding.shape[1])).to(dev)
    target = torch.from_numpy(embedding).float()
    model.set_output_statistics(target.to(dev))
    f_dec = decoder.first.to(dev).requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=p.lr, betas=p.betas, eps=p.eps)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=p.lr_decay_every, gamma=p.lr_decay)
    gen = torch.Generator().manual_seed(p.seed)
    crop = min(int(p.crop_seconds * SAMPLE_RATE), audio.shape[1])
    for epoch in range(p.epochs):
        model.train()
        sums: dict[str, float] = {}
        count = 0
        for idx in torch.randperm(len(audio), generator=gen).split(p.batch_size):
            if len(idx) < 2:  # batch norm needs two samples
                continue
            wave = random_crops(audio[idx.numpy()], crop, gen).to(dev)
            with _autocast(dev):
                terms = speech2face_loss(f_dec, target[idx].to(dev), model(wave).float(),
                                         p.loss.decoder_l1, p.loss.normalized_l2)
            opt.zero_grad(set_to_none=True)
            terms["total"].backward()
            opt.step()
            sched.step()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.item() * len(idx)
            count += len(idx)
        log(epoch, {**{f"loss_{k}": v / max(count, 1) for k, v in sums.items()}, "lr": sched.get_last_lr()[0]})
    return model.eval()


@torch.no_grad()
def predict_features(encoder: VoiceEncoder, audio: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Face features predicted from whole clips of (N, L) int16 audio → (N, D) float32."""
    dev = next(encoder.parameters()).device
    out = [encoder(int16_to_float(torch.from_numpy(audio[i:i + batch_size])).to(dev)).float().cpu()
           for i in range(0, len(audio), batch_size)]
    return torch.cat(out).numpy()
