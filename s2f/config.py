"""Typed settings for each DVC stage, parsed from its own section of `params.yaml`.

Why pydantic: a typo or a wrong type in `params.yaml` fails at start-up with a message naming the key
(`train_encoder.epochs: Input should be a valid integer`), not as a crash an hour into training.
Unknown keys are errors too (`extra="forbid"`), so a misspelt option is never silently ignored; so are unknown or
missing sections, so a misspelt section name never silently runs a stage on its defaults. Every number has the range
in which it means something (a recall@-3, a 0 Hz sample rate or Adam betas of 2 pass a type check but not this).
The defaults equal params.yaml's values (tests/test_config.py checks it), so `s2f ingest` without a params file
behaves as the pipeline does.
"""

from __future__ import annotations

import difflib
import os
import string
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator,
                      model_validator)
from pydantic.fields import FieldInfo

Seed = Annotated[int, Field(ge=0, le=2**32 - 1, description="numpy refuses negative seeds; 32 bits suit every RNG")]
Workers = Annotated[int, Field(ge=0, description="processes; 0: every core the process may use")]
SampleRate = Annotated[int, Field(ge=8000, description="Hz; below telephone speech's 8 kHz a voice is not kept")]


class Section(BaseModel):
    # allow_inf_nan=False: `.inf` seconds or a `.nan` rate would pass the bound checks; validate_default=True: a
    # cross-field check on a field left at its default (`min_seconds: 20` alone) still runs
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, validate_default=True)


def _numbered_partitions(value: list[int]) -> list[int]:
    """Partition lists name DVC foreach stages (`download@0`, `preprocess@1`, …): exactly 0, 1, …, P-1."""
    if value != list(range(len(value))):
        raise ValueError(f"must be 0, 1, …, P-1 (they name the stages download@0, preprocess@0, …), got {value}")
    return value


def _at_least(low_key: str) -> Callable[[float, ValidationInfo], float]:
    """A validator for the upper field of a (low, high) pair: high < low empties the range it describes."""

    def check(value: float, info: ValidationInfo) -> float:
        low = info.data.get(low_key)  # absent when the low field itself failed: that error is reported instead
        if low is not None and value < low:
            raise ValueError(f"must be at least {low_key} ({low})")
        return value

    return check


def _absolute(path: str) -> str:
    if not Path(path).is_absolute():
        raise ValueError("must be an absolute folder (a relative one would depend on where the stage runs)")
    return path


def _unique(values: list[int]) -> list[int]:
    if len(set(values)) != len(values):
        raise ValueError(f"values must be unique, got {values}")
    return values


def _any_positive(weights: dict[str, float], section: str) -> None:
    if not any(w > 0 for w in weights.values()):
        raise ValueError(f"at least one of {', '.join(weights)} must be > 0: with all at 0 {section} learns nothing")


def resolve_workers(workers: int) -> int:
    """0 means every core the process may use."""
    return workers if workers > 0 else max(len(os.sched_getaffinity(0)), 1)


class DemoSourceParams(Section):
    speakers: int = Field(120, ge=2)
    clips_per_speaker: int = Field(4, ge=1)
    min_seconds: float = Field(3.0, gt=0)
    max_seconds: float = Field(7.0, gt=0)
    sample_rate: SampleRate = 16000
    fps: int = Field(5, ge=1)
    frame_size: int = Field(320, ge=128)
    seed: Seed = 2019

    _max_seconds = field_validator("max_seconds")(_at_least("min_seconds"))


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

    @field_validator("url_template")
    @classmethod
    def _one_id_placeholder(cls, template: str) -> str:
        """Without `{youtube_id}` every row fetches the same URL; another placeholder fails only at fetch time."""
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
        if fields != {"youtube_id"}:
            raise ValueError(f"must contain {{youtube_id}} and no other placeholder, got {sorted(fields)}")
        return template


class LocalSourceParams(Section):
    """Media already on disk (or under s3://): a clip manifest CSV, a folder of videos, or VoxCeleb + VGGFace."""

    kind: Literal["manifest", "folder", "voxceleb"] = "manifest"
    manifest: str | None = Field("../shared/data/realsample/manifest.csv",
                                 description="CSV with `clip` and `speaker` columns; clips relative to it")
    folder: str | None = Field(None, description="videos; the first sub-folder under it names the speaker")
    voxceleb_audio: str | None = Field(None, description="VoxCeleb layout: <id>/<video>/<n>.wav|m4a")
    vggface_images: str | None = Field(None, description="VGGFace layout: <name or n-id>/<n>.jpg")
    voxceleb_meta: str | None = Field(None, description="vox1_meta.csv or vox2_meta.csv: VoxCeleb id → VGGFace id")
    copy_clips: bool = Field(True, description="copy media under data/raw so DVC versions it; false: reference it")
    allowed_roots: list[Annotated[str, AfterValidator(_absolute)]] = Field(
        [], description="absolute folders a manifest may name media in besides its own folder (s3:// is always fine)")


