"""The MP4/MOV header read in Python: the duration ffmpeg will report, the tracks, the frame size, and None for
anything else."""

import struct

from s2f.io.media import as_reported, probe
from s2f.io.movie_header import read_movie_header
from tests.conftest import ffmpeg


def test_every_realsample_mp4_has_the_duration_and_tracks_ffmpeg_reports(realsample):
    clips = sorted((realsample / "clips").glob("*.mp4"))
    assert len(clips) >= 20
    for clip in clips:
        header, info = read_movie_header(clip), probe(clip)
        assert header is not None, clip
        assert (as_reported(header.duration), header.has_audio, header.has_video, header.pixels) == \
            (info.duration, info.has_audio, info.has_video, info.width * info.height), clip


def test_demo_clips_are_read_too(demo_clips):
    raw_dir, manifest = demo_clips
    for clip in manifest["clip"]:
        header, info = read_movie_header(raw_dir / clip), probe(raw_dir / clip)
        assert header is not None and as_reported(header.duration) == info.duration


def test_an_audio_only_file_says_it_has_no_video(tmp_path):
    path = tmp_path / "voice.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=220:duration=2", "-c:a", "aac", str(path))
    header = read_movie_header(path)
    assert header is not None and header.has_audio and not header.has_video


def test_other_containers_and_broken_headers_give_none(realsample, tmp_path):
    assert read_movie_header(realsample / "clips" / "grid_lipnet__bbaf2n.mpg") is None   # MPEG-PS: no such header
    text = tmp_path / "notes.mp4"
    text.write_text("not a movie at all")
    assert read_movie_header(text) is None
    mp4 = (realsample / "clips" / "pcavs__Input__00010.mp4").read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(mp4[: len(mp4) // 2])          # its moov box (at the end) is cut off
    assert read_movie_header(truncated) is None
    lying = tmp_path / "lying.mp4"
    lying.write_bytes(mp4[:8] + struct.pack(">I4s", 2**31, b"free") + mp4[8:])   # a box longer than the file
    assert read_movie_header(lying) is None
    assert read_movie_header(tmp_path / "missing.mp4") is None


def test_a_header_of_endless_tiny_boxes_is_given_up_on(realsample, tmp_path):
    """The reader's cost is bounded by a count of boxes, whatever the file holds: a real header after 5,000 empty
    boxes is not read, though the same header after 50 is."""
    mp4 = (realsample / "clips" / "pcavs__Input__00010.mp4").read_bytes()
    for free_boxes, readable in [(50, True), (5000, False)]:
        path = tmp_path / f"padded_{free_boxes}.mp4"
        ftyp_size = struct.unpack(">I", mp4[:4])[0]
        path.write_bytes(mp4[:ftyp_size] + struct.pack(">I4s", 8, b"free") * free_boxes + mp4[ftyp_size:])
        assert (read_movie_header(path) is not None) == readable


def test_deeply_nested_or_cut_boxes_give_none(realsample, tmp_path):
    """Odd headers are None (read apart, by ffmpeg), never an exception that would cost the clip."""
    ftyp = struct.pack(">I4s4s", 12, b"ftyp", b"isom")
    nested = b""
    for _ in range(1500):
        nested = struct.pack(">I4s", 8 + len(nested), b"edts") + nested
    deep = tmp_path / "deep.mp4"
    deep.write_bytes(ftyp + struct.pack(">I4s", 8 + len(nested) + 8, b"moov")
                     + struct.pack(">I4s", 8 + len(nested), b"trak") + nested)
    assert read_movie_header(deep) is None
    empty_mvhd = tmp_path / "empty_mvhd.mp4"
    empty_mvhd.write_bytes(ftyp + struct.pack(">I4s", 16, b"moov") + struct.pack(">I4s", 8, b"mvhd"))
    assert read_movie_header(empty_mvhd) is None
