"""Train one voice → face GAN family from the pipeline's shards: Wen et al. 2019 or Wav2Pix.

Both run on `s2f.training.adversarial.fit_adversarial` (one D step, one G step per batch, both optimisers in the
checkpoint). Wen et al. first train their voice embedder as a speaker classifier and freeze it (the paper's two
phases); that phase runs on the single-model loop `s2f.training.loop.fit` with a checkpoint of its own. Wav2Pix trains
its speech encoder end to end inside the G step.

Returns the family's `VoiceToFace` (voice network + generator), the model the stage saves and serving loads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from s2f.audio import int16_to_float
from s2f.config import TrainGanParams
from s2f.dataset import MappedRows, is_lazy
from s2f.lineage import closure_hash
from s2f.melbank import log_mel
from s2f.models import wav2pix, wen2019
from s2f.models.voice_to_face import VoiceToFace, voice_to_face_config
from s2f.training import wav2pix as wav2pix_losses
from s2f.training import wen2019 as wen2019_losses
from s2f.training.adversarial import GanSteps, fit_adversarial
from s2f.training.data import SampleKey, StepBatches
from s2f.training.distributed import Runtime
from s2f.training.loop import LogFn, LoopSettings, data_digest, fingerprint, fit
from s2f.training.pairs import FaceVoicePairs

EpochHook = Callable[[int, VoiceToFace], None]


def network_config(family: str, p: TrainGanParams) -> wen2019.Wen2019Config | wav2pix.Wav2PixConfig:
    """The family's architecture as the params size it (the rest of each config is the paper's)."""
    if family == "wen2019":
        return wen2019.Wen2019Config(variant=p.wen2019.variant, width=p.wen2019.width)
    return wav2pix.Wav2PixConfig(image_size=p.wav2pix.image_size, width=p.wav2pix.width)


def image_size(family: str, p: TrainGanParams) -> int:
    return network_config(family, p).image_size


class LabelledVoices(Dataset):
    """(epoch, i) → (voice i, its speaker label): the speaker-classifier phase's samples (log-mel for Wen et al.)."""

    def __init__(self, voices: np.ndarray, labels: np.ndarray):
        self.voices, self.labels = voices, labels

    def __len__(self) -> int:
        return len(self.voices)

    def __getitem__(self, key: SampleKey) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(self.voices[key[1]]), int(self.labels[key[1]])


@torch.no_grad()
def log_mel_of_clip(clip: np.ndarray) -> np.ndarray:
    """(L,) int16 → (64, T) float32 log-mel, normalised over the whole utterance."""
    return log_mel(int16_to_float(torch.from_numpy(clip[None])))[0].numpy()


@torch.no_grad()
def log_mels(audio, batch_size: int = 64):
    """(N, L) int16 clips → (N, 64, T) float32 log-mel, each utterance normalised over its whole length: once for
    an array, or as each clip is read for streamed rows (`s2f.dataset`)."""
    if is_lazy(audio):
        return MappedRows(audio, log_mel_of_clip)
    return np.concatenate([log_mel(int16_to_float(torch.from_numpy(audio[i:i + batch_size]))).numpy()
                           for i in range(0, len(audio), batch_size)])


def train_gan(family: str, audio, faces, labels: np.ndarray, p: TrainGanParams,
              runtime: Runtime, log: LogFn, checkpoint: Path | None = None,
              on_epoch: EpochHook | None = None) -> VoiceToFace:
    """audio (N, L) int16, faces (N, S, S, 3) uint8 at the family's image size (arrays, or rows streamed from the
    shards: `s2f.dataset`), labels (N,) speaker labels 0..K-1."""
    torch.manual_seed(p.seed)
    num_speakers = int(labels.max()) + 1
    net = network_config(family, p)
    # the GAN code's own closure too: a fix to a loss must retrain, not resume the old run's checkpoint
    digest = data_digest(audio, faces, labels) + closure_hash("s2f.training.gan")[:16]
    if family == "wen2019":
        voices, voice_key = log_mels(audio), "mel"   # Wen et al. crop frames of each utterance's features
        models = wen2019.build_wen2019(net, num_speakers)
        _pretrain_voice(models["voice"], voices, labels, p, runtime, digest, checkpoint)
        wen2019_losses.freeze_voice(models)
        steps = _wen2019_steps(models, p)
    else:
        voices, voice_key = audio, "wave"
        models = wav2pix.build_wav2pix(net, num_speakers)
        steps = _wav2pix_steps(models, p)
    family_params = getattr(p, family)
    batches = StepBatches(len(audio), family_params.batch_size, family_params.epochs, p.seed, runtime.rank,
                          runtime.world_size)
    settings = LoopSettings(p.loop.checkpoint_every, checkpoint,
                            fingerprint(family, p.model_dump(), runtime.world_size, digest),
                            p.loop.amp, p.loop.loader_workers)
    served = VoiceToFace(voice_to_face_config(family, net, num_speakers))

    def epoch_done(epoch: int) -> None:
        if on_epoch is not None:
            _copy_into(served, models)
            on_epoch(epoch, served)

    fit_adversarial(steps, FaceVoicePairs(voices, faces, labels, p.seed, voice_key=voice_key), batches, settings, runtime, log, epoch_done)
    _copy_into(served, models)
    return served.eval()