class DataParams(Section):
    """`download` stage."""

    source: Literal["demo", "avspeech", "local"] = "demo"
    demo: DemoSourceParams = DemoSourceParams()
    avspeech: AvspeechSourceParams = AvspeechSourceParams()
    local: LocalSourceParams = LocalSourceParams()
    partitions: list[int] = Field([0], min_length=1, description="0, 1, …, P-1: download runs as one DVC stage "
                                  "per partition (download@K: row r of the source in partition r mod P, its own "
                                  "ledger and rate limit), then `collect`")
    workers: Workers = 0

    _partitions = field_validator("partitions")(lambda value: _numbered_partitions(value))


class DetectorParams(Section):
    kind: Literal["hog", "cnn"] = Field("hog", description="dlib HOG (fast, frontal) or the MMOD CNN (~2 s/frame on CPU)")
    upsample: int = Field(0, ge=0, le=2)
    min_score: float = Field(0.5, description="dlib's detection score: a signed margin, unbounded either way "
                             "(negative admits weaker detections)")
    max_side: int = Field(640, ge=160, description="frames are searched downscaled to at most this many pixels")


class PreprocessParams(Section):
    sample_rate: SampleRate = 16000
    seconds: float = Field(6.0, gt=0)
    face_frames: int = Field(3, ge=1, description="frames per clip searched for the speaker's face")
    reference_frames_from: int = Field(1280 * 720, ge=0, description="pixels: video frames at least this large "
                                       "are searched among the frames others are predicted from (I, P, "
                                       "reference B) next to each time, so the rest is never decoded; 0: never")
    second_face_ratio: float = Field(0.5, gt=0, le=1, description="another face this large (area share of the "
                                     "largest) makes a clip without a face position ambiguous: multiple_faces")
    crop_size: int = Field(224, ge=32, description="px; smaller crops leave dlib's 68 landmarks nothing to find")
    crop_margin: float = Field(0.4, ge=0)
    jpeg_quality: int = Field(95, ge=50, le=100, description="crops are stored as JPEG at this quality (4:4:4); "
                              "every later stage sees the decoded JPEG")
    min_face_size: int = Field(60, ge=1)
    min_rms: float = Field(1e-3, ge=0, lt=1, description="RMS of int16/32768 audio below which a clip counts as "
                           "silent (full scale is 1: a threshold of 1 calls every clip silent)")
    detector: DetectorParams = DetectorParams()
    min_seconds: float = Field(1.0, gt=0, description="clips with less audio are quarantined as too_short")
    max_source_seconds: float = Field(4 * 3600.0, gt=0, description="longer containers are quarantined as too_long")
    shard_size: int = Field(1000, ge=1)
    max_bad_shard_fraction: float = Field(0.1, ge=0, le=1, description="share of shards failing validation "
                                          "above which the stage fails")
    output_uri: str | None = Field(None, pattern=r"^s3://[^/]+", description="s3://bucket/prefix: each finished "
                                   "shard is also uploaded there")
    partitions: list[int] = Field([0], min_length=1, description="0, 1, …, P-1: preprocess and features run as "
                                  "one DVC stage per partition (shard k in partition k mod P), then `gather`")
    workers: Workers = 0

    _max_source_seconds = field_validator("max_source_seconds")(_at_least("min_seconds"))

    _partitions = field_validator("partitions")(lambda value: _numbered_partitions(value))


class SplitParams(Section):
    test_fraction: float = Field(0.4, gt=0, lt=1)
    seed: Seed = 7


class IdentityHeadParams(Section):
    """The classifier f_VGG of the distillation loss, fitted on the training speakers for the dlib backend."""

    epochs: int = Field(300, ge=1)
    lr: float = Field(0.05, gt=0)


class FeaturesParams(Section):
    backend: Literal["dlib", "vggface"] = "dlib"
    vggface_weights: str | None = Field(None, description="the VGG-Face weight file (docs/face_backends.md)")
    split: SplitParams = SplitParams()
    identity_head: IdentityHeadParams = IdentityHeadParams()
    workers: Workers = 0


