"""ffmpeg reads: frames spread over a clip, all of them, from one decoding pass; audio and frames from one process."""

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
