"""Turn raw clips into training samples: a 6 s 16 kHz mono waveform and a 224×224 crop of the speaker's face.

Each clip either becomes a sample or a rejection with a reason (for the quarantine table); one bad clip never stops
the run. Clips are processed in parallel, but results are kept per shard (`shard_size` manifest rows → one shard
file). A shard is validated with Great Expectations as it is written and counts as done only once its record is
written, so a killed run resumes with the first unfinished shard and a rerun redoes only shards whose inputs changed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from s2f.audio import repeat_to_length
from s2f.config import PreprocessParams, resolve_workers
from s2f.faces.detect import FaceBox, crop_face, detect_faces, face_at, is_ambiguous, largest_face
from s2f.io import codecs, media
from s2f.io.hashing import HashCache
from s2f.io.movie_header import read_movie_header
from s2f.io.shards import quarantine_table, record_name, shard_name, work_key, write_json_atomic, write_table
from s2f.lineage import closure_hash
from s2f.partitions import Partition
from s2f.shard_engine import ShardEngine, ShardKind, ShardTask


BLANK_CROP_STD = 2.0  # pixel std of a single-colour crop is ~0; any real face is far above (the shard suite agrees)


@dataclass
class Rejection:
    reason: str
    detail: str = ""


@dataclass
class Sample:
    audio: np.ndarray         # (seconds·sr,) int16
    face: np.ndarray          # (crop, crop, 3) uint8
    face_box: np.ndarray      # (4,) int32: left, top, right, bottom inside the crop
    frame_box: np.ndarray     # (4,) int32: the same face in the source frame
    frame_size: np.ndarray    # (2,) int32: source frame width, height
    stats: dict = field(default_factory=dict)
    audio_flac: bytes = b""   # what the shard stores (s2f.io.codecs): `audio` losslessly
    face_jpeg: bytes = b""    # ... and `face`, which is this JPEG decoded

    def encoded_only(self) -> "Sample":
        """The sample as its shard needs it: encoded bytes, boxes and stats, without the decoded waveform and crop.

        Why: a worker's result crosses to the parent and waits there until its shard is written; the decoded
        arrays are about 3× the encoded bytes, and the shard never reads them (it stores the bytes)."""
        return replace(self, audio=np.zeros(0, np.int16), face=np.zeros((0, 0, 3), np.uint8))


@dataclass(frozen=True)
class ClipJob:
    """One manifest row, resolved: where its media is and what is known about the speaker's face."""

    sample_id: str
    speaker: str
    clip: str
    image: str | None = None
    position: tuple[float, float] | None = None   # AVSpeech face centre, normalised to [0, 1]
    gender: str | None = None                      # from corpus metadata (VoxCeleb), for the gender metric


def _read_audio(probed: media.ProbedAudio, params: PreprocessParams) -> np.ndarray | Rejection:
    """The clip's audio, checked in the order a person would ask: is there any, is the source too long, did it
    decode, is it long and loud enough."""
    info = probed.info
    if not info.has_audio:
        return Rejection("no_audio_stream")
    if info.duration > params.max_source_seconds:
        return Rejection("too_long", f"{info.duration:.0f} s > {params.max_source_seconds:.0f} s")
    if probed.error is not None:
        raise probed.error
    audio = probed.samples
    if len(audio) < params.min_seconds * params.sample_rate:
        return Rejection("too_short", f"{len(audio) / params.sample_rate:.2f} s of audio < {params.min_seconds} s")
    rms = _rms(repeat_to_length(audio, int(params.seconds * params.sample_rate)))  # what the shard will hold
    if rms < params.min_rms:
        return Rejection("silent_audio", f"rms {rms:.2e} < {params.min_rms:.0e}")
    return audio


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean((audio / 32768.0) ** 2)))


def _detect(frame: np.ndarray, params: PreprocessParams) -> list[FaceBox]:
    """Faces in `frame`, searched at most `detector.max_side` pixels wide and mapped back to full resolution.

    Why downscale: HOG time grows with the pixel count (3 s per 1080p frame here), while a face that the crop
    would keep (≥ `min_face_size`) is still found at 640 px; the crop itself is cut from the full-resolution frame.
    """
    det = params.detector
    scale = min(1.0, det.max_side / max(frame.shape[:2]))
    small = frame if scale == 1.0 else np.asarray(Image.fromarray(frame).resize(
        (round(frame.shape[1] * scale), round(frame.shape[0] * scale)), Image.Resampling.BILINEAR))
    boxes = detect_faces(small, det.upsample, det.min_score, det.kind)
    return [FaceBox(round(b.left / scale), round(b.top / scale), round(b.right / scale), round(b.bottom / scale),
                    b.score) for b in boxes]