class LoopParams(Section):
    """How a training run executes (not what it learns): checkpoints, mixed precision, loader workers."""

    checkpoint_every: int = Field(0, ge=0, description="optimizer steps between checkpoints (0: only at the end)")
    amp: bool = Field(True, description="bf16 autocast on CUDA; ignored on CPU")
    loader_workers: int = Field(0, ge=0, description="DataLoader worker processes (0: in the training process)")
    in_memory_mb: float = Field(1024, ge=0, description="a training split whose decoded columns fit in this many MB "
                                "is read into memory once; a larger one streams from the shards row by row")
    cpu_threads: int = Field(2, ge=0, description="torch threads on the CPU; the weights depend on it "
                             "(0: torch's choice, every core; the weights then depend on the machine; s2f.numerics)")


class DecoderLossParams(Section):
    texture: float = Field(1.0, ge=0, description="L1 between decoded and aligned true texture")
    landmarks: float = Field(100.0, ge=0, description="MSE of the 68 landmarks (normalized coordinates)")
    identity: float = Field(0.1, ge=0, description="1 − cos(proxy(decoded face), true feature)")

    @model_validator(mode="after")
    def _something_to_learn(self) -> DecoderLossParams:
        _any_positive({"texture": self.texture, "landmarks": self.landmarks, "identity": self.identity}, "the decoder")
        return self


class FeatureProxyParams(Section):
    """A small CNN image → face feature, fitted to the backend's features and frozen: a differentiable stand-in
    for dlib / VGG-Face in the identity-consistency term."""

    channels: int = Field(32, ge=4)
    epochs: int = Field(30, ge=1)
    lr: float = Field(2e-3, gt=0)


