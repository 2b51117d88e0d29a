"""Bad inputs land in quarantine with a reason while the rest of the run succeeds; odd but usable inputs are kept."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data as skdata

from s2f.config import PreprocessParams
from s2f.io.shards import read_shard
from s2f.preprocess import (Rejection, Sample, _read_together, _reference_only, decode_threads, preprocess_corpus,
                            process_clip, record_name)
from tests.conftest import ROOT, ffmpeg


@pytest.fixture()
def corpus_with_bad_clips(tmp_path, demo_clips):
    raw_dir, manifest = demo_clips
    raw = tmp_path / "raw"
    shutil.copytree(raw_dir, raw)
    good = raw / manifest["clip"].iloc[0]
    bad = raw / "clips"
    data = good.read_bytes()
    (bad / "truncated.mp4").write_bytes(data[: len(data) // 3])
    ffmpeg("-i", str(good), "-an", "-c:v", "copy", str(bad / "no_audio.mp4"))
    ffmpeg("-i", str(good), "-vn", "-c:a", "copy", str(bad / "no_video.m4a"))
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=320x320:d=3:r=5", "-f", "lavfi", "-i", "sine=frequency=300:duration=3",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(bad / "no_face.mp4"))
    (bad / "empty.mp4").write_bytes(b"")
    extra = pd.DataFrame([{"sample_id": n, "clip": f"clips/{n}{ext}", "speaker": "bad"} for n, ext in
                          (("truncated", ".mp4"), ("no_audio", ".mp4"), ("no_video", ".m4a"), ("no_face", ".mp4"),
                           ("empty", ".mp4"))])
    return raw, pd.concat([manifest, extra], ignore_index=True), manifest


def test_bad_clips_are_quarantined_with_reasons_and_good_ones_kept(tmp_path, corpus_with_bad_clips):
    raw, manifest, good = corpus_with_bad_clips
    accepted, quarantined = preprocess_corpus(manifest, raw, tmp_path / "pre", PreprocessParams(shard_size=4), workers=2)
    assert sorted(accepted["sample_id"]) == sorted(good["sample_id"])
    reasons = dict(zip(quarantined["sample_id"], quarantined["reason"]))
    assert reasons == {"truncated": "unreadable_container", "no_audio": "no_audio_stream",
                       "no_video": "no_video_stream", "no_face": "no_face", "empty": "empty_file"}
    assert (quarantined["detail"].loc[quarantined["reason"] == "unreadable_container"].str.len() > 0).all()
    on_disk = pd.read_csv(tmp_path / "pre" / "quarantine.csv")
    assert set(on_disk["reason"]) == set(reasons.values())
    # every accepted sample is in the shard the manifest names, at its index, and every shard passed validation
    for row in accepted.itertuples():
        shard = read_shard(tmp_path / "pre" / row.shard)
        assert shard["sample_id"][row.index] == row.sample_id and shard["speaker"][row.index] == row.speaker
        assert shard["audio"].shape[1] == 96000 and shard["face"].shape[1:] == (224, 224, 3)
        assert int(shard["sample_rate"]) == 16000
    summary = json.loads((tmp_path / "pre" / "validation" / "summary.json").read_text())
    assert summary["validated"] == accepted["shard"].nunique() and summary["failed_validation"] == []
    assert (tmp_path / "pre" / "gx" / "docs" / "index.html").is_file()  # Data Docs: a report, beside the verdicts


def test_short_clip_is_repeated_to_six_seconds(tmp_path, demo_clips):
    raw_dir, manifest = demo_clips
    accepted, _ = preprocess_corpus(manifest.head(1), raw_dir, tmp_path / "pre", PreprocessParams(), workers=1)
    audio = read_shard(tmp_path / "pre" / accepted["shard"].iloc[0])["audio"][0]
    n = int(accepted["audio_samples"].iloc[0])
    assert n < 6 * 16000  # the fixture's clips are 3-4.5 s
    np.testing.assert_array_equal(audio[n:2 * n][:16000], audio[:16000])


def _with_audio(video: os.PathLike, out: os.PathLike, *audio_args: str) -> None:
    """`video`'s picture with another audio track (lavfi source arguments)."""
    ffmpeg("-i", str(video), *audio_args, "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac",
           "-shortest", str(out))


def _dominant_hz(audio: np.ndarray, rate: int = 16000) -> float:
    """The strongest frequency in the first second (a 1 s FFT has 1 Hz bins)."""
    return float(np.argmax(np.abs(np.fft.rfft(audio[:rate].astype(np.float64)))))