def _speaker_face(frames: list[tuple[float, np.ndarray]], params: PreprocessParams,
                  position: tuple[float, float] | None) -> tuple[float, np.ndarray, FaceBox] | Rejection:
    """The best-scoring speaker face over the frames; without a face position, two comparable faces reject the clip."""
    found, faces_elsewhere = [], 0
    for at, frame in frames:
        boxes = _detect(frame, params)
        if position is not None:
            box = face_at(boxes, position[0] * frame.shape[1], position[1] * frame.shape[0])
            faces_elsewhere += box is None and bool(boxes)
        elif is_ambiguous(boxes, params.second_face_ratio):
            return Rejection("multiple_faces", f"{len(boxes)} faces of similar size at {at:.2f} s")
        else:
            box = largest_face(boxes)
        if box is not None:
            found.append((at, frame, box))
    if not found:
        if faces_elsewhere:
            return Rejection("no_face_at_position", f"faces found, none at x={position[0]:.2f} y={position[1]:.2f}")
        times = ", ".join(f"{at:.2f}" for at, _ in frames)
        return Rejection("no_face", f"no face scoring ≥ {params.detector.min_score} at {times} s")
    return max(found, key=lambda f: f[2].score)


def _frames(path: Path, info: media.MediaInfo, image: Path | None, params: PreprocessParams,
            threads: int) -> list[tuple[float, np.ndarray]] | Rejection:
    if image is not None:
        return [(0.0, media.read_image(image))]
    if not info.has_video:
        return Rejection("no_video_stream")
    return media.read_frames(path, params.face_frames, min(info.duration, params.seconds), threads=threads,
                             reference_only=_reference_only(info.width * info.height, params))


def _reference_only(pixels: int, params: PreprocessParams) -> bool:
    """Whether frames this large are searched among the reference frames only (`media.read_frames`)."""
    return 0 < params.reference_frames_from <= pixels


def _read_together(path: Path, image: Path | None, params: PreprocessParams,
                   threads: int) -> tuple[media.ProbedAudio, list[tuple[float, np.ndarray]]] | None:
    """The clip's audio and the frames `_frames` would read, from one ffmpeg process instead of two, when the file's
    header tells its duration and frame size beforehand (MP4/MOV: `s2f.io.movie_header`); None when they must be
    read apart. The result is the same either way: the duration and size ffmpeg reports are checked against the
    header's."""
    if image is not None:
        return None
    header = read_movie_header(path)
    if header is None or not (header.has_audio and header.has_video) \
            or not 0 < header.duration <= params.max_source_seconds:  # fragmented MP4s, or too long to be a sample
        return None
    span = min(media.as_reported(header.duration), params.seconds)
    reference_only = _reference_only(header.pixels, params)
    read = media.probe_audio_and_frames(path, params.sample_rate, params.seconds, params.face_frames, span,
                                        threads=threads, reference_only=reference_only)
    if read is None or reference_only != _reference_only(read[0].info.width * read[0].info.height, params):
        return None  # the header's frame size is not the one ffmpeg decodes: read apart, as `_frames` decides
    return read


