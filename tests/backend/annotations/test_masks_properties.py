"""Property tests for the mask decoders: any input gives a mask of the right shape or a clear
``InvalidMask`` (422), never another exception and never a crash."""

import base64
import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from pydantic import ValidationError

from backend.annotations.masks import InvalidMask, decode, decode_png, decode_rle, encode_rle
from backend.annotations.schemas import AnnotationCreate

SIDE = st.integers(min_value=1, max_value=40)
# Run lengths from the dangerous ends of every integer type, and ordinary ones.
RUN = st.one_of(
    st.integers(min_value=0, max_value=2000),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**31 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63)]),
)


def _check(mask: np.ndarray, width: int, height: int) -> None:
    assert mask.shape == (height, width)
    assert mask.dtype == np.uint8
    assert set(np.unique(mask).tolist()) <= {0, 1}


@settings(max_examples=400, deadline=None)
@given(counts=st.lists(RUN, max_size=12), width=SIDE, height=SIDE)
def test_any_run_lengths_decode_or_are_refused(counts: list[int], width: int, height: int) -> None:
    try:
        mask = decode_rle(counts, width=width, height=height, expected=(width, height))
    except InvalidMask:
        return
    _check(mask, width, height)
    assert sum(counts) == width * height


@settings(max_examples=200, deadline=None)
@given(data=st.data(), width=SIDE, height=SIDE)
def test_runs_that_wrap_int64_to_the_pixel_count_are_refused(
    data: st.DataObject, width: int, height: int
) -> None:
    # The crash of issue 17: runs whose sum overflows int64 back to exactly W x H.
    first = data.draw(st.integers(min_value=2**62, max_value=2**63 - 1))
    second = data.draw(st.integers(min_value=2**62, max_value=2**63 - 1))
    last = (width * height - first - second) % 2**64
    with pytest.raises(InvalidMask):
        decode_rle([first, second, last], width=width, height=height, expected=(width, height))


@settings(max_examples=200, deadline=None)
@given(
    mask=st.integers(1, 30).flatmap(
        lambda h: st.integers(1, 30).flatmap(
            lambda w: st.lists(st.booleans(), min_size=h * w, max_size=h * w).map(
                lambda bits: np.array(bits, dtype=np.uint8).reshape(h, w)
            )
        )
    )
)
def test_rle_round_trips(mask: np.ndarray) -> None:
    height, width = mask.shape
    decoded = decode_rle(encode_rle(mask), width=width, height=height, expected=(width, height))
    assert np.array_equal(decoded, mask)


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=300), width=SIDE, height=SIDE)
def test_any_bytes_as_a_png_decode_or_are_refused(raw: bytes, width: int, height: int) -> None:
    data = base64.b64encode(raw).decode()
    try:
        mask = decode_png(data, width=width, height=height, max_bytes=10_000)
    except InvalidMask:
        return
    _check(mask, width, height)


def _png(array: np.ndarray, mode: str) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).convert(mode).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@settings(max_examples=200, deadline=None)
@given(
    width=SIDE,
    height=SIDE,
    mode=st.sampled_from(["L", "1", "RGB", "RGBA", "P", "I;16", "LA"]),
    values=st.sampled_from([(0, 255), (0, 1), (0, 128), (0,), (7, 255)]),
    seed=st.integers(0, 2**32 - 1),
    expected=st.tuples(SIDE, SIDE),
)
def test_real_pngs_of_any_mode_and_size_decode_or_are_refused(
    width: int,
    height: int,
    mode: str,
    values: tuple[int, ...],
    seed: int,
    expected: tuple[int, int],
) -> None:
    array = np.random.default_rng(seed).choice(values, size=(height, width)).astype(np.uint8)
    try:
        mask = decode_png(_png(array, mode), width=expected[0], height=expected[1], max_bytes=10**6)
    except InvalidMask:
        return
    _check(mask, *expected)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
MASKISH = st.fixed_dictionaries(
    {"encoding": st.sampled_from(["rle", "png", "svg"])},
    optional={
        "width": JSON | SIDE,
        "height": JSON | SIDE,
        "counts": JSON | st.lists(RUN, max_size=8),
        "data": JSON | st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()),
    },
)


@settings(max_examples=400, deadline=None)
@given(mask=MASKISH, client_info=JSON, width=SIDE, height=SIDE)
def test_any_request_body_validates_then_decodes_or_is_refused(
    mask: dict[str, object], client_info: object, width: int, height: int
) -> None:
    try:
        body = AnnotationCreate.model_validate({"mask": mask, "client_info": client_info})
    except ValidationError:
        return
    try:
        decoded = decode(body.mask, width=width, height=height, max_bytes=10_000)
    except InvalidMask:
        return
    _check(decoded, width, height)