@pytest.mark.parametrize("rate,channels", [(8000, 1), (48000, 2)])
def test_any_sample_rate_and_channel_count_becomes_16k_mono(tmp_path, demo_clips, rate, channels):
    raw_dir, manifest = demo_clips
    clip = tmp_path / f"tone_{rate}_{channels}.mp4"
    _with_audio(raw_dir / manifest["clip"].iloc[0], clip, "-f", "lavfi", "-i",
                f"sine=frequency=440:sample_rate={rate}:duration=3", "-ac", str(channels), "-ar", str(rate))
    sample = process_clip(clip, PreprocessParams())
    assert isinstance(sample, Sample), sample
    assert sample.stats["audio_rate"] == rate and sample.audio.shape == (96000,)
    assert abs(_dominant_hz(sample.audio) - 440) <= 2  # the tone survives resampling at its pitch


@pytest.mark.parametrize("clip", ["eamm_mead__crop_M030_sad_3_001.mp4", "video_retalking__examples_face_4.mp4"])
def test_decoder_threads_do_not_change_the_sample(realsample, clip):
    """ffmpeg's thread count is chosen per machine and worker count (`decode_threads`): the sample must not be."""
    one, many = (process_clip(realsample / "clips" / clip, PreprocessParams(), decode_threads=t) for t in (1, 4))
    assert isinstance(one, Sample) and isinstance(many, Sample), (one, many)
    assert one.audio_flac == many.audio_flac and one.face_jpeg == many.face_jpeg
    assert one.stats == many.stats


def test_decode_threads_share_the_cores_among_the_workers(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    assert [decode_threads(w) for w in (1, 2, 4, 8, 16)] == [8, 4, 2, 1, 1]


def test_silent_audio_is_quarantined(tmp_path, demo_clips):
    raw_dir, manifest = demo_clips
    clip = tmp_path / "silent.mp4"
    _with_audio(raw_dir / manifest["clip"].iloc[0], clip, "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono")
    result = process_clip(clip, PreprocessParams())
    assert isinstance(result, Rejection) and result.reason == "silent_audio"


def test_face_smaller_than_the_minimum_is_quarantined(demo_clips):
    raw_dir, manifest = demo_clips
    result = process_clip(raw_dir / manifest["clip"].iloc[0], PreprocessParams(min_face_size=400))
    assert isinstance(result, Rejection) and result.reason == "face_too_small" and "400" in result.detail


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory):
    """A real clip showing two people side by side (the astronaut photo and a mirrored, tinted copy)."""
    face = skdata.astronaut()[:300, 100:400]
    other = (face[:, ::-1] * np.array([0.8, 0.9, 1.0])).astype(np.uint8)
    frame = np.concatenate([face, other], axis=1)  # 300 × 600
    folder = tmp_path_factory.mktemp("two")
    Image.fromarray(frame).save(folder / "frame.png")
    ffmpeg("-loop", "1", "-framerate", "5", "-i", str(folder / "frame.png"), "-f", "lavfi", "-i",
           "sine=frequency=200:duration=3", "-t", "3", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
           str(folder / "two.mp4"))
    return folder / "two.mp4", frame.shape


def test_two_faces_without_a_position_are_ambiguous(two_faces):
    clip, _ = two_faces
    result = process_clip(clip, PreprocessParams())
    assert isinstance(result, Rejection) and result.reason == "multiple_faces"


@pytest.mark.parametrize("x", [0.25, 0.75])
def test_the_face_position_picks_the_speaker_among_several(two_faces, x):
    clip, (h, w, _) = two_faces
    sample = process_clip(clip, PreprocessParams(), position=(x, 0.3))
    assert isinstance(sample, Sample), sample
    left, _, right, _ = sample.frame_box
    assert left <= x * w <= right  # the chosen face is the one at the given position


def test_hour_long_file_is_read_bounded(tmp_path):
    """An hour of audio is ~115 MB at 16 kHz int16; the clip's 6 s must be all that is ever read into memory."""
    Image.fromarray(skdata.astronaut()).save(tmp_path / "face.png")
    clip = tmp_path / "hour.mkv"
    ffmpeg("-loop", "1", "-framerate", "1", "-i", str(tmp_path / "face.png"), "-f", "lavfi", "-i",
           "sine=frequency=300:sample_rate=8000:duration=3600", "-t", "3600", "-c:v", "mpeg4", "-q:v", "4",
           "-c:a", "pcm_u8", str(clip))
    tracemalloc.start()
    sample = process_clip(clip, PreprocessParams())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert isinstance(sample, Sample), sample
    assert sample.stats["duration_s"] > 3599 and sample.audio.shape == (96000,)
    assert peak < 40e6  # bytes allocated by Python at the peak: frames and 6 s of audio, not the hour