def process_clip(path: Path, params: PreprocessParams, image: Path | None = None,
                 position: tuple[float, float] | None = None, decode_threads: int = 0) -> Sample | Rejection:
    """One clip (and optionally a separate face photo) → a sample, or the reason it cannot be one.

    `decode_threads`: ffmpeg's decoder threads (0: its own choice); the sample is the same whatever the count."""
    try:
        together = _read_together(path, image, params, decode_threads)
        probed = together[0] if together else media.probe_and_read_audio(  # one ffmpeg process
            path, params.sample_rate, params.seconds, threads=decode_threads)
        info = probed.info
        audio = _read_audio(probed, params)
        if isinstance(audio, Rejection):
            return audio
        stats_samples = len(audio)
        frames = together[1] if together else _frames(path, info, image, params, decode_threads)
        if isinstance(frames, Rejection):
            return frames
    except media.MediaError as err:
        return Rejection(err.reason, err.detail)
    except subprocess.TimeoutExpired:
        return Rejection("timeout")
    chosen = _speaker_face(frames, params, position)
    if isinstance(chosen, Rejection):
        return chosen
    at, frame, box = chosen
    left, top, right, bottom = _inside(box, frame.shape[1], frame.shape[0])
    size = min(right - left, bottom - top)  # of the face inside the frame: what the shard suite checks
    if size < params.min_face_size:
        return Rejection("face_too_small", f"{right - left}×{bottom - top} px < {params.min_face_size} px")
    crop, inner = crop_face(frame, box, params.crop_size, params.crop_margin)
    face_jpeg = codecs.encode_jpeg(crop, params.jpeg_quality)
    crop = codecs.decode_jpeg(face_jpeg)  # the sample is what is stored: features come from the decoded JPEG
    if crop.std() < BLANK_CROP_STD:
        return Rejection("blank_face", f"crop pixel std {crop.std():.2f} < {BLANK_CROP_STD}")
    audio = repeat_to_length(audio, int(params.seconds * params.sample_rate)).astype(np.int16)
    stats = {"duration_s": info.duration, "audio_rate": info.audio_rate, "audio_samples": int(stats_samples),
             "audio_rms": _rms(audio), "frame_width": frame.shape[1], "frame_height": frame.shape[0],
             "face_time": at, "face_score": box.score, "face_size": size}
    return Sample(audio, crop, np.array([inner.left, inner.top, inner.right, inner.bottom], np.int32),
                  np.array([left, top, right, bottom], np.int32), np.array([frame.shape[1], frame.shape[0]], np.int32),
                  stats, codecs.encode_flac(audio, params.sample_rate), face_jpeg)


def _inside(box: FaceBox, width: int, height: int) -> list[int]:
    """The face box clipped to the frame (HOG boxes may reach past an edge; the crop pads with black instead)."""
    return [max(box.left, 0), max(box.top, 0), min(box.right, width), min(box.bottom, height)]


# ---------------------------------------------------------------------------------------------- the corpus, by shard

def _gender(value) -> str | None:
    """VoxCeleb writes m/f (and male/female elsewhere): one spelling, or None when unknown."""
    text = str(value).strip().lower()[:1] if value is not None else ""
    return text if text in ("m", "f") else None


