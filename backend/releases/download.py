"""Serving a release's bytes: one file, or the whole release as a tar built on the fly, both
with HTTP Range (resume) and a strong ETag, streamed from storage a chunk at a time so the
server's memory does not grow with the release.

The tar's layout is a pure function of the release's files (ustar headers with fixed times,
owners and modes, each file padded to 512 bytes, the end marker, padded to tarfile's record
size), so its size and every byte's place are known before anything is read: any range can be
served, and a resumed download gets the bytes it missed."""

import hashlib
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass

from backend.core.storage import Storage

BLOCK = tarfile.BLOCKSIZE  # 512
RECORD = tarfile.RECORDSIZE  # 10240
RANGE = re.compile(r"bytes=(\d*)-(\d*)")
# More digits than any size: a longer number is read as "past the end" (Python refuses to
# parse integers of over 4,300 digits, and no file is 10**18 bytes).
DIGITS = 18


class RangeNotSatisfiable(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"bytes */{size}")
        self.size = size


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``[start, end)`` of a single ``Range: bytes=...`` header (None: the whole body; a
    multi-range or malformed header is ignored, as RFC 9110 allows);
    ``RangeNotSatisfiable`` when it lies past the end."""
    if not header:
        return None
    found = RANGE.fullmatch(header.strip())
    if found is None:
        return None
    first, last = (g if len(g) <= DIGITS else "9" * DIGITS for g in found.groups())
    if not first and not last:
        return None
    if not first:  # the last N bytes
        count = int(last)
        if count == 0:
            raise RangeNotSatisfiable(size)
        return max(size - count, 0), size
    start = int(first)
    if last and int(last) < start:
        return None  # an invalid range (last before first) is ignored, as RFC 9110 says
    end = size if not last else min(int(last) + 1, size)
    if start >= size:
        raise RangeNotSatisfiable(size)
    return start, end


@dataclass(frozen=True)
class Member:
    path: str  # inside the release
    key: str  # in storage
    size: int


@dataclass(frozen=True)
class Segment:
    """A run of the archive: literal bytes (a header, padding) or a stored file's bytes."""

    offset: int
    size: int
    data: bytes | None = None
    key: str | None = None


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(format=tarfile.USTAR_FORMAT, encoding="utf-8", errors="strict")


def tar_layout(folder: str, members: list[Member]) -> list[Segment]:
    """The archive as segments, in member order, under ``folder/``."""
    segments: list[Segment] = []
    offset = 0
    for member in members:
        header = _header(f"{folder}/{member.path}", member.size)
        segments.append(Segment(offset, len(header), data=header))
        offset += len(header)
        segments.append(Segment(offset, member.size, key=member.key))
        offset += member.size
        pad = -member.size % BLOCK
        if pad:
            segments.append(Segment(offset, pad, data=bytes(pad)))
            offset += pad
    end = 2 * BLOCK
    end += -(offset + end) % RECORD
    segments.append(Segment(offset, end, data=bytes(end)))
    return segments


def layout_size(segments: list[Segment]) -> int:
    last = segments[-1]
    return last.offset + last.size


def stream(storage: Storage, segments: list[Segment], start: int, end: int) -> Iterator[bytes]:
    """The archive's bytes ``[start, end)``."""
    for segment in segments:
        lo, hi = max(start, segment.offset), min(end, segment.offset + segment.size)
        if lo >= hi:
            continue
        a, b = lo - segment.offset, hi - segment.offset
        if segment.data is not None:
            yield segment.data[a:b]
        else:
            assert segment.key is not None
            yield from storage.chunks(segment.key, a, b)


def etag(*parts: str) -> str:
    """A strong ETag from the release's immutable identity (its files' checksums)."""
    return '"' + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:40] + '"'