def test_non_utf8_file_name_is_processed_and_reported_readably(tmp_path, demo_clips):
    from s2f.sources.local import from_folder

    raw_dir, manifest = demo_clips
    folder = tmp_path / "videos"
    (folder / "spk").mkdir(parents=True)
    name = os.fsdecode(b"caf\xe9-\xff.mp4")  # Latin-1 bytes: not valid UTF-8
    shutil.copy(raw_dir / manifest["clip"].iloc[0], folder / "spk" / name)
    found = from_folder(folder)
    assert found["sample_id"].str.fullmatch(r"[A-Za-z0-9_.-]+").all()
    accepted, _ = preprocess_corpus(found, folder, tmp_path / "pre", PreprocessParams(), workers=1)
    assert len(accepted) == 1 and "\\xe9" in accepted["clip"].iloc[0]
    assert pd.read_parquet(tmp_path / "pre" / "manifest.parquet")["clip"].iloc[0] == accepted["clip"].iloc[0]


@pytest.mark.reliability
def test_a_killed_run_resumes_with_the_unfinished_shards(tmp_path, demo_clips):
    """Kill preprocessing after its first shard; the rerun keeps that shard and ends as an uninterrupted run."""
    raw_dir, manifest = demo_clips
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    work = tmp_path / "work"
    script = ("import pandas as pd, pathlib as p; from s2f.config import PreprocessParams as P; "
              "from s2f.preprocess import preprocess_corpus as run; "
              f"run(pd.read_csv(r'{tmp_path / 'manifest.csv'}'), p.Path(r'{raw_dir}'), p.Path(r'{work}'), "
              "P(shard_size=2), workers=1)")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    first = work / record_name("shard-00000.npz")
    deadline = time.monotonic() + 120
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.exists() and not (work / "manifest.parquet").exists()  # killed mid-run, one shard finished
    stamp = (work / "shard-00000.npz").stat().st_mtime_ns
    accepted, _ = preprocess_corpus(manifest, raw_dir, work, PreprocessParams(shard_size=2), workers=2)
    assert (work / "shard-00000.npz").stat().st_mtime_ns == stamp  # not redone
    fresh, _ = preprocess_corpus(manifest, raw_dir, tmp_path / "fresh", PreprocessParams(shard_size=2), workers=1)
    pd.testing.assert_frame_equal(accepted, fresh)
    for shard in fresh["shard"].unique():
        a, b = read_shard(work / shard), read_shard(tmp_path / "fresh" / shard)
        np.testing.assert_array_equal(a["audio"], b["audio"])
        np.testing.assert_array_equal(a["face"], b["face"])


def test_changed_params_redo_the_shards(tmp_path, demo_clips):
    raw_dir, manifest = demo_clips
    preprocess_corpus(manifest, raw_dir, tmp_path, PreprocessParams(shard_size=3), workers=1)
    stamp = (tmp_path / "shard-00000.npz").stat().st_mtime_ns
    preprocess_corpus(manifest, raw_dir, tmp_path, PreprocessParams(shard_size=3, crop_margin=0.3), workers=1)
    assert (tmp_path / "shard-00000.npz").stat().st_mtime_ns != stamp


def test_clips_from_s3_and_shards_to_s3(tmp_path, demo_clips, s3_env):
    """Raw clips under s3:// are fetched through boto3; finished shards are uploaded to `output_uri`."""
    from s2f.io.storage import list_uris, upload_file

    _, bucket = s3_env
    raw_dir, manifest = demo_clips
    rows = manifest.head(2).copy()
    for clip in rows["clip"]:
        upload_file(raw_dir / clip, f"s3://{bucket}/raw/{clip}")
    rows["clip"] = [f"s3://{bucket}/raw/{c}" for c in rows["clip"]]
    missing = pd.DataFrame([{"sample_id": "gone", "clip": f"s3://{bucket}/raw/gone.mp4", "speaker": "x"}])
    params = PreprocessParams(shard_size=2, output_uri=f"s3://{bucket}/shards")
    accepted, quarantined = preprocess_corpus(pd.concat([rows, missing]), tmp_path, tmp_path / "pre", params, workers=2)
    assert sorted(accepted["sample_id"]) == sorted(rows["sample_id"])
    assert quarantined.set_index("sample_id").at["gone", "reason"] == "s3_not_found"
    assert list_uris(f"s3://{bucket}/shards/") == [f"s3://{bucket}/shards/{s}" for s in sorted(accepted["shard"].unique())]
    assert not (tmp_path / "pre" / "s3-cache").exists()  # downloaded clips are not kept


