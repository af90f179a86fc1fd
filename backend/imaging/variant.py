"""Lease-specific PNG bytes with the same pixels: a served image must not be recognisable by
a hash of its file across accounts (gold would be, from a second account's notes).

The stored PNG is rewritten without decoding: a private ancillary chunk with a per-lease
nonce goes in after the header, and the image data is split into two IDAT chunks at a
per-lease point (decoders join IDAT chunks, so pixels are exactly the same). Stripping the
nonce chunk does not bring the stored bytes back, since the IDAT chunking differs too. Cost:
one copy of the file, no zlib work. A client that decodes and hashes the pixels still
recognises an image it has seen; that is what the consistency check
(``backend.quality.consistency``) and gold retirement after enough reveals defend against.
"""

import hashlib
import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Ancillary (a), private (s), reserved bit clear (C), safe to copy (r).
NONCE_CHUNK = b"msCr"


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


def lease_variant(png: bytes, key: bytes, token: str) -> bytes:
    """``png`` with the same pixels and bytes of its own for ``token`` (a lease, offset and
    contrast), keyed by the server's ``key`` so no client can predict or undo them."""
    nonce = hashlib.blake2b(token.encode(), key=key[:64], digest_size=16).digest()
    chunks = _chunks(png)
    data = b"".join(body for kind, body in chunks if kind == b"IDAT")
    split = 1 + int.from_bytes(nonce[:4], "big") % max(1, len(data) - 1) if len(data) > 1 else 0
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
            out.append(_chunk(NONCE_CHUNK, nonce))
    return b"".join(out)
