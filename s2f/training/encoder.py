"""Train the voice encoder: voice → face feature, with the Speech2Face loss against the frozen face decoder.

Optimiser as in the paper: Adam (β1 = 0.5, ε = 1e-4), lr decayed ×`lr_decay` every `lr_decay_every` steps, batch 8.
Each step reads a random `crop_seconds` window of every 6 s clip (evaluation uses whole clips).

Loss weights (`loss.weights`): the paper's rule, not its numbers. At the calibration step (the paper's 1000th, or
`calibrate_within` of a shorter run) the gradient norm of each unweighted term w.r.t. the prediction v_s is measured,
averaged over the next `calibrate_batches` training batches, and λ1, λ2 are set so that each weighted term's norm
equals the decoder-L1 term's (`s2f.losses.calibrated_weights`); until then the configured weights train. The
paper's λ1 = 0.025, λ2 = 200 were found this way for 4096-D VGG-Face features and stand for that backend (`auto`).
On the dlib demo the distillation term is off by default (`loss.distill: 0`): through a head fitted on the few
training identities it taught the encoder to tell those speakers apart, and held-out retrieval fell (see params.yaml).

Validation (`validation`): a share of the TRAINING speakers is held out of training (`s2f.split.validation_speakers`)
and scored every epoch on whole clips: its loss terms and R@K against a gallery of those speakers' mean true face
features (`s2f.metrics.gallery_recall`), in the same per-epoch row as the training terms (`val_loss_*`,
`val_recall_at_K`), with the loss weights in effect (`weight_*`). The weights kept are those of the epoch with the
best validation R@1 averaged over the `validation.window` epochs up to it (`val_recall_at_1_trailing`: a dozen
validation speakers score in steps of a few points, and a single lucky epoch chose a refit half as long), among the
epochs with a full window (a run shorter than the window keeps its last epoch), or the last. Trailing means within
`validation.tolerance_se` standard errors of the best (`recall_standard_error`) are equal, and the latest of equals
is kept: a dozen speakers cannot tell apart the epochs of a flat curve, and a refit through an early one learns
less. The calibrated
weights, the recent scores and the best epoch's weights so far travel in every checkpoint, so a resumed run
calibrates and chooses as the uninterrupted one did.

Refit (`validation.refit`): holding a quarter of the speakers out costs the model a quarter of what it can learn
from, and on a corpus of a few dozen speakers that is most of the gap to the trait ceiling (demo: held-out 6 s R@1
0.22 from 36 speakers, 0.27 from all 48). So once validation has chosen the epoch, the encoder trains again from the
start, with the same rule for the weights, on every training speaker through that epoch, and that model is saved;
the validation scores stay those of the run that made the choice. The refit matches the chosen run in epochs, not
in optimizer steps: with a third more clips per epoch it takes a third more steps, and its step-wise lr decay ends
lower (demo: 1740 steps, lr 8e-5, against 1276 and 1.5e-4 at the epoch chosen). It has its own checkpoint, so a
run killed during the refit resumes there. Without validation speakers there is nothing to refit from.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from s2f.audio import SAMPLE_RATE, int16_to_float
from s2f.config import PAPER_WEIGHTS, TrainEncoderParams
from s2f.losses import LossWeights, calibrated_weights, speech2face_loss, term_gradient_norms
from s2f.metrics import gallery_recall
from s2f.models.presets import get_preset
from s2f.models.voice_encoder import ConvBlock, VoiceEncoder, VoiceEncoderConfig
from s2f.split import validation_speakers
from s2f.training.data import AudioWindows, StepBatches
from s2f.training.distributed import Runtime, mean_across_ranks
from s2f.training.loop import Hooks, LogFn, LoopSettings, data_digest, fingerprint, fit

VAL_KS = (1, 5, 10)   # validation recall@K, each where K is below the number of validation speakers (R@1 always)
TERMS = ("decoder_l1", "normalized_l2", "distill")


def encoder_config(p: TrainEncoderParams, out_dim: int) -> VoiceEncoderConfig:
    """The preset's architecture with the keys params set explicitly, ending in the face features' size."""
    m = p.model
    overrides = {k: v for k, v in {"last_channels": m.last_channels, "last_freq_stride": m.last_freq_stride,
                                    "kernel": m.kernel, "hidden": m.hidden}.items() if v is not None}
    if m.blocks is not None:
        overrides["blocks"] = tuple(ConvBlock(**b.model_dump()) for b in m.blocks)
    return dataclasses.replace(get_preset(m.preset).encoder, **overrides, out_dim=out_dim)


def calibration_step(p: TrainEncoderParams, steps: int) -> int:
    """The optimizer step before which the weights are calibrated: min(calibrate_at, calibrate_within × steps),
    and never past the run's last step."""
    return max(min(p.loss.calibrate_at, int(p.loss.calibrate_within * steps), steps - 1), 0)