class TrainDecoderParams(Section):
    texture_grid: int = Field(8, ge=2)
    image_size: int = Field(64, ge=8, description="decoded face size: texture_grid × 2^k (the paper: 224 from 14)")
    texture_channels: int = Field(256, ge=8)
    hidden: int = Field(512, ge=1, description="the shared FC layer, the f_dec of the encoder's loss")
    landmark_hidden: int = Field(256, ge=1)
    warp_field: int | None = Field(16, ge=2, description="the warp's spline is evaluated on warp_field² points and "
                                   "upsampled (null: at every pixel)")
    epochs: int = Field(60, ge=1)
    batch_size: int = Field(32, ge=2)
    lr: float = Field(2e-3, gt=0)
    loss: DecoderLossParams = DecoderLossParams()
    proxy: FeatureProxyParams = FeatureProxyParams()
    loop: LoopParams = LoopParams(checkpoint_every=100)
    seed: Seed = 0

    @field_validator("image_size")
    @classmethod
    def _grid_times_power_of_two(cls, size: int, info: ValidationInfo) -> int:
        """The texture CNN doubles the grid k times, so only texture_grid × 2^k sizes can be decoded."""
        grid = info.data.get("texture_grid")
        if grid is not None and (size % grid or (size // grid) & (size // grid - 1)):
            raise ValueError(f"must be texture_grid × 2^k: with texture_grid {grid}, one of "
                             f"{grid}, {grid * 2}, {grid * 4}, {grid * 8}, …")
        return size


class ConvBlockParams(Section):
    channels: int = Field(ge=1)
    time_pool: bool = False
    freq_stride: int = Field(1, ge=1)


class VoiceEncoderParams(Section):
    """A named preset (`s2f model-summary --preset NAME`), optionally overridden key by key."""

    preset: Literal["demo", "paper"] = "demo"
    blocks: list[ConvBlockParams] | None = Field(None, min_length=1)
    last_channels: int | None = Field(None, ge=1)
    last_freq_stride: int | None = Field(None, ge=1)
    kernel: int | None = Field(None, ge=2)
    hidden: int | None = Field(None, ge=1)


class LossParams(Section):
    """The Speech2Face loss's weights, fixed or set by the paper's rule (`s2f.losses.calibrated_weights`)."""

    decoder_l1: float = Field(1.0, ge=0, description="the reference weight the rule matches the others to")
    normalized_l2: float = Field(0.025, ge=0, description="λ1 (calibrated: the weight until the calibration step; "
                                 "0: off)")
    distill: float = Field(0.0, ge=0, description="λ2 (calibrated: the weight until the calibration step; 0: off)")
    temperature: float = Field(2.0, gt=0, description="T")
    weights: Literal["auto", "calibrate", "fixed"] = Field(
        "auto", description="calibrate: the terms weighted > 0 above are reweighted at the calibration step so "
        "every term's gradient norm w.r.t. the prediction equals the decoder-L1 term's; fixed: the values above "
        "throughout; auto: the paper's own λ1 = 0.025, λ2 = 200 (PAPER_WEIGHTS) for the vggface backend, whose "
        "features they were chosen for, and calibrate for any other")
    calibrate_at: int = Field(1000, ge=0, description="optimizer step of the calibration (the paper: the 1000th)")
    calibrate_within: float = Field(0.1, gt=0, le=1, description="a shorter run calibrates at this share of its "
                                    "steps instead: at min(calibrate_at, calibrate_within × steps)")
    calibrate_batches: int = Field(4, ge=1, description="batches the gradient norms are averaged over")

    @model_validator(mode="after")
    def _something_to_learn(self) -> LossParams:
        _any_positive({"decoder_l1": self.decoder_l1, "normalized_l2": self.normalized_l2, "distill": self.distill},
                      "the encoder")
        if self.weights != "fixed" and self.decoder_l1 <= 0:
            raise ValueError(f"weights: {self.weights} matches every term's gradient to the decoder-L1 term's: "
                             "decoder_l1 must be > 0 (or set weights: fixed)")
        return self

    def mode(self, backend: str) -> Literal["calibrate", "fixed", "paper"]:
        """What `weights` means for the face features of `backend`: `paper` is fixed at PAPER_WEIGHTS."""
        if self.weights == "auto":
            return "paper" if backend == "vggface" else "calibrate"
        return self.weights


PAPER_WEIGHTS = {"decoder_l1": 1.0, "normalized_l2": 0.025, "distill": 200.0}   # Oh et al. 2019, for VGG-Face fc7


class EncoderValidationParams(Section):
    """Speakers carved from the TRAINING speakers (never the test ones), scored every epoch."""

    fraction: float = Field(0.25, ge=0, lt=1, description="share of the training speakers held out (0: none; "
                            "otherwise at least one, and at least one left to train on)")
    seed: Seed = 0
    keep: Literal["best_val_recall_at_1", "last"] = Field(
        "best_val_recall_at_1", description="the epoch kept: the one with the best validation R@1 (averaged over "
        "`window` epochs; the latest of equals), or the last; `refit` then trains on every speaker through it")
    window: int = Field(5, ge=1, description="epochs in the trailing mean of validation R@1 the choice is made on "
                        "(1: each epoch's own): a few validation speakers score in coarse, noisy steps")
    tolerance_se: float = Field(1.0, ge=0, description="trailing means within this many standard errors of "
                                "the best (√(p(1−p)/n) of R@1 p on n validation clips) count as equal, and the latest "
                                "of equals is kept (0: only exact equals)")
    refit: bool = Field(True, description="then train again from the start on every training speaker, validation "
                        "ones included, through the epoch kept, and save that model (as ridge refits its chosen "
                        "strength): the choice is made on held-out speakers, the model learns from all of them; "
                        "without validation speakers (fraction 0) there is nothing to refit")

    @model_validator(mode="after")
    def _keep_needs_speakers(self) -> EncoderValidationParams:
        if self.keep != "last" and self.fraction == 0:
            raise ValueError(f"keep: {self.keep} needs validation speakers: set fraction > 0 or keep: last")
        return self


Beta = Annotated[float, Field(ge=0, lt=1, description="Adam's moment decay: 1 never forgets, above 1 diverges")]


class TrainEncoderParams(Section):
    model: VoiceEncoderParams = VoiceEncoderParams()
    crop_seconds: float = Field(1.5, gt=0.5, description="random crop of each 6 s clip per step (augmentation); "
                                "at most the clip: the stage checks it against the shards' audio")
    epochs: int = Field(90, ge=1)
    batch_size: int = Field(8, ge=2)
    lr: float = Field(1e-3, gt=0)
    betas: tuple[Beta, Beta] = (0.5, 0.999)
    eps: float = Field(1e-4, gt=0, description="Adam's denominator guard; 0 divides by zero on a silent gradient")
    lr_decay: float = Field(0.9, gt=0, le=1)
    lr_decay_every: int = Field(70, ge=1, description="optimizer steps between lr decays")
    loss: LossParams = LossParams()
    validation: EncoderValidationParams = EncoderValidationParams()
    loop: LoopParams = LoopParams(checkpoint_every=500)
    seed: Seed = 0


GAN_FAMILIES = ("wen2019", "wav2pix")
Width = Annotated[float, Field(gt=0, le=4, description="channel multiplier of every layer (1: the paper's widths)")]


class Wen2019Params(Section):
    """Wen, Singh & Raj 2019 and the [Re] replication's variants (docs/gan_families.md)."""

    variant: Literal["original", "bn", "bn_tanh", "tanh", "dropout"] = "bn_tanh"
    width: Width = 0.125
    pretrain_epochs: int = Field(60, ge=1, description="the voice embedder trained as a speaker classifier first")
    pretrain_lr: float = Field(1e-3, gt=0)
    epochs: int = Field(80, ge=1)
    batch_size: int = Field(16, ge=2, description="the paper: 128")
    lr: float = Field(2e-4, gt=0)
    betas: tuple[Beta, Beta] = (0.5, 0.999)


class Wav2PixParams(Section):
    """Duarte et al. 2019 (docs/gan_families.md)."""

    image_size: Literal[64, 128] = 64
    width: Width = 0.125
    epochs: int = Field(80, ge=1)
    batch_size: int = Field(16, ge=2, description="the paper: 64")
    lr_d: float = Field(4e-4, gt=0)
    lr_g: float = Field(4e-4, gt=0, description="the paper: 1e-4")
    betas: tuple[Beta, Beta] = (0.5, 0.999)


class TrainGanParams(Section):
    families: list[Literal["wen2019", "wav2pix"]] = Field(list(GAN_FAMILIES), min_length=1, description="each trains in its "
                                                          "own DVC stage, train_gan@<family>")
    unseen_speech_per_speaker: int = Field(1, ge=0, description="clips per training speaker left out of GAN "
                                           "training for the seen-speaker / unseen-speech identity metric")
    wen2019: Wen2019Params = Wen2019Params()
    wav2pix: Wav2PixParams = Wav2PixParams()
    loop: LoopParams = LoopParams(checkpoint_every=200)
    seed: Seed = 0

    @field_validator("families")
    @classmethod
    def _each_once(cls, families: list[str]) -> list[str]:
        if len(set(families)) != len(families):
            raise ValueError(f"each family once, got {families}")
        return families


class EvaluateParams(Section):
    gallery_size: int = Field(100, ge=2, description="identities per retrieval gallery (the paper: 100)")
    ks: list[Annotated[int, Field(ge=1)]] = Field([1, 2, 5, 10], min_length=1,
                                                  description="recall@K; unique, each below gallery_size")
    short_seconds: float = Field(3.0, gt=0, description="the shorter input evaluated beside the full clip; below "
                                 "the clip length (checked by the stage against the shards' audio)")
    craniofacial_max: int | None = Field(300, ge=2, description="test clips measured with dlib landmarks (null: all)")
    grid_speakers: int = Field(8, ge=1)
    seed: Seed = 0
    cpu_threads: int = Field(2, ge=0, description="torch threads on the CPU; the drawn faces depend on it "
                             "(0: torch's choice, every core; the results then depend on the machine; s2f.numerics)")

    @field_validator("ks")
    @classmethod
    def _ks_mean_something(cls, ks: list[int], info: ValidationInfo) -> list[int]:
        """A repeated K is reported twice; K ≥ the gallery size is recall 1 whatever the model does."""
        _unique(ks)
        gallery = info.data.get("gallery_size")
        if gallery is not None and max(ks) >= gallery:
            raise ValueError(f"each K must be below gallery_size ({gallery}), got {max(ks)}")
        return ks


class PromoteParams(Section):
    """The gate `s2f promote` applies before moving the `champion` alias to the `challenger` (not a DVC stage:
    promotion changes registry state, not files)."""

    metric: str = Field("retrieval.6s.recall_at_1", min_length=1,
                        description="an evaluation metric, as flattened in MLflow")
    higher_is_better: bool = True
    min_improvement: float = Field(0.005, ge=0, description="the challenger must beat the champion by at least this")
    chance_p_value: float | None = Field(0.01, gt=0, lt=1, description="refuse a challenger whose gate metric is not "
                                         "above its chance level at this one-sided binomial p-value (metrics the "
                                         "report gives a chance level: recall_at_K, matching accuracy); null: no "
                                         "such floor")


S = TypeVar("S", bound=Section)
SECTIONS: dict[str, type[Section]] = {
    "data": DataParams, "preprocess": PreprocessParams, "features": FeaturesParams,
    "train_decoder": TrainDecoderParams, "train_encoder": TrainEncoderParams, "train_gan": TrainGanParams,
    "evaluate": EvaluateParams,
    "promote": PromoteParams,
}


class ParamsError(ValueError):
    pass


def load_section(name: str, path: Path | str = "params.yaml") -> Section:
    """The validated section `name` of the params file; errors name the file, the dotted key and what is allowed.

    A missing section is an error, not the defaults: `preproces:` would otherwise run the stage on defaults without
    a word. Unknown sections are errors for the same reason.
    """
    if name not in SECTIONS:
        raise ParamsError(f"unknown params section {name!r}; known: {', '.join(SECTIONS)}")
    raw = _read_sections(path)
    _check_sections(name, raw, path)
    try:
        return SECTIONS[name].model_validate(raw[name] or {})
    except ValidationError as err:
        problems = "; ".join(_describe(name, SECTIONS[name], e) for e in err.errors())
        raise ParamsError(f"{path}: {problems}") from err


def clip_length_problem(key: str, seconds: float, clip_seconds: float, path: Path | str,
                        equal_ok: bool = True) -> str | None:
    """Why `key` cannot apply to clips of `clip_seconds` (None when it can), for stages that learn the clip length
    from their data: a section cannot check it, the clip length is another stage's param (preprocess.seconds)."""
    if seconds < clip_seconds or (equal_ok and seconds == clip_seconds):
        return None
    bound = "at most" if equal_ok else "below"
    return (f"{path}: {key} = {seconds:g}: must be {bound} the clip length, {clip_seconds:g} s of audio in the "
            "preprocessed shards")


def _read_sections(path: Path | str) -> dict[Any, Any]:
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ParamsError(f"cannot read {path}: {err}") from err
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected sections ({', '.join(SECTIONS)}) at the top level, "
                          f"got a {type(raw).__name__}")
    return raw


def _check_sections(name: str, raw: dict[Any, Any], path: Path | str) -> None:
    """A missing `name` or a section no stage reads (most likely a misspelling) is an error naming both."""
    problems = [f"no `{name}` section"] if name not in raw else []
    for unknown in (str(k) for k in raw if k not in SECTIONS):
        close = difflib.get_close_matches(unknown, SECTIONS, n=1)
        problems.append(f"unknown section `{unknown}`" + (f" (did you mean `{close[0]}`?)" if close else ""))
    if problems:
        raise ParamsError(f"{path}: {'; '.join(problems)}; the sections are {', '.join(SECTIONS)}")


def _step(annotation: Any, part: str | int) -> tuple[Any, list[Any]]:
    """The type and constraints one step down `loc`: a field of a section, or an item of a list or tuple."""
    if isinstance(part, str):
        is_section = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        field = annotation.model_fields.get(part) if is_section else None
        return (field.annotation, list(field.metadata)) if field else (None, [])
    args = typing.get_args(annotation)
    item = args[part] if typing.get_origin(annotation) is tuple and part < len(args) else (args or [None])[0]
    if typing.get_origin(item) is not Annotated:
        return item, []
    base, *extras = typing.get_args(item)
    return base, [m for e in extras for m in (e.metadata if isinstance(e, FieldInfo) else [e])]


BOUND_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def _describe(section: str, model: type[Section], error: dict[str, Any]) -> str:
    """One pydantic error as `section.dotted.key[i] = value: reason (allowed: range)`."""
    loc = error["loc"]
    key = section + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
    shown = f" = {error['input']!r}" if not isinstance(error.get("input"), dict) else ""
    text = f"{key}{shown}: {error['msg'].removeprefix('Value error, ')}"
    allowed = _allowed_range(model, loc) if error["type"] in BOUND_ERRORS else None
    return text + (f" (allowed: {allowed})" if allowed else "")


def _allowed_range(model: type[BaseModel], loc: tuple[Any, ...]) -> str | None:
    """The whole interval of a bounded field, as `(0, 1]`, when it has both ends (pydantic's message names one)."""
    annotation: Any = model
    metadata: list[Any] = []
    for part in loc:
        annotation, metadata = _step(annotation, part)
        if annotation is None:
            return None
    bound = {name: getattr(m, name) for m in metadata for name in ("ge", "gt", "le", "lt") if hasattr(m, name)}
    low = f"[{bound['ge']}" if "ge" in bound else f"({bound['gt']}" if "gt" in bound else None
    high = f"{bound['le']}]" if "le" in bound else f"{bound['lt']})" if "lt" in bound else None
    return f"{low}, {high}" if low and high else None
