"""ffmpeg reads: frames spread over a clip, all of them, from one decoding pass."""

import pytest

from s2f.io.media import probe, read_frames


@pytest.mark.parametrize("clip", ["clips/pcavs__Input__00010.mp4", "clips/grid_lipnet__bbaf2n.mpg"])
def test_every_frame_asked_for_comes_back_even_when_the_clip_is_shorter_than_the_span(realsample, clip):
    info = probe(realsample / clip)
    frames = read_frames(realsample / clip, 3, min(info.duration, 6.0))
    times = [t for t, _ in frames]
    assert len(frames) == 3 and times == sorted(times) and times[-1] < info.duration
    assert all(f.shape == (info.height, info.width, 3) for _, f in frames)
