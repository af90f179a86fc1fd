"""One PNG per lease for everything the studio shows at once (issue 35).

The studio shows a leased slice in each of its contrasts and scrolls through the FLAIR of its
neighbours: seven images, seven requests per lease before. A sprite stacks those frames
top to bottom (a case's slices share one crop, so every frame has the slice's size) in the
order ``frames`` gives, which the lease response lists, so a client fetches one image and cuts
it. It is built once per slice when its case is imported (or, for slices imported before
sprites, on the slice's first lease) and kept in storage beside the slice's images (slices
and their images never change: a re-import makes new slices); each lease still gets its own bytes
(``imaging.variant``), so a sprite, like any image, cannot be recognised across leases by
its hash.
"""

import io
import posixpath
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from sqlmodel import Session, select

from backend.core.storage import Storage
from backend.imaging.models import Case, Contrast, Slice

if TYPE_CHECKING:
    from backend.imaging.preprocess import PreparedCase

# Slices either side of the leased one sent for scrolling context.
NEIGHBOUR_REACH = 2
# Neighbours contribute their FLAIR only: the studio's context strip and scrolling show it.
NEIGHBOUR_CONTRAST = "flair"


def sprite_key(slice_id: int, image_keys: Mapping[str, str]) -> str:
    """Where a slice's sprite is stored: beside its images (under its case's prefix, so a
    failed import or a deleted case takes it along)."""
    first = image_keys.get(NEIGHBOUR_CONTRAST) or min(image_keys.values())
    return f"{posixpath.dirname(first)}/sprite-{slice_id}.png"


def frames(
    image_keys: Mapping[str, str], neighbours: Sequence[tuple[int, Mapping[str, str]]]
) -> list[str]:
    """The sprite's frames, top to bottom, as ``"offset/contrast"``: the slice's contrasts in
    name order, then each neighbour's FLAIR by offset (``neighbours``: (offset, image keys))."""
    own = [f"0/{contrast}" for contrast in sorted(image_keys)]
    near = [
        f"{offset}/{NEIGHBOUR_CONTRAST}"
        for offset, keys in sorted(neighbours)
        if NEIGHBOUR_CONTRAST in keys
    ]
    return own + near


def frame_keys(
    image_keys: Mapping[str, str], neighbours: Sequence[tuple[int, Mapping[str, str]]]
) -> list[str]:
    """The storage keys of ``frames``, in the same order."""
    by_offset = {0: image_keys, **dict(neighbours)}
    out = []
    for frame in frames(image_keys, neighbours):
        offset, contrast = frame.split("/")
        out.append(by_offset[int(offset)][contrast])
    return out


def build(pngs: Sequence[bytes]) -> bytes:
    """The sprite of 8-bit PNG images of one size, stacked top to bottom."""
    images = [np.asarray(Image.open(io.BytesIO(png)).convert("L")) for png in pngs]
    shapes = {image.shape for image in images}
    if len(shapes) != 1:
        raise ValueError(f"A sprite's frames must share one size, not {sorted(shapes)}")
    buffer = io.BytesIO()
    Image.fromarray(np.concatenate(images, axis=0)).save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def stored_sprite(storage: Storage, key: str, frame_keys: Sequence[str] | None) -> bytes:
    """The sprite stored under ``key``, built from the images ``frame_keys`` and stored first
    when they are given (a slice imported before sprites, on its first lease; two first
    leases at once write the same bytes)."""
    if frame_keys is not None:
        data = build([storage.get(k) for k in frame_keys])
        storage.put(key, data)
        return data
    return storage.get(key)


def missing_sprites(
    session: Session, storage: Storage, progress: Callable[[int, int], None] | None = None
) -> int:
    """Build the sprite of every slice that has none (slices imported before sprites); returns
    how many were built. A slice's first lease would build it anyway, but that lease would
    answer a little slower than any later one: a timing a volunteer could read to tell a
    never-leased slice from one others have seen (gold). ``progress(done, total)`` after each
    case."""
    cases = session.exec(select(Case.id)).all()
    built = 0
    for done, case_id in enumerate(cases, start=1):
        rows = session.exec(
            select(Slice.id, Slice.axis, Slice.index, Slice.image_keys).where(
                Slice.case_id == case_id
            )
        ).all()
        by_place = {(axis, index): keys for _id, axis, index, keys in rows}
        for slice_id, axis, index, keys in rows:
            assert slice_id is not None
            key = sprite_key(slice_id, keys)
            if storage.exists(key):
                continue
            near = [
                (offset, by_place[axis, index + offset])
                for offset in range(-NEIGHBOUR_REACH, NEIGHBOUR_REACH + 1)
                if offset and (axis, index + offset) in by_place
            ]
            stored_sprite(storage, key, frame_keys(keys, near))
            built += 1
        if progress is not None:
            progress(done, len(cases))
    return built


def store_all(storage: Storage, prepared: "PreparedCase", slices: list[Slice]) -> None:
    """Each slice's sprite (``imaging.sprite``: its contrasts and its neighbours' FLAIR in one
    PNG), from the rendered images still in memory."""
    renders = {render.index: render for render in prepared.slices}
    for item in slices:
        assert item.id is not None
        near = [
            (offset, item.image_keys)  # only the offsets and contrasts matter to ``frames``
            for offset in range(-NEIGHBOUR_REACH, NEIGHBOUR_REACH + 1)
            if offset and item.index + offset in renders
        ]
        pngs = {0: renders[item.index].pngs}
        pngs |= {offset: renders[item.index + offset].pngs for offset, _ in near}
        shown = frames(item.image_keys, near)
        data = build([pngs[int(o)][Contrast(c)] for o, c in (frame.split("/") for frame in shown)])
        storage.put(sprite_key(item.id, item.image_keys), data)