@dataclass
class TrainedEncoder:
    model: VoiceEncoder               # the weights saved: the kept epoch's (`validation.keep`), or the refit's
    weights: LossWeights              # the loss weights in effect at the end
    calibration: dict[str, float] | None   # step, gradient norms and chosen weights; None when fixed
    kept_epoch: int                   # the epoch chosen: `model` holds its weights, or the refit's through it
    kept_row: dict[str, float]        # that epoch's row of the curve
    validation_speakers: int
    train_samples: int                # the clips `model` was trained on
    refit_epochs: int = 0             # epochs of the refit on every training speaker that `model` comes from (0: none)

    def summary(self) -> dict[str, float]:
        """Numbers for the stage's metrics JSON: the weights, the calibration and the kept epoch with its scores."""
        out: dict[str, float] = {f"weight_{k}": getattr(self.weights, k) for k in TERMS}
        out |= {f"calibration_{k}": v for k, v in (self.calibration or {}).items()}
        out |= {"kept_epoch": self.kept_epoch, "validation_speakers": self.validation_speakers,
                "train_samples": self.train_samples, "refit_epochs": self.refit_epochs}
        out |= {f"kept_{k}": v for k, v in self.kept_row.items() if k.startswith("val_")}
        return out


class _EncoderState:
    """What the encoder's hooks carry across a resume: the weights in effect, the calibration, the best epoch."""

    def __init__(self, weights: LossWeights):
        self.weights = weights
        self.calibration: dict[str, float] | None = None
        self.best: dict[str, Any] | None = None   # the epoch kept: {"epoch", "value", "model": state_dict}
        self.top: float | None = None             # the best trailing validation R@1 so far
        self.recent: list[float] = []             # the last `validation.window` epochs' validation R@1

    def state_dict(self) -> dict[str, Any]:
        return {"weights": dataclasses.asdict(self.weights), "calibration": self.calibration, "best": self.best,
                "top": self.top, "recent": self.recent}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.weights = LossWeights(**state["weights"])
        self.calibration, self.best, self.recent = state["calibration"], state["best"], state["recent"]
        self.top = state["top"]


def train_encoder(audio: np.ndarray, embedding: np.ndarray, f_dec: nn.Module, identity_head: nn.Module | None,
                  p: TrainEncoderParams, runtime: Runtime, log: LogFn, checkpoint: Path | None = None, *,
                  speakers: np.ndarray | None = None, backend: str = "dlib",
                  refit_log: Callable[[int], LogFn] | None = None) -> TrainedEncoder:
    """audio: (N, L) int16 clips; embedding: (N, D) their true face features; f_dec, identity_head: frozen;
    speakers: (N,) the clips' speakers (needed when `p.validation.fraction` > 0); backend: the face features'
    backend (`loss.weights: auto` keeps the paper's λ for `vggface` and calibrates for any other); `log` takes the
    per-epoch rows of the run that validates, `refit_log(epochs)` returns the callback for the refit's
    (`validation.refit`), which is `epochs` long."""
    if p.validation.fraction > 0 and speakers is None:
        raise ValueError("validation.fraction > 0 holds out training speakers: pass the clips' speakers")
    chosen = _train_and_validate(audio, embedding, f_dec, identity_head, p, runtime, log, checkpoint,
                                 speakers=speakers, backend=backend)
    if not (p.validation.refit and chosen.validation_speakers):
        return chosen
    epochs = chosen.kept_epoch + 1
    chosen.model.cpu()   # replaced by the refit's: the device's memory is the refit's
    if runtime.is_main:
        print(f"train_encoder: refitting on every training speaker for {epochs} epochs, through the epoch validation "
              f"chose on {chosen.validation_speakers} speakers (epoch {chosen.kept_epoch}, counted from 0 as in the "
              f"loss CSV)", flush=True)
    refit_params = p.model_copy(update={"epochs": epochs, "validation": p.validation.model_copy(
        update={"fraction": 0.0, "keep": "last", "refit": False})})
    refit = _train_and_validate(audio, embedding, f_dec, identity_head, refit_params, runtime,
                                refit_log(epochs) if refit_log else (lambda epoch, row: None),
                                checkpoint.with_name(f"{checkpoint.stem}_refit{checkpoint.suffix}") if checkpoint
                                else None, speakers=speakers, backend=backend)
    return dataclasses.replace(chosen, model=refit.model, weights=refit.weights, calibration=refit.calibration,
                               train_samples=refit.train_samples, refit_epochs=epochs)


