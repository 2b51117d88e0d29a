"""How a sample's audio and face crop are stored inside a shard: FLAC audio (lossless) and JPEG crops.

Why: at AVSpeech's 1.7 M clips, raw int16 audio and raw crops are 343 kB a sample (580 GB); FLAC and a
high-quality JPEG bring that to about 130 kB, a tenth of a float32 spectrogram pickle. The audio comes back
bit-exact. The crop does not, so preprocessing keeps the *decoded* JPEG as the sample: every later stage (face
features, landmarks, the decoder's targets) sees exactly what is stored.

A column of variable-length encodings is stored as plain arrays, so shards stay pickle-free `.npz` files:
`<column>_<codec>` (uint8, the encodings end to end), `<column>_<codec>_offsets` (int64, n + 1 boundaries) and
`<column>_<codec>_crc32` (uint32, one checksum per encoding). Why the checksums: a whole shard read is checked by
the ZIP's CRC-32 of each member, but training reads single rows (a `pread`, or a ranged GET from S3), which nothing
else checks, and a decoder is no integrity check: dr_flac skips a frame whose own CRC fails and reads on, so a
window read across the damage comes back the right length and wrong. Every row is checked against its CRC-32
before it is decoded (0.014 ms for 100 kB).
Both encoders are deterministic (no timestamps or random ids in either format), so shards reproduce byte for byte.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Sequence

import numpy as np

AUDIO_CODEC = "flac"
FACE_CODEC = "jpeg"


def encode_flac(audio: np.ndarray, sample_rate: int) -> bytes:
    """(n,) int16 → FLAC bytes (16-bit PCM, lossless), at compression level 0.

    Why level 0: training decodes a window of every row at every step. Level 0 predicts with fixed polynomials in
    blocks of 1,152 samples instead of LPC in blocks of 4,096 (libsndfile's default), so a 2.5 s window of speech
    decodes 17 % faster, its seek landing nearer the window, for 1-2 % more bytes (docs/scale.md)."""
    import soundfile

    out = io.BytesIO()
    soundfile.write(out, np.asarray(audio, np.int16), sample_rate, format="FLAC", subtype="PCM_16",
                    compression_level=0.0)
    return out.getvalue()


def decode_flac(data: bytes, start: int | None = 0, stop: int | None = None) -> np.ndarray:
    """FLAC bytes → int16 samples [start, stop) ((n,) mono, (n, channels) otherwise), `start` and `stop` as a slice
    takes them (past the end reads to it, negative counts from the end).

    FLAC seeks to the frame holding `start`, so a training window of 1.5 s out of a 6 s clip decodes about a quarter
    of it. Why dr_flac (through `miniaudio`) and not libsndfile, which writes the FLAC: streaming training decodes a
    window of every row at every step, and dr_flac decodes one in half the time (a 2.5 s window of speech: 0.16
    against 0.34 ms here), bit for bit the same samples (tests/io/test_codecs.py holds libsndfile as the oracle).

    Raises ValueError when the bytes are not 16-bit FLAC of a known length, or end early. dr_flac skips a frame whose
    checksum fails, so damage is caught here only when it shortens what is read: a shard's rows are checked against
    their stored CRC-32 before they get here (`check`)."""
    from miniaudio import ffi, lib

    buffer = ffi.from_buffer(data)
    decoder = lib.ma_dr_flac_open_memory(buffer, len(buffer), ffi.NULL)
    if decoder == ffi.NULL:
        raise ValueError(f"not FLAC data ({len(buffer)} bytes starting {bytes(memoryview(data)[:4])!r})")
    try:
        total, channels = int(decoder.totalPCMFrameCount), int(decoder.channels)
        if decoder.bitsPerSample != 16 or total == 0:
            raise ValueError(f"FLAC of {decoder.bitsPerSample}-bit samples, {total} samples long; stored audio is "
                             f"16-bit with its length in the header")
        start, stop, _ = slice(start, stop).indices(total)
        stop = max(start, stop)
        out = np.empty((stop - start, channels), np.int16)
        if start and not lib.ma_dr_flac_seek_to_pcm_frame(decoder, start):
            raise ValueError(f"FLAC data is corrupt: cannot seek to sample {start} of {total}")
        read = lib.ma_dr_flac_read_pcm_frames_s16(decoder, stop - start, ffi.from_buffer("ma_int16[]", out))
    finally:
        lib.ma_dr_flac_close(decoder)
    if read != stop - start:
        raise ValueError(f"FLAC data is cut short or corrupt: {read} of samples {start}-{stop} decoded "
                         f"(the header promises {total})")
    return out.reshape(-1) if channels == 1 else out


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """(H, W, 3) uint8 → baseline JPEG bytes with full-resolution chroma (4:4:4: skin tone is chroma)."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(image).save(out, format="JPEG", quality=quality, subsampling=0)
    return out.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.array(image.convert("RGB"))  # writable: torch.from_numpy takes it as is


DECODERS = {AUDIO_CODEC: decode_flac, FACE_CODEC: decode_jpeg}


def pack(encodings: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Variable-length encodings → (uint8 data, int64 offsets of length n + 1)."""
    offsets = np.zeros(len(encodings) + 1, np.int64)
    offsets[1:] = np.cumsum([len(e) for e in encodings])
    data = np.frombuffer(b"".join(encodings), np.uint8).copy()
    return data, offsets


def unpack(data: np.ndarray, offsets: np.ndarray) -> list[bytes]:
    raw = data.tobytes()
    return [raw[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


def crc32s(encodings: Sequence[bytes]) -> np.ndarray:
    """Each encoding's CRC-32 (zlib's), as stored beside a column."""
    return np.array([zlib.crc32(e) for e in encodings], np.uint32)


def check(encoding: bytes, crc32: int, row: int) -> bytes:
    """`encoding` if it still has the CRC-32 it was stored with; else ValueError naming the row."""
    if zlib.crc32(encoding) != int(crc32):
        raise ValueError(f"row {row}: its {len(encoding)} stored bytes fail their CRC-32 check (damaged after the "
                         f"shard was written: a bad disk, a partial copy); rerun the stage that wrote the shard")
    return encoding


def member_names(column: str, codec: str) -> tuple[str, str, str]:
    """The shard members that store `column` as `codec`: its encodings, their offsets, their CRC-32s."""
    data = f"{column}_{codec}"
    return data, f"{data}_offsets", f"{data}_crc32"


def stored_columns(members: Sequence[str]) -> dict[str, str]:
    """{column: codec} for every column a shard stores encoded (`audio_flac` + `audio_flac_offsets` → audio: flac)."""
    return {member[:-len(codec) - 1]: codec for member in members for codec in DECODERS
            if member.endswith(f"_{codec}") and f"{member}_offsets" in members}


def is_encoding_member(member: str) -> bool:
    """Whether a shard member is part of an encoded column (its data, offsets or checksums), not a column itself."""
    return any(member.endswith(member_names("", codec)) for codec in DECODERS)


def encoded_columns(column: str, codec: str, encodings: list[bytes]) -> dict[str, np.ndarray]:
    """The three shard arrays that store `column` as `codec` encodings: data, offsets, checksums."""
    data, offsets = pack(encodings)
    return dict(zip(member_names(column, codec), (data, offsets, crc32s(encodings))))


def decode_column(data: np.ndarray, offsets: np.ndarray, codec: str, threads: int = 1,
                  crc32: np.ndarray | None = None) -> np.ndarray:
    """A stored column back as one stacked array ((n, samples) audio, (n, H, W, 3) crops), each encoding checked
    against `crc32` first when the shard has checksums.

    With `threads` > 1 the encodings are checked and decoded by that many threads: zlib, dr_flac (through cffi) and
    Pillow's JPEG decoder release the GIL, so a shard written at the end of a stage is read back on every core."""
    decode, encodings = DECODERS[codec], unpack(data, offsets)
    if crc32 is not None and len(crc32) != len(encodings):
        raise ValueError(f"{len(crc32)} checksums for {len(encodings)} stored {codec} rows")

    def decode_row(row: int) -> np.ndarray:
        encoding = encodings[row]
        return decode(encoding if crc32 is None else check(encoding, crc32[row], row))

    if threads <= 1 or len(encodings) < 2:
        return np.stack([decode_row(row) for row in range(len(encodings))])
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads) as pool:
        return np.stack(list(pool.map(decode_row, range(len(encodings)))))
