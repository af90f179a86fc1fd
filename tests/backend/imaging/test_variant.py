"""Per-lease image bytes (``imaging.variant``): the same pixels, never the same file."""

import hashlib
import io

import numpy as np
from PIL import Image

from backend.imaging.preprocess import encode_png
from backend.imaging.variant import lease_variant, padded_length

KEY = b"k" * 32


def _image(seed: int, height: int = 208) -> bytes:
    rng = np.random.default_rng(seed)
    return encode_png(rng.integers(0, 255, (height, 176), dtype=np.uint8))


def test_a_lease_copy_has_the_pixels_and_a_length_of_its_own() -> None:
    stored = _image(1)
    copies = [lease_variant(stored, KEY, f"{lease}/sprite") for lease in range(1, 41)]
    expected = np.asarray(Image.open(io.BytesIO(stored)))
    for copy in copies:
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(copy))), expected)
    assert len(set(copies)) == len(copies)
    # Issue 35's red team recognised gold by the served length alone: it now varies by lease
    # over a bucket, and images of similar size share the same range of lengths.
    lengths = [len(copy) for copy in copies]
    assert len(set(lengths)) > 30
    assert lengths == [padded_length(len(stored), d) for d in _draws(range(1, 41))]
    other = _image(2)
    assert abs(len(other) - len(stored)) < 2000
    theirs = {len(lease_variant(other, KEY, f"{lease}/sprite")) for lease in range(100, 140)}
    # Overlapping ranges of lengths:
    assert min(lengths) < max(theirs)
    assert min(theirs) < max(lengths)
    assert max(lengths) <= 1.25 * len(stored) + 2048


def _draws(leases: range) -> list[int]:
    return [
        int.from_bytes(
            hashlib.blake2b(f"{lease}/sprite".encode(), key=KEY, digest_size=24).digest()[16:],
            "big",
        )
        for lease in leases
    ]


def test_a_tiny_image_is_still_padded_and_decodes() -> None:
    stored = encode_png(np.zeros((4, 4), dtype=np.uint8))
    copy = lease_variant(stored, KEY, "1/0/flair")
    assert len(copy) >= len(stored) + 40
    assert not np.asarray(Image.open(io.BytesIO(copy))).any()
