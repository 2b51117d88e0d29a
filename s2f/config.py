"""Typed settings for each DVC stage, parsed from its own section of `params.yaml`.

Why pydantic: a typo or a wrong type in `params.yaml` fails at start-up with a message naming the key
(`train_encoder.epochs: Input should be a valid integer`), not as a crash an hour into training.
Unknown keys are errors too (`extra="forbid"`), so a misspelt option is never silently ignored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def resolve_workers(workers: int) -> int:
    """0 means every core the process may use."""
    return workers if workers > 0 else max(len(os.sched_getaffinity(0)), 1)


class DemoSourceParams(Section):
    speakers: int = Field(96, ge=2)
    clips_per_speaker: int = Field(4, ge=1)
    min_seconds: float = Field(3.0, gt=0)
    max_seconds: float = Field(7.0, gt=0)
    sample_rate: int = 16000
    fps: int = Field(5, ge=1)
    frame_size: int = Field(320, ge=128)
    seed: int = 2019


class AvspeechSourceParams(Section):
    """AVSpeech segments fetched from YouTube with yt-dlp (rate-limited, resumable through a ledger)."""

    csv: str = "data/avspeech.csv"
    limit: int | None = Field(None, ge=1, description="fetch at most this many valid rows (in CSV order)")
    url_template: str = Field("https://www.youtube.com/watch?v={youtube_id}",
                              description="where a YouTube id is fetched from; tests point it at 127.0.0.1")
    requests_per_minute: float = Field(20.0, gt=0)
    max_attempts: int = Field(4, ge=1, description="tries per segment for transient errors (429, 5xx, network)")
    backoff_seconds: float = Field(30.0, ge=0, description="wait before the 2nd try; doubled for each later one")
    retry_after_hours: float = Field(24.0, ge=0, description="a transiently failed segment is not retried before this")
    max_height: int = Field(720, ge=144, description="the best video stream at most this tall")
    timeout_seconds: float = Field(300.0, gt=0)


class LocalSourceParams(Section):
    """Media already on disk (or under s3://): a clip manifest CSV, a folder of videos, or VoxCeleb + VGGFace."""

    kind: Literal["manifest", "folder", "voxceleb"] = "manifest"
    manifest: str | None = Field(None, description="CSV with `clip` and `speaker` columns; clips relative to it")
    folder: str | None = Field(None, description="videos; the first sub-folder under it names the speaker")
    voxceleb_audio: str | None = Field(None, description="VoxCeleb layout: <id>/<video>/<n>.wav|m4a")
    vggface_images: str | None = Field(None, description="VGGFace layout: <name or n-id>/<n>.jpg")
    voxceleb_meta: str | None = Field(None, description="vox1_meta.csv or vox2_meta.csv: VoxCeleb id → VGGFace id")
    copy_clips: bool = Field(True, description="copy media under data/raw so DVC versions it; false: reference it")


class DataParams(Section):
    """`download` stage."""

    source: Literal["demo", "avspeech", "local"] = "demo"
    demo: DemoSourceParams = DemoSourceParams()
    avspeech: AvspeechSourceParams = AvspeechSourceParams()
    local: LocalSourceParams = LocalSourceParams()
    workers: int = 0


class DetectorParams(Section):
    kind: Literal["hog", "cnn"] = Field("hog", description="dlib HOG (fast, frontal) or the MMOD CNN (~2 s/frame on CPU)")
    upsample: int = Field(0, ge=0, le=2)
    min_score: float = 0.5
    max_side: int = Field(640, ge=160, description="frames are searched downscaled to at most this many pixels")


class PreprocessParams(Section):
    sample_rate: int = 16000
    seconds: float = Field(6.0, gt=0)
    face_frames: int = Field(3, ge=1, description="frames per clip searched for the speaker's face")
    second_face_ratio: float = Field(0.5, gt=0, le=1, description="another face this large (area share of the "
                                     "largest) makes a clip without a face position ambiguous: multiple_faces")
    crop_size: int = 224
    crop_margin: float = Field(0.4, ge=0)
    min_face_size: int = Field(60, ge=1)
    min_rms: float = Field(1e-3, ge=0, description="RMS of int16/32768 audio below which a clip counts as silent")
    detector: DetectorParams = DetectorParams()
    min_seconds: float = Field(1.0, gt=0, description="clips with less audio are quarantined as too_short")
    max_source_seconds: float = Field(4 * 3600.0, gt=0, description="longer containers are quarantined as too_long")
    shard_size: int = Field(1000, ge=1)
    max_bad_shard_fraction: float = Field(0.1, ge=0, le=1, description="share of shards failing validation "
                                          "above which the stage fails")
    output_uri: str | None = Field(None, description="s3://bucket/prefix: each finished shard is also uploaded there")
    workers: int = 0


class SplitParams(Section):
    test_fraction: float = Field(0.5, gt=0, lt=1)
    seed: int = 7


class IdentityHeadParams(Section):
    """The classifier f_VGG of the distillation loss, fitted on the training speakers for the dlib backend."""

    epochs: int = Field(300, ge=1)
    lr: float = Field(0.05, gt=0)


class FeaturesParams(Section):
    backend: Literal["dlib", "vggface"] = "dlib"
    vggface_weights: str | None = Field(None, description="the VGG-Face weight file (docs/face_backends.md)")
    split: SplitParams = SplitParams()
    identity_head: IdentityHeadParams = IdentityHeadParams()
    workers: int = 0


class LoopParams(Section):
    """How a training run executes (not what it learns): checkpoints, mixed precision, loader workers."""

    checkpoint_every: int = Field(0, ge=0, description="optimizer steps between checkpoints (0: only at the end)")
    amp: bool = Field(True, description="bf16 autocast on CUDA; ignored on CPU")
    loader_workers: int = Field(0, ge=0, description="DataLoader worker processes (0: in the training process)")


class DecoderLossParams(Section):
    texture: float = Field(1.0, ge=0, description="L1 between decoded and aligned true texture")
    landmarks: float = Field(100.0, ge=0, description="MSE of the 68 landmarks (normalized coordinates)")
    identity: float = Field(0.1, ge=0, description="1 − cos(proxy(decoded face), true feature)")


class FeatureProxyParams(Section):
    """A small CNN image → face feature, fitted to the backend's features and frozen: a differentiable stand-in
    for dlib / VGG-Face in the identity-consistency term."""

    channels: int = Field(32, ge=4)
    epochs: int = Field(30, ge=1)
    lr: float = Field(2e-3, gt=0)


class TrainDecoderParams(Section):
    image_size: int = Field(64, description="decoded face size: texture_grid × 2^k (the paper: 224 from 14)")
    texture_grid: int = Field(8, ge=2)
    texture_channels: int = Field(256, ge=8)
    hidden: int = Field(512, ge=1, description="the shared FC layer, the f_dec of the encoder's loss")
    landmark_hidden: int = Field(256, ge=1)
    epochs: int = Field(60, ge=1)
    batch_size: int = Field(32, ge=2)
    lr: float = Field(2e-3, gt=0)
    loss: DecoderLossParams = DecoderLossParams()
    proxy: FeatureProxyParams = FeatureProxyParams()
    loop: LoopParams = LoopParams()
    seed: int = 0


class ConvBlockParams(Section):
    channels: int = Field(ge=1)
    time_pool: bool = False
    freq_stride: int = Field(1, ge=1)


class VoiceEncoderParams(Section):
    """A named preset (`s2f model-summary --preset NAME`), optionally overridden key by key."""

    preset: Literal["demo", "paper"] = "demo"
    blocks: list[ConvBlockParams] | None = None
    last_channels: int | None = Field(None, ge=1)
    last_freq_stride: int | None = Field(None, ge=1)
    kernel: int | None = Field(None, ge=2)
    hidden: int | None = Field(None, ge=1)


class LossParams(Section):
    decoder_l1: float = Field(1.0, ge=0)
    normalized_l2: float = Field(0.025, ge=0, description="λ1")
    distill: float = Field(200.0, ge=0, description="λ2 (0 turns the distillation term off)")
    temperature: float = Field(2.0, gt=0, description="T")


class TrainEncoderParams(Section):
    model: VoiceEncoderParams = VoiceEncoderParams()
    crop_seconds: float = Field(2.5, gt=0.5, description="random crop of each 6 s clip per step (augmentation)")
    epochs: int = Field(40, ge=1)
    batch_size: int = Field(8, ge=2)
    lr: float = Field(1e-3, gt=0)
    betas: tuple[float, float] = (0.5, 0.999)
    eps: float = 1e-4
    lr_decay: float = Field(0.95, gt=0, le=1)
    lr_decay_every: int = Field(10000, ge=1, description="optimizer steps between lr decays")
    loss: LossParams = LossParams()
    loop: LoopParams = LoopParams()
    seed: int = 0


class EvaluateParams(Section):
    ks: list[int] = [1, 2, 5, 10]
    gallery_size: int = Field(100, ge=2, description="identities per retrieval gallery (the paper: 100)")
    short_seconds: float = Field(3.0, gt=0, description="the shorter input evaluated beside the full clip")
    craniofacial_max: int | None = Field(300, ge=2, description="test clips measured with dlib landmarks (null: all)")
    grid_speakers: int = Field(8, ge=1)
    seed: int = 0


class PromoteParams(Section):
    """The gate `s2f promote` applies before moving the `champion` alias to the `challenger` (not a DVC stage:
    promotion changes registry state, not files)."""

    metric: str = Field("retrieval.6s.recall_at_1", description="an evaluation metric, as flattened in MLflow")
    higher_is_better: bool = True
    min_improvement: float = Field(0.0, ge=0, description="the challenger must beat the champion by at least this")


S = TypeVar("S", bound=Section)
SECTIONS: dict[str, type[Section]] = {
    "data": DataParams, "preprocess": PreprocessParams, "features": FeaturesParams,
    "train_decoder": TrainDecoderParams, "train_encoder": TrainEncoderParams, "evaluate": EvaluateParams,
    "promote": PromoteParams,
}


class ParamsError(ValueError):
    pass


def load_section(name: str, path: Path | str = "params.yaml") -> Section:
    """The validated section `name` of the params file; errors name the file, the section and the key."""
    if name not in SECTIONS:
        raise ParamsError(f"unknown params section {name!r}; known: {', '.join(SECTIONS)}")
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ParamsError(f"cannot read {path}: {err}") from err
    try:
        return SECTIONS[name].model_validate(raw.get(name, {}))
    except ValidationError as err:
        problems = "; ".join(f"{name}.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise ParamsError(f"{path}: {problems}") from err
