"""Lease-specific PNG bytes with the same pixels: a served image must not be recognisable by
a hash of its file across accounts (gold would be, from a second account's notes).

The stored PNG is rewritten without decoding: a private ancillary chunk with a per-lease
nonce goes in after the header, and the image data is split into two IDAT chunks at a
per-lease point (decoders join IDAT chunks, so pixels are exactly the same). Stripping the
nonce chunk does not bring the stored bytes back, since the IDAT chunking differs too. The
nonce chunk also pads the file to a per-lease length (``padded_length``): the length alone,
the cheapest property of a file (a browser's developer tools show it), identified a slice
across leases and accounts (issue 35's red team: 11 of 11 gold sprites recognised by length).
Cost: one copy of the file, up to a quarter more bytes, no zlib work. A client that decodes
and hashes the pixels still recognises an image it has seen; that is what the consistency
check (``backend.quality.consistency``) and gold retirement after enough reveals defend
against.
"""

import hashlib
import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Ancillary (a), private (s), reserved bit clear (C), safe to copy (r).
NONCE_CHUNK = b"msCr"
# Bytes a lease's copy adds to a stored PNG with one IDAT chunk before padding: the second
# IDAT chunk's header and CRC (12) and the nonce chunk (12 + 16).
OVERHEAD = 40
MIN_BUCKET = 1024


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """The file's chunks as (type, data); ``ValueError`` for something that is not a PNG."""
    if not png.startswith(SIGNATURE):
        raise ValueError("not a PNG")
    found, at = [], len(SIGNATURE)
    while at + 8 <= len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind = png[at + 4 : at + 8]
        found.append((kind, png[at + 8 : at + 8 + length]))
        at += 12 + length
    return found


def padded_length(stored: int, draw: int) -> int:
    """The length a lease's copy of a ``stored``-byte image is served at: rounded up to a
    bucket of a sixteenth to an eighth of its size (at least ``MIN_BUCKET``), plus a keyed
    draw within one more bucket. So a file's length neither repeats across leases of the same
    image nor tells which of the many images of similar size it is."""
    least = stored + OVERHEAD
    bucket = max(MIN_BUCKET, 1 << max(0, least.bit_length() - 4))
    return -(-least // bucket) * bucket + draw % bucket


def lease_variant(png: bytes, key: bytes, token: str) -> bytes:
    """``png`` with the same pixels and bytes of its own for ``token`` (a lease, offset and
    contrast), keyed by the server's ``key`` so no client can predict or undo them; padded
    to a per-lease length (``padded_length``)."""
    digest = hashlib.blake2b(token.encode(), key=key[:64], digest_size=24).digest()
    nonce = digest[:16]
    chunks = _chunks(png)
    data = b"".join(body for kind, body in chunks if kind == b"IDAT")
    split = 1 + int.from_bytes(nonce[:4], "big") % max(1, len(data) - 1) if len(data) > 1 else 0
    # The served file: the stored chunks, the image data in two chunks, and the nonce chunk
    # carrying the padding (``OVERHEAD`` bytes with no padding).
    unpadded = len(SIGNATURE) + sum(12 + len(body) for kind, body in chunks if kind != b"IDAT")
    unpadded += 24 + len(data) + 12 + len(nonce)
    padding = padded_length(len(png), int.from_bytes(digest[16:], "big")) - unpadded
    out = [SIGNATURE]
    wrote_data = False
    for kind, body in chunks:
        if kind == b"IDAT":
            if not wrote_data:
                out += [_chunk(b"IDAT", data[:split]), _chunk(b"IDAT", data[split:])]
                wrote_data = True
            continue
        out.append(_chunk(kind, body))
        if kind == b"IHDR":
            out.append(_chunk(NONCE_CHUNK, nonce + bytes(max(0, padding))))
    return b"".join(out)