def decode_threads(workers: int) -> int:
    """ffmpeg decoder threads for each of `workers` processes: this machine's cores shared out among them, so that
    one process per core does not also start a thread per core (12 % more CPU on the realsample clips, for nothing);
    a lone process still decodes on every core."""
    return max(1, resolve_workers(0) // max(workers, 1))


def _jobs(manifest: pd.DataFrame) -> list[ClipJob]:
    def optional(row: dict, key: str):
        value = row.get(key)
        return None if value is None or (isinstance(value, float) and np.isnan(value)) else value

    jobs = []
    for row in manifest.to_dict("records"):  # manifest order: clips appended later only add shards at the end
        x, y = optional(row, "face_x"), optional(row, "face_y")
        jobs.append(ClipJob(str(row["sample_id"]), str(row["speaker"]), str(row["clip"]), optional(row, "image"),
                            (float(x), float(y)) if x is not None and y is not None else None,
                            _gender(optional(row, "gender"))))
    return jobs


def _run_job(job: ClipJob, raw_dir: Path, cache_dir: Path, params: PreprocessParams,
             decode_threads: int = 0) -> Sample | Rejection:
    from s2f.io.storage import StorageError, localize

    own_cache = cache_dir / f"job-{os.getpid()}-{uuid.uuid4().hex[:8]}"  # no worker deletes another's download
    try:
        clip = localize(job.clip, raw_dir, own_cache)
        image = localize(job.image, raw_dir, own_cache) if job.image else None
        result = process_clip(clip, params, image, job.position, decode_threads)
        return result.encoded_only() if isinstance(result, Sample) else result
    except StorageError as err:
        return Rejection(err.reason, str(err))
    except Exception as err:  # a bug or a library error on one odd clip must cost that clip, never the run
        return Rejection("internal_error", repr(err)[:300])
    finally:  # only the clips in flight stay on local disk, never an S3 corpus
        shutil.rmtree(own_cache, ignore_errors=True)


def _identity(job: ClipJob, raw_dir: Path, hashes: HashCache) -> dict:
    """What a clip's result depends on besides params: its row and, for a local file, its content hash.

    Content, not mtime: the same bytes rewritten (`dvc repro -f download`, a checkout, another machine) keep their
    shards. An `s3://` object is named by its row only: its key is its identity in the bucket.
    """
    ident = {"row": job.__dict__}
    for key, value in (("clip", job.clip), ("image", job.image)):
        path = raw_dir / value if value and not value.startswith("s3://") else None
        if path is not None and path.is_file():
            ident[key] = hashes.sha256(path)
    return ident


def shaping_params(params: PreprocessParams) -> dict:
    """The params that change a shard's content (not where it goes or how many processes make it)."""
    return params.model_dump(exclude={"workers", "output_uri", "max_bad_shard_fraction", "partitions"})


def code_fingerprint() -> str:
    """A hash of the code that shapes a shard, i.e. the import closure of this module (s2f.lineage), validation
    suites included: a fix to it must redo finished shards, not republish them or their old verdicts."""
    return closure_hash(__name__)


@dataclass
class ShardResult:
    name: str
    accepted: list[dict]
    rejected: list[dict]
    validation: dict | None = None
    uploaded_to: str | None = None


def _display(text: str) -> str:
    """A path for tables and logs: undecodable bytes of a non-UTF-8 file name shown as \\xNN, not crashing parquet."""
    return os.fsencode(text).decode("utf-8", "backslashreplace")


def _assemble(name: str, jobs: list[ClipJob], results: list[Sample | Rejection]) -> tuple[dict, list[dict], list[dict]]:
    pairs = [(j, s) for j, s in zip(jobs, results) if isinstance(s, Sample)]
    rejected = [{"sample_id": j.sample_id, "clip": _display(j.clip), "stage": "preprocess", "reason": s.reason,
                 "detail": s.detail} for j, s in zip(jobs, results) if isinstance(s, Rejection)]
    arrays = {
        "sample_id": np.array([j.sample_id for j, _ in pairs], dtype=str),
        "speaker": np.array([_display(j.speaker) for j, _ in pairs], dtype=str),
        **codecs.encoded_columns("audio", codecs.AUDIO_CODEC, [s.audio_flac for _, s in pairs]),
        **codecs.encoded_columns("face", codecs.FACE_CODEC, [s.face_jpeg for _, s in pairs]),
        "face_box": np.stack([s.face_box for _, s in pairs]) if pairs else np.zeros((0, 4), np.int32),
        "frame_box": np.stack([s.frame_box for _, s in pairs]) if pairs else np.zeros((0, 4), np.int32),
        "frame_size": np.stack([s.frame_size for _, s in pairs]) if pairs else np.zeros((0, 2), np.int32),
    }
    accepted = [{"sample_id": j.sample_id, "speaker": _display(j.speaker), "clip": _display(j.clip), "shard": name,
                 "index": i, "gender": j.gender, **s.stats} for i, (j, s) in enumerate(pairs)]
    return arrays, accepted, rejected


def _rules(params: PreprocessParams):
    from s2f.validation import ShardRules

    return ShardRules.from_params(params)


class ShardWriter:
    """Turns a shard's clip results into a validated sample shard with its record, and uploads it; one per run."""

    def __init__(self, work_dir: Path, params: PreprocessParams):
        self.params = params
        self.engine = ShardEngine(ShardKind("preprocess", "sample_shard", partial(_rules, params), unit="clips"),
                                  work_dir)

    def finish(self, name: str, key: str, jobs: list[ClipJob], results: list[Sample | Rejection]) -> ShardResult:
        arrays, accepted, rejected = _assemble(name, jobs, results)
        arrays["sample_rate"] = np.array(self.params.sample_rate, np.int32)

        def payload(validation: dict | None) -> dict:
            kept, refused = accepted, rejected
            if validation is not None and not validation["success"]:
                refused = rejected + [{"sample_id": a["sample_id"], "clip": a["clip"], "stage": "validate",
                                       "reason": "shard_validation_failed",
                                       "detail": "; ".join(validation["failures"])[:500]} for a in accepted]
                kept = []
            return {"name": name, "accepted": kept, "rejected": refused,
                    "uploaded_to": self.upload(name) if kept else None}

        return ShardResult(**self.engine.finish(name, key, arrays if accepted else None, payload))

    def upload(self, name: str) -> str | None:
        """Copy a finished shard to `output_uri`; a failure is reported, and `_finish_uploads` records it as pending."""
        if not self.params.output_uri:
            return None
        return self.params.output_uri if upload_shard(self.engine.work_dir, name, self.params.output_uri) else None


def upload_shard(work_dir: Path, name: str, output_uri: str) -> bool:
    """Copy `work_dir/name` to `output_uri/name`; False (and one line saying so) when S3 refused or is down."""
    from s2f.io.storage import StorageError, join, upload_file

    try:
        upload_file(work_dir / name, join(output_uri, name))
    except StorageError as err:
        print(f"preprocess: {name} not uploaded ({err})", flush=True)
        return False
    return True


PENDING_UPLOADS = "pending_uploads.json"


def pending_uploads(work_dir: Path) -> list[dict]:
    """The ledger of finished shards not yet copied to `output_uri` ({"shard", "uri"} rows), [] when none."""
    path = Path(work_dir) / PENDING_UPLOADS
    return json.loads(path.read_text())["pending"] if path.exists() else []


def _write_pending(work_dir: Path, pending: list[dict]) -> None:
    path = work_dir / PENDING_UPLOADS
    if not pending:
        path.unlink(missing_ok=True)
        return
    write_json_atomic(path, {"pending": pending})


def finish_pending_uploads(work_dir: Path) -> list[dict]:
    """Upload every shard of the ledger whose file is still in `work_dir`; mark its record; return what is left.

    Why a ledger: after an S3 outage the stage's outputs are complete and DVC will not run it again, so the
    uploads it could not make must be findable by a later command (`s2f upload-pending`) or the next run.
    """
    left = []
    for row in pending_uploads(work_dir):
        if not (Path(work_dir) / row["shard"]).is_file():
            print(f"preprocess: {row['shard']} is no longer in {work_dir}; dropped from the ledger", flush=True)
        elif upload_shard(Path(work_dir), row["shard"], row["uri"]):
            _mark_uploaded(Path(work_dir) / record_name(row["shard"]), row["uri"])
        else:
            left.append(row)
    _write_pending(Path(work_dir), left)
    return left


def _mark_uploaded(record_path: Path, uri: str) -> None:
    write_json_atomic(record_path, json.loads(record_path.read_text()) | {"uploaded_to": uri})


class TooManyBadShards(RuntimeError):
    pass


def preprocess_corpus(manifest: pd.DataFrame, raw_dir: Path, out_dir: Path, params: PreprocessParams,
                      workers: int, work_dir: Path | None = None,
                      partition: Partition | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write `out_dir/shard-*.npz`, `manifest.parquet`, `quarantine.csv` and `validation/`; return both tables.

    `work_dir` (default `out_dir`) keeps finished shards and their records between runs: DVC empties a stage's
    outputs before running it, so `dvc repro` resumes from a work folder outside them and the finished shards are
    then hard-linked into `out_dir` (the shard engine, `s2f.shard_engine`, does both).

    With a `partition`, only its shards are made, and `out_dir` holds a part for `s2f.gather` to merge: its
    quarantine rows name their shard (so the merge keeps corpus order) and the bad-shard limit is checked there,
    over the whole corpus. Partitions may share `work_dir`: shard work keys do not depend on the partitioning.
    """
    work_dir = work_dir or out_dir
    jobs = _jobs(manifest)
    chunks = [jobs[i:i + params.shard_size] for i in range(0, len(jobs), params.shard_size)]
    shaping, code = shaping_params(params), code_fingerprint()
    writer = ShardWriter(work_dir, params)
    owned = [i for i in range(len(chunks)) if partition is None or partition.owns(i)]
    with writer.engine.hash_cache() as hashes:
        tasks = [ShardTask(shard_name(i), work_key({"params": shaping, "code": code,
                                                     "clips": [_identity(j, raw_dir, hashes) for j in chunks[i]]}),
                           partial(list, chunks[i])) for i in owned]
    clips = sum(len(chunks[i]) for i in owned)
    print(f"preprocess: {clips} clips" + (f" in {len(owned)} of {len(chunks)} shards ({partition})"
                                          if partition else ""), flush=True)
    work = partial(_run_job, raw_dir=raw_dir, cache_dir=work_dir / "s3-cache", params=params,
                   decode_threads=decode_threads(workers))
    records = writer.engine.run(
        tasks, work, workers, lambda task, results: writer.finish(task.name, task.key, task.items(), results).__dict__,
        describe=lambda record: f"{len(record['accepted'])} accepted")
    shutil.rmtree(work_dir / "s3-cache", ignore_errors=True)
    done = dict(enumerate(records))
    _finish_uploads(done, [t.name for t in tasks], work_dir, params.output_uri, keep_others=partition is not None)
    corpus = {shard_name(i) for i in range(len(chunks))}
    if partition is None:
        return _publish(tasks, records, writer.engine, out_dir, params)
    return _publish_part(tasks, records, writer.engine, out_dir, corpus, clips)


def _finish_uploads(done: dict[int, dict], names: list[str], work_dir: Path, output_uri: str | None,
                    keep_others: bool = False) -> None:
    """Every accepted shard not yet at `output_uri` (finished before it was set, or its upload failed) is tried
    once more; those still failing go to the pending ledger, which the stage's metrics count. `keep_others`: the
    ledger's rows for shards of other partitions (sharing `work_dir`) stay."""
    pending = [{"shard": names[i], "uri": output_uri} for i, record in done.items()
               if output_uri and record["accepted"] and record.get("uploaded_to") != output_uri]
    if keep_others:
        pending = [row for row in pending_uploads(work_dir) if row["shard"] not in set(names)] + pending
    _write_pending(work_dir, pending)
    left = {row["shard"] for row in finish_pending_uploads(work_dir)} if pending else set()
    for i, record in done.items():
        if output_uri and record["accepted"]:
            record["uploaded_to"] = None if names[i] in left else output_uri
    if left:
        print(f"preprocess: {len(left)} shards not uploaded to {output_uri}: listed in {work_dir / PENDING_UPLOADS}; "
              f"`s2f upload-pending --work {work_dir}` uploads them once S3 is back", flush=True)


def _publish(tasks: list[ShardTask], records: list[dict], engine: ShardEngine, out_dir: Path,
             params: PreprocessParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    accepted = pd.DataFrame([row for r in records for row in r["accepted"]])
    quarantined = quarantine_table([row for r in records for row in r["rejected"]])
    engine.publish(out_dir, tasks, records)
    summary = validation_summary(records, engine.work_dir)
    write_json_atomic(out_dir / "validation" / "summary.json", summary, sort_keys=True)
    write_table(out_dir / "manifest.parquet", accepted)
    write_table(out_dir / "quarantine.csv", quarantined)
    check_bad_shards(summary["failed_validation"], summary["validated"], params.max_bad_shard_fraction,
                     out_dir / "validation")
    return accepted, quarantined


def validation_summary(records: list[dict], work_dir: Path) -> dict:
    """`validation/summary.json`: how many shards there are, were validated, and which failed."""
    validated = [r for r in records if r.get("validation")]
    return {"shards": len(records), "validated": len(validated),
            "failed_validation": [r["name"] for r in validated if not r["validation"]["success"]],
            "gx_results_and_data_docs": str(Path(work_dir) / "gx")}


PART_INFO = "part.json"


def _publish_part(tasks: list[ShardTask], records: list[dict], engine: ShardEngine, out_dir: Path,
                  corpus: set[str], clips: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A partition's share of the output, for `s2f.gather`: shards, verdicts, both tables (quarantine rows with
    their shard) and `part.json` (its clips, records' validation summary, uploads still pending)."""
    accepted = pd.DataFrame([row for r in records for row in r["accepted"]])
    rejected = [{**row, "shard": r["name"]} for r in records for row in r["rejected"]]
    quarantined = pd.DataFrame(rejected, columns=[*quarantine_table([]).columns, "shard"])
    engine.publish(out_dir, tasks, records, corpus=corpus)
    names = {t.name for t in tasks}
    pending = sum(row["shard"] in names for row in pending_uploads(engine.work_dir))
    write_json_atomic(out_dir / PART_INFO, {"clips": clips, "pending_uploads": pending,
                                            "validation": validation_summary(records, engine.work_dir)},
                      sort_keys=True)
    write_table(out_dir / "manifest.parquet", accepted)
    write_table(out_dir / "quarantine.csv", quarantined)
    return accepted, quarantine_table(rejected)


def check_bad_shards(bad: list[str], validated: int, max_fraction: float, where: Path) -> None:
    """Fail loudly when more than `max_fraction` of the validated shards failed: then the data, not a clip, is bad."""
    if validated and len(bad) / validated > max_fraction:
        raise TooManyBadShards(f"{len(bad)} of {validated} shards failed validation (> max_bad_shard_fraction "
                               f"{max_fraction}): {', '.join(bad)}; see {where}")