def test_a_shard_failing_validation_is_quarantined_and_too_many_fail_the_run(tmp_path, demo_clips):
    """A shard that breaks its suite (here: a sample whose audio went silent after the checks) is moved aside with
    its GX result; the run fails only when more than `max_bad_shard_fraction` of shards fail."""
    from s2f.io.codecs import encode_flac
    from s2f.preprocess import ClipJob, ShardWriter, TooManyBadShards, check_bad_shards

    raw_dir, manifest = demo_clips
    params = PreprocessParams()
    sample = process_clip(raw_dir / manifest["clip"].iloc[0], params)
    sample.audio[:] = 0
    sample.audio_flac = encode_flac(sample.audio, params.sample_rate)  # what the shard stores
    writer = ShardWriter(tmp_path, params)
    result = writer.finish("shard-00000.npz", "k", [ClipJob("a", "spk", "a.mp4")], [sample])
    assert result.accepted == [] and result.rejected[0]["reason"] == "shard_validation_failed"
    assert "audio_rms" in result.rejected[0]["detail"]
    assert (tmp_path / "quarantine" / "shard-00000.npz").is_file() and not (tmp_path / "shard-00000.npz").exists()
    saved = json.loads((tmp_path / "validation" / "shard-00000.json").read_text())  # the verdict
    assert saved["success"] is False and any(e["kwargs"].get("column") == "audio_rms" and not e["success"]
                                             for e in saved["expectations"])
    full = json.loads((tmp_path / "gx" / "results" / "shard-00000.json").read_text())  # GX's own result
    assert full["result"]["results"]
    writer.engine.publish(tmp_path, [], [], corpus={"shard-00000.npz"})  # Data Docs, and the page that works offline
    page = (tmp_path / "gx" / "docs" / "shards.html").read_text()
    assert "shard-00000.npz" in page and "FAILED: quarantined" in page and "audio_rms" in page
    assert "<script" not in page and "http" not in page  # nothing to fetch: it opens with no network
    links = [part.split('"')[0] for part in page.split('<a href="')[1:]]
    assert links[0] == "index.html"  # GX's own index, said to need a network
    assert links[1].startswith("validations/") and (tmp_path / "gx" / "docs" / links[1]).is_file()
    check_bad_shards(["shard-00000.npz"], 10, 0.1, tmp_path)  # 1 of 10: tolerated
    with pytest.raises(TooManyBadShards, match="2 of 10 shards failed"):
        check_bad_shards(["shard-00000.npz", "shard-00001.npz"], 10, 0.1, tmp_path)


@pytest.mark.parametrize("clip", ["eamm_mead__crop_M030_sad_3_001.mp4", "pcavs__Pose_Source__741400163.mp4"])
def test_an_mp4_is_read_in_one_ffmpeg_process_and_gives_the_same_sample(realsample, clip, monkeypatch):
    """MP4s take the one-process read (`_read_together`); the sample is the one the two separate calls give."""
    path, params = realsample / "clips" / clip, PreprocessParams()
    assert _read_together(path, None, params, 1) is not None
    together = process_clip(path, params, decode_threads=1)
    monkeypatch.setattr("s2f.preprocess._read_together", lambda *args: None)
    apart = process_clip(path, params, decode_threads=1)
    assert isinstance(together, Sample) and isinstance(apart, Sample), (together, apart)
    assert together.audio_flac == apart.audio_flac and together.face_jpeg == apart.face_jpeg
    assert together.stats == apart.stats


def test_only_frames_of_hd_and_larger_are_searched_among_reference_frames():
    params = PreprocessParams()
    assert [_reference_only(w * h, params) for w, h in [(320, 320), (844, 844), (1280, 720), (1920, 1080)]] == \
        [False, False, True, True]
    assert not _reference_only(3840 * 2160, PreprocessParams(reference_frames_from=0))   # 0: always exact
