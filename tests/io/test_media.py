"""ffmpeg reads: frames spread over a clip, all of them, from one decoding pass; audio and frames from one process."""

from pathlib import Path

import numpy as np
import pytest

from s2f.io.media import as_reported, probe, probe_and_read_audio, probe_audio_and_frames, read_frames
from tests.conftest import ffmpeg


@pytest.mark.parametrize("clip", ["clips/pcavs__Input__00010.mp4", "clips/grid_lipnet__bbaf2n.mpg"])
def test_every_frame_asked_for_comes_back_even_when_the_clip_is_shorter_than_the_span(realsample, clip):
    info = probe(realsample / clip)
    frames = read_frames(realsample / clip, 3, min(info.duration, 6.0))
    times = [t for t, _ in frames]
    assert len(frames) == 3 and times == sorted(times) and times[-1] < info.duration
    assert all(f.shape == (info.height, info.width, 3) for _, f in frames)


REALSAMPLE_MP4 = ["clips/pcavs__Input__00010.mp4",            # 4.3 s: the frames spread over the whole clip
                  "clips/video_retalking__examples_face_2.mp4",   # its tracks end apart: the longer one counts
                  "clips/pcavs__Pose_Source__741400163.mp4"]      # 13.9 s: only the first 6 s matter


@pytest.mark.parametrize("clip", REALSAMPLE_MP4)
def test_one_process_reads_the_same_audio_and_frames_as_the_two_separate_calls(realsample, clip):
    path = realsample / clip
    probed = probe_and_read_audio(path, 16000, 6.0, threads=1)
    span = min(probed.info.duration, 6.0)
    apart = read_frames(path, 3, span, threads=1)
    together = probe_audio_and_frames(path, 16000, 6.0, 3, span, threads=1)
    assert together is not None
    audio, frames = together
    assert audio.info == probed.info and np.array_equal(audio.samples, probed.samples)
    assert [t for t, _ in frames] == [t for t, _ in apart]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(frames, apart))


def test_one_process_declines_when_the_span_asked_for_is_not_what_ffmpeg_reports(realsample):
    path = realsample / REALSAMPLE_MP4[0]
    assert probe_audio_and_frames(path, 16000, 6.0, 3, 4.0, threads=1) is None   # the clip lasts 4.24 s
    assert probe_audio_and_frames(path, 16000, 6.0, 3, 4.24, threads=1) is not None


def test_one_process_declines_a_file_without_a_video_stream(tmp_path):
    audio_only = tmp_path / "voice.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=220:duration=2", "-c:a", "aac", str(audio_only))
    assert probe_audio_and_frames(audio_only, 16000, 6.0, 3, 2.0, threads=1) is None


@pytest.mark.parametrize(("seconds", "printed"), [(4.304, 4.3), (5.015, 5.02), (5.0149, 5.01), (6.0, 6.0)])
def test_durations_are_rounded_as_ffmpeg_prints_them(seconds, printed):
    assert as_reported(seconds) == printed


@pytest.fixture(scope="module")
def ramp_clip(tmp_path_factory) -> Path:
    """3 s at 10 fps whose frame n is grey level 8n, as H.264 with two non-reference B frames between references."""
    path = tmp_path_factory.mktemp("ramp") / "ramp.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=black:s=64x64:r=10:d=3", "-vf", "geq=r='N*8':g='N*8':b='N*8'",
           "-c:v", "libx264", "-crf", "10", "-pix_fmt", "yuv444p", "-g", "30", "-bf", "2",
           "-x264-params", "b-pyramid=none:b-adapt=0:scenecut=0", str(path))
    return path


def _frame_numbers(frames) -> list[int]:
    return [round(float(frame[..., 0].mean()) / 8) for _, frame in frames]


def test_reference_only_frames_are_reference_frames_decoded_exactly(ramp_clip):
    all_frames = read_frames(ramp_clip, 30, 3.0)
    every = dict(zip(_frame_numbers(all_frames), (frame for _, frame in all_frames)))   # each frame, exactly
    references = set(_frame_numbers(read_frames(ramp_clip, 30, 3.0, reference_only=True)))
    assert references and len(references) < 30 // 2      # the B frames were never decoded
    exact, fast = read_frames(ramp_clip, 4, 3.0), read_frames(ramp_clip, 4, 3.0, reference_only=True)
    assert [t for t, _ in exact] == [t for t, _ in fast] and len(fast) == 4
    assert not set(_frame_numbers(exact)) <= references   # the exact times fall on B frames here ...
    assert set(_frame_numbers(fast)) <= references        # ... the fast read takes reference frames only,
    for (_, frame), number in zip(fast, _frame_numbers(fast)):
        assert np.array_equal(frame, every[number])       # decoded exactly as in the full decode
