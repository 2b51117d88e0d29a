"""Read single rows of a shard's columns without loading the shard: what streaming training reads.

A shard is an uncompressed `.npz` (a ZIP of `.npy` members, `np.savez`), so each member's array lies contiguously in
the file at an offset the ZIP and `.npy` headers give. Row i of a fixed-size column (embedding, landmarks, box) is
then one `pread` at `offset + i × row bytes`; row i of an encoded column (`s2f.io.codecs`: FLAC audio, JPEG crops)
is one `pread` of the bytes between its two offsets, checked against the row's stored CRC-32, decoded. Memory is
the headers, the offsets and the checksums (12 bytes a sample), whatever the shard's size: training memory no longer
grows with the corpus.

The same works on `s3://` shards through ranged GETs (one request per row; the loader's worker processes overlap
them), so training can read a corpus it never copies.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from s2f.io import codecs

_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # a ZIP local file header: 30 bytes, then the name and extra field


@dataclass(frozen=True)
class Member:
    """Where one `.npy` member's array data starts in the shard file, and its dtype and shape."""

    offset: int
    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize


class _Source:
    """Random reads from a local file or an `s3://` object.

    A local read opens, reads and closes: no descriptor is held, so a corpus of thousands of shards never meets the
    open-file limit, and a forked loader worker shares nothing with its parent (the open costs microseconds against
    a row's milliseconds of decoding).
    """

    def __init__(self, location: str):
        self.location = location

    def read(self, offset: int, size: int) -> bytes:
        if size == 0:
            return b""
        if self.location.startswith("s3://"):
            from s2f.io.storage import read_range

            return read_range(self.location, offset, size)
        fd = os.open(self.location, os.O_RDONLY)
        try:
            data = os.pread(fd, size, offset)
        finally:
            os.close(fd)
        if len(data) != size:
            raise OSError(f"{self.location}: {size} bytes wanted at {offset}, {len(data)} read (truncated?)")
        return data


class ShardRows:
    """Row access to one shard's columns; `columns` names what a caller will read (decoded names: `audio`, `face`)."""

    def __init__(self, location: str | Path, columns: list[str]):
        self.location = str(location)
        self._source = _Source(self.location)
        members = self._index()
        stored = codecs.stored_columns(list(members))
        self.codecs: dict[str, str] = {}
        self.members: dict[str, Member] = {}
        self.offsets: dict[str, np.ndarray] = {}
        self.crc32: dict[str, np.ndarray] = {}   # a CRC-32 per encoded row (none in shards before 2026-12-07)
        for column in columns:
            if column in members:
                self.members[column] = members[column]
            elif column in stored:
                data, offsets, crc32 = codecs.member_names(column, stored[column])
                self.codecs[column], self.members[column] = stored[column], members[data]
                self.offsets[column] = self._whole(members[offsets])
                if crc32 in members:
                    self.crc32[column] = self._whole(members[crc32])
            else:
                raise KeyError(f"{self.location}: no column {column!r} (has {', '.join(sorted(members))})")

    def row(self, column: str, i: int, part: slice | None = None) -> np.ndarray:
        """Row i of `column`, or only `part` of it (the first axis): FLAC audio then decodes only that window."""
        member = self.members[column]
        if column in self.codecs:
            start, end = self.offsets[column][i], self.offsets[column][i + 1]
            data = self._source.read(member.offset + int(start), int(end - start))
            try:
                if column in self.crc32:
                    codecs.check(data, self.crc32[column][i], i)
                if part is not None and self.codecs[column] == codecs.AUDIO_CODEC and part.step in (None, 1):
                    return codecs.decode_flac(data, part.start or 0, part.stop)
                decoded = codecs.DECODERS[self.codecs[column]](data)
            except (ValueError, OSError) as err:  # a failed checksum, or what dr_flac and Pillow raise on bad bytes
                raise ValueError(f"{self.location}: row {i} of {column!r} is unusable ({err})") from None
            return decoded if part is None else decoded[part]
        if part is not None:
            return self.row(column, i)[part]
        size = member.row_bytes
        data = self._source.read(member.offset + i * size, size)
        return np.frombuffer(data, member.dtype).reshape(member.shape[1:]).copy()

    def _whole(self, member: Member) -> np.ndarray:
        size = int(np.prod(member.shape, dtype=np.int64)) * member.dtype.itemsize
        return np.frombuffer(self._source.read(member.offset, size), member.dtype).reshape(member.shape)

    def _index(self) -> dict[str, Member]:
        """Each member's data offset, dtype and shape, from the ZIP directory and the `.npy` headers."""
        with _ZipView(self._source) as view, zipfile.ZipFile(view) as archive:
            members = {}
            for info in archive.infolist():
                if info.compress_type != zipfile.ZIP_STORED:
                    raise ValueError(f"{self.location}: member {info.filename} is compressed; shards are written "
                                     f"uncompressed (np.savez) so rows can be read in place")
                head = _LOCAL_HEADER.unpack(self._source.read(info.header_offset, _LOCAL_HEADER.size))
                start = info.header_offset + _LOCAL_HEADER.size + head[10] + head[11]  # + name + extra field
                members[info.filename.removesuffix(".npy")] = _npy_member(self._source, start)
            return members


def _npy_member(source: _Source, start: int) -> Member:
    """Parse the `.npy` header at `start`: the array's dtype and shape, and where its data begins."""
    head = source.read(start, 12)  # magic (6), version (2), header length (2 bytes in v1, 4 in v2/v3)
    length_size = 2 if head[6] == 1 else 4
    data_start = start + 8 + length_size + int.from_bytes(head[8:8 + length_size], "little")
    stream = io.BytesIO(source.read(start, data_start - start))
    version = np.lib.format.read_magic(stream)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read_header(stream)
    if fortran:
        raise ValueError(f"{source.location}: a Fortran-ordered member at byte {start}")
    return Member(data_start, np.dtype(dtype), tuple(shape))


class _ZipView:
    """A read-only, seekable file over a `_Source`, so `zipfile` can read the central directory of a local or S3
    shard without fetching the whole file."""

    def __init__(self, source: _Source):
        self.source, self.pos = source, 0
        self.size = _size(source.location)

    def __enter__(self) -> _ZipView:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = {0: offset, 1: self.pos + offset, 2: self.size + offset}[whence]
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, size: int = -1) -> bytes:
        size = self.size - self.pos if size is None or size < 0 else min(size, self.size - self.pos)
        data = self.source.read(self.pos, size)
        self.pos += len(data)
        return data


def _size(location: str) -> int:
    if location.startswith("s3://"):
        from s2f.io.storage import object_size

        return object_size(location)
    return os.path.getsize(location)
