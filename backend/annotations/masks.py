"""Binary lesion masks on the wire: PNG or run-length encoded, validated strictly. Pure numpy.

Both encodings describe the cropped slice image exactly as served (``[H, W]``, radiological
display, see ``backend.imaging.preprocess``):

- ``png``: base64 of an 8-bit greyscale (or 1-bit) PNG of size W x H whose pixels are 0
  (background) or 255 (lesion); 0/1 is accepted too.
- ``rle``: ``counts`` of alternating runs over the pixels in row-major order (top row first,
  left to right), starting with a run of background (which may be 0). The runs sum to W x H.
"""

import base64
import binascii
import io
import struct
from typing import Annotated, Literal

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError
from pydantic import Field

from backend.core.errors import InvalidInput
from backend.core.validation import InputModel

# Hard caps in the schema; the configurable byte limit (max_mask_bytes) applies on top.
MAX_PNG_BASE64 = 4 * 1024 * 1024
MAX_RLE_RUNS = 1_000_000
MAX_SIDE = 4096
# The largest request body that can carry a mask (a PNG in base64 plus a little JSON), counted
# as it streams in; ``mask_body_limit`` is the configured one.
MAX_MASK_BODY_BYTES = MAX_PNG_BASE64 + 64 * 1024
# No single run can be longer than the largest image.
RunLength = Annotated[int, Field(ge=0, le=MAX_SIDE * MAX_SIDE)]

Mask = npt.NDArray[np.uint8]


class InvalidMask(InvalidInput):
    """The mask cannot be accepted (encoding, size, shape or values)."""


class PngMask(InputModel):
    encoding: Literal["png"]
    data: str = Field(max_length=MAX_PNG_BASE64, description="base64 of the PNG file")


class RleMask(InputModel):
    encoding: Literal["rle"]
    width: int = Field(gt=0, le=MAX_SIDE)
    height: int = Field(gt=0, le=MAX_SIDE)
    # fail_fast: the first bad run is reported, not a million of them (building each error
    # took the server 25 s for a 3 MB body of negative runs).
    counts: list[RunLength] = Field(min_length=1, max_length=MAX_RLE_RUNS, fail_fast=True)


MaskIn = Annotated[PngMask | RleMask, Field(discriminator="encoding")]


def mask_body_limit(max_mask_bytes: int) -> int:
    """The body limit of a request carrying a mask of at most ``max_mask_bytes``: its base64
    (4/3) or its RLE text (at most about 5/4 at that many runs) with room to spare, plus 64 KiB.
    """
    return min(MAX_MASK_BODY_BYTES, max_mask_bytes * 3 // 2 + 64 * 1024)


def decode(mask: PngMask | RleMask, *, width: int, height: int, max_bytes: int) -> Mask:
    """The mask as ``uint8`` 0/1 of shape ``[height, width]``; ``InvalidMask`` otherwise."""
    if isinstance(mask, PngMask):
        return decode_png(mask.data, width=width, height=height, max_bytes=max_bytes)
    if len(mask.counts) * 4 > max_bytes:
        raise InvalidMask(f"The RLE mask is larger than the {max_bytes}-byte limit")
    return decode_rle(mask.counts, width=mask.width, height=mask.height, expected=(width, height))


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(raw: bytes) -> tuple[int, int]:
    """Width and height a PNG declares in its header (``IHDR``, always the first chunk), read
    without decoding anything; ``InvalidMask`` when ``raw`` does not start like a PNG."""
    if len(raw) < 24 or raw[:8] != PNG_SIGNATURE or raw[12:16] != b"IHDR":
        raise InvalidMask("The mask is not a readable PNG (no PNG header)")
    width, height = struct.unpack(">II", raw[16:24])
    return width, height


def decode_png(data: str, *, width: int, height: int, max_bytes: int) -> Mask:
    """Decode and check a base64 PNG mask."""
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidMask("The PNG mask is not valid base64") from exc
    if len(raw) > max_bytes:
        raise InvalidMask(f"The PNG mask is {len(raw)} bytes; the limit is {max_bytes}")
    # The declared size is checked before Pillow sees the file: a 66-byte PNG declaring
    # 16384 x 16384 pixels made Image.open raise DecompressionBombError (a 500).
    declared = png_size(raw)
    if declared != (width, height):
        raise InvalidMask(
            f"The mask is {declared[0]}x{declared[1]} pixels; this slice needs {width}x{height}"
        )
    try:
        image = Image.open(io.BytesIO(raw), formats=["PNG"])
        if image.mode not in ("L", "1"):
            raise InvalidMask(f"The PNG mask must be greyscale (mode L or 1), got {image.mode}")
        pixels = np.asarray(image.convert("L"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        # Pillow's messages name internal objects (and their memory addresses): not shown.
        raise InvalidMask("The mask is not a readable PNG") from None
    if pixels.shape != (height, width):
        raise InvalidMask("The mask is not a readable PNG")
    values = np.unique(pixels)
    if not (set(values.tolist()) <= {0, 255} or set(values.tolist()) <= {0, 1}):
        shown = ", ".join(str(v) for v in values[:8])
        raise InvalidMask(f"Mask pixels must be 0 or 255 (or 0 or 1); found {shown}")
    return (pixels > 0).astype(np.uint8)


def decode_rle(counts: list[int], *, width: int, height: int, expected: tuple[int, int]) -> Mask:
    """Decode and check a run-length mask."""
    if (width, height) != expected:
        raise InvalidMask(
            f"The mask is {width}x{height} pixels; this slice needs {expected[0]}x{expected[1]}"
        )
    # Checked in Python integers before numpy sees them: an int64 sum can wrap around to
    # W x H and let np.repeat write past the end of its buffer.
    pixels = width * height
    if not counts or any(not 0 <= run <= pixels for run in counts):
        raise InvalidMask(f"RLE counts must be a non-empty list of run lengths 0..{pixels}")
    total = sum(counts)
    if total != pixels:
        raise InvalidMask(f"RLE runs cover {total} pixels; the slice has {pixels}")
    runs = np.asarray(counts, dtype=np.int64)
    values = np.arange(runs.size, dtype=np.uint8) % 2
    return np.repeat(values, runs).reshape(height, width)


def encode_rle(mask: Mask) -> list[int]:
    """Run lengths of a 0/1 mask ``[H, W]`` in the wire format (starts with background)."""
    flat = (mask.ravel() > 0).astype(np.int8)
    edges = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate(([0], edges, [flat.size]))
    runs: list[int] = [int(r) for r in np.diff(bounds)]
    return ([0] + runs) if flat.size and flat[0] == 1 else runs


def to_png(mask: Mask) -> bytes:
    """A 0/255 greyscale PNG of a 0/1 mask, as stored."""
    buffer = io.BytesIO()
    Image.fromarray((mask > 0).astype(np.uint8) * 255).save(buffer, format="PNG")
    return buffer.getvalue()