def _copy_into(served: VoiceToFace, models: nn.ModuleDict) -> None:
    """The trained voice network and generator into the serving wrapper (the same modules' weights)."""
    voice_key = "voice" if "voice" in models else "encoder"
    served.voice.load_state_dict(models[voice_key].state_dict())
    served.generator.load_state_dict(models["generator"].state_dict())


def _pretrain_voice(voice: nn.Module, mels: np.ndarray, labels: np.ndarray, p: TrainGanParams, runtime: Runtime,
                    digest: str, checkpoint: Path | None) -> None:
    """Wen et al.'s first phase: the voice embedder learns the training speakers, then is frozen for the GAN."""
    w = p.wen2019
    batches = StepBatches(len(mels), w.batch_size, w.pretrain_epochs, p.seed, runtime.rank, runtime.world_size)
    opt = torch.optim.Adam(voice.parameters(), lr=w.pretrain_lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    path = checkpoint.with_name(checkpoint.stem + ".voice.pt") if checkpoint else None
    settings = LoopSettings(p.loop.checkpoint_every, path,
                            fingerprint("wen2019-voice", w.model_dump(), p.seed, runtime.world_size, digest),
                            p.loop.amp, p.loop.loader_workers)

    def step_loss(model: nn.Module, batch: tuple, device: torch.device) -> dict[str, torch.Tensor]:
        wave, speaker = (t.to(device) for t in batch)
        logits = model(wen2019_losses.random_crop(wave))  # (B, K): the paper's random 3-8 s crops here too
        return {"total": F.cross_entropy(logits, speaker),
                "accuracy": (logits.detach().argmax(dim=1) == speaker).float().mean()}

    def report(epoch: int, row: dict[str, float]) -> None:
        if epoch == 0 or (epoch + 1) % 10 == 0 or epoch + 1 == w.pretrain_epochs:
            print(f"wen2019 voice embedder, epoch {epoch + 1}/{w.pretrain_epochs}: "
                  f"loss {row['loss_total']:.3f}, accuracy {row.get('loss_accuracy', float('nan')):.2f}")

    fit(SpeakerClassifier(voice), step_loss, LabelledVoices(mels, labels), batches, opt, sched, settings, runtime,
        report)


class SpeakerClassifier(nn.Module):
    """The voice embedder with its speaker head as one forward (so `fit` can wrap it in DDP): (B, L) → (B, K)."""

    def __init__(self, voice: nn.Module):
        super().__init__()
        self.voice = voice

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.voice.logits(wave)


def _wen2019_steps(models: nn.ModuleDict, p: TrainGanParams) -> GanSteps:
    w = p.wen2019
    d_params = wen2019.step_parameters(models, wen2019.D_STEP_KEYS)
    g_params = wen2019.step_parameters(models, wen2019.G_STEP_KEYS)
    return GanSteps(models, wen2019_losses.discriminator_loss, wen2019_losses.generator_loss,
                    torch.optim.Adam(d_params, lr=w.lr, betas=w.betas),
                    torch.optim.Adam(g_params, lr=w.lr, betas=w.betas))


def _wav2pix_steps(models: nn.ModuleDict, p: TrainGanParams) -> GanSteps:
    w = p.wav2pix
    training = dataclasses.replace(wav2pix_losses.DEFAULTS, lr_d=w.lr_d, lr_g=w.lr_g, betas=w.betas,
                                   batch_size=w.batch_size)
    opt_d, opt_g = wav2pix_losses.optimizers(models, training)
    return GanSteps(models, partial(wav2pix_losses.discriminator_loss, training=training),
                    partial(wav2pix_losses.generator_loss, training=training), opt_d, opt_g)