def _train_and_validate(audio: np.ndarray, embedding: np.ndarray, f_dec: nn.Module,
                        identity_head: nn.Module | None, p: TrainEncoderParams, runtime: Runtime, log: LogFn,
                        checkpoint: Path | None, *, speakers: np.ndarray | None, backend: str) -> TrainedEncoder:
    """One training run: the speakers `p.validation` holds out are scored every epoch and choose the epoch kept."""
    held = (validation_speakers(np.asarray(speakers), p.validation.fraction, p.validation.seed)
            if speakers is not None else np.zeros(len(audio), bool))
    train = ~held
    torch.manual_seed(p.seed)
    model = VoiceEncoder(encoder_config(p, embedding.shape[1]))
    model.set_output_statistics(*column_statistics(embedding[train]))
    f_dec = f_dec.to(runtime.device).requires_grad_(False)
    head = identity_head.to(runtime.device).requires_grad_(False) if identity_head is not None else None
    mode = p.loss.mode(backend)
    configured = PAPER_WEIGHTS if mode == "paper" else {k: getattr(p.loss, k) for k in TERMS}
    state = _EncoderState(LossWeights(**configured, temperature=p.loss.temperature))
    train_audio = audio[train]

    def step_loss(encoder: nn.Module, batch: tuple, device: torch.device) -> dict[str, torch.Tensor]:
        wave, _, target = batch
        predicted = encoder(wave.to(device, non_blocking=True)).float()  # (B, D)
        return speech2face_loss(f_dec, target.to(device, non_blocking=True), predicted, state.weights, head)

    window = min(int(p.crop_seconds * SAMPLE_RATE), audio.shape[1])
    windows = AudioWindows(train_audio, window, p.seed, targets=embedding[train])
    batches = StepBatches(len(train_audio), p.batch_size, p.epochs, p.seed, runtime.rank, runtime.world_size)
    calibrate_at = calibration_step(p, batches.steps) if mode == "calibrate" else None

    @torch.no_grad()
    def before_step(step: int) -> None:
        if step != calibrate_at or state.calibration is not None:
            return
        later = StepBatches(len(train_audio), p.batch_size, p.epochs, p.seed, runtime.rank, runtime.world_size)
        later.start = step
        model.eval()
        sums: dict[str, float] = {}
        count = 0
        for keys in itertools.islice(iter(later), p.loss.calibrate_batches):  # the batches this run trains on next
            wave, _, target = zip(*(windows[k] for k in keys))
            predicted = model(torch.stack(wave).to(runtime.device)).float()
            with torch.enable_grad():
                norms = term_gradient_norms(f_dec, torch.stack(target).to(runtime.device), predicted,
                                            p.loss.temperature, head if state.weights.distill > 0 else None)
            sums = {k: sums.get(k, 0.0) + v for k, v in norms.items()}
            count += 1
        model.train()
        norms = mean_across_ranks({k: v / count for k, v in sums.items()}, runtime)
        state.weights = calibrated_weights(norms, state.weights)
        state.calibration = {"step": step, **{f"grad_norm_{k}": v for k, v in norms.items()},
                             **{f"weight_{k}": getattr(state.weights, k) for k in TERMS}}
        print(f"train_encoder: calibrated the loss weights at step {step}: " + ", ".join(
            f"{k} {getattr(state.weights, k):.4g}" for k in TERMS) + " (gradient norms w.r.t. v_s: " + ", ".join(
            f"{k} {v:.4g}" for k, v in norms.items()) + ")")

    validate = _validator(model, audio[held], torch.from_numpy(np.asarray(embedding[held], np.float32)),
                          np.asarray(speakers)[held] if speakers is not None else np.array([]),
                          f_dec, head, runtime.device) if held.any() else None
    keep_best = validate is not None and p.validation.keep == "best_val_recall_at_1"
    validation_clips = int(held.sum())

    def end_epoch(epoch: int) -> dict[str, float]:
        # averaged over ranks (each scores with its own batch-norm statistics), so every rank keeps the same epoch
        row = mean_across_ranks(validate(state.weights), runtime) if validate is not None else {}
        if validate is not None:
            state.recent = (state.recent + [row["val_recall_at_1"]])[-p.validation.window:]
            row["val_recall_at_1_trailing"] = float(np.mean(state.recent))
        chosen_on = row.get("val_recall_at_1_trailing")
        full_window = len(state.recent) >= min(p.validation.window, p.epochs)   # no early, single-epoch luck
        if keep_best and full_window:
            state.top = chosen_on if state.top is None else max(state.top, chosen_on)
            if chosen_on >= state.top - p.validation.tolerance_se * recall_standard_error(state.top, validation_clips):
                state.best = {"epoch": epoch, "value": chosen_on,   # the latest of equals
                              "model": {k: v.detach().clone() for k, v in model.state_dict().items()}}
        return row | {f"weight_{k}": getattr(state.weights, k) for k in TERMS}

    opt = torch.optim.Adam(model.parameters(), lr=p.lr, betas=p.betas, eps=p.eps)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=p.lr_decay_every, gamma=p.lr_decay)
    identity = [data_digest(audio, embedding, np.asarray(speakers, dtype=str) if speakers is not None
                            else np.array([], dtype=str)), backend]
    settings = LoopSettings(p.loop.checkpoint_every, checkpoint,
                            fingerprint(p.model_dump(), runtime.world_size, *identity),
                            p.loop.amp, p.loop.loader_workers)
    history = fit(model, step_loss, windows, batches, opt, sched, settings, runtime, log,
                  Hooks(before_step, end_epoch, state))
    kept = len(history) - 1
    if keep_best and state.best is not None:
        model.load_state_dict(state.best["model"])
        kept = int(state.best["epoch"])
    model.eval()
    return TrainedEncoder(model, state.weights, state.calibration, kept, history[kept] if history else {},
                          len(set(np.asarray(speakers)[held].tolist())) if speakers is not None else 0,
                          int(train.sum()))


def recall_standard_error(recall: float, queries: int) -> float:
    """The binomial standard error of a recall measured on `queries` clips: how far apart two epochs' validation
    R@1 must be before the difference means more than which few clips happened to rank first."""
    return math.sqrt(max(recall * (1 - recall), 0.0) / max(queries, 1))


def _validator(model: VoiceEncoder, audio: np.ndarray, target: torch.Tensor, speakers: np.ndarray, f_dec: nn.Module,
               head: nn.Module | None, device: torch.device):
    """The per-epoch validation: whole clips of the held-out speakers → `val_loss_*` and `val_recall_at_K` (gallery:
    each validation speaker's mean true face feature, all of them)."""
    ids = np.array(sorted(set(speakers.tolist())))
    gallery = np.stack([target.numpy()[speakers == s].mean(axis=0) for s in ids])
    ks = [k for k in VAL_KS if k == 1 or k < len(ids)]
    truth = target.to(device)

    @torch.no_grad()
    def validate(weights: LossWeights) -> dict[str, float]:
        model.eval()
        predicted = predict_features(model, audio)
        terms = speech2face_loss(f_dec, truth, torch.from_numpy(predicted).to(device), weights, head)
        recall = gallery_recall(predicted, speakers, gallery, ids, ks, gallery_size=len(ids))
        return ({f"val_loss_{k}": float(v) for k, v in sorted(terms.items())}
                | {f"val_recall_at_{k}": recall[f"recall_at_{k}"] for k in ks})

    return validate


def column_statistics(targets, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (unbiased) standard deviation of each feature over the rows of an array or a `ShardColumn`,
    accumulated in float64 a chunk of rows at a time: the statistics of a corpus that is never in memory at once."""
    total = total_sq = None
    count = 0
    for start in range(0, len(targets), chunk):
        rows = np.asarray(targets[start:start + chunk], np.float64)
        total = rows.sum(0) if total is None else total + rows.sum(0)
        total_sq = (rows ** 2).sum(0) if total_sq is None else total_sq + (rows ** 2).sum(0)
        count += len(rows)
    mean = total / count
    var = np.maximum(total_sq - count * mean ** 2, 0.0) / max(count - 1, 1)
    return torch.from_numpy(mean.astype(np.float32)), torch.from_numpy(np.sqrt(var).astype(np.float32))


@torch.no_grad()
def predict_features(encoder: VoiceEncoder, audio: np.ndarray, batch_size: int = 16,
                     seconds: float | None = None) -> np.ndarray:
    """Face features from (N, L) int16 clips (their first `seconds` when given) → (N, D) float32."""
    dev = next(encoder.parameters()).device
    length = audio.shape[1] if seconds is None else min(int(seconds * SAMPLE_RATE), audio.shape[1])
    out = [encoder(int16_to_float(torch.from_numpy(audio[i:i + batch_size, :length])).to(dev)).float().cpu()
           for i in range(0, len(audio), batch_size)]
    return torch.cat(out).numpy()
