"""Practice and qualification items: what the studio shows of one, its images, scoring an
answer and the feedback image.

An item is a tutorial slice leased to one volunteer; its image URLs name the item, not the
slice, and every image comes in bytes of its own for the item (``imaging.variant``), so
neither a URL nor a file hash tells two attempts' slices apart. The expected mask is never
served alone: only as the feedback overlay over the volunteer's own answer, once answered
(practice) or once the attempt is finished (qualification).
"""

import base64
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray
from sqlmodel import Session, select

from backend.annotations.masks import PngMask, RleMask, decode, decode_rle, encode_rle
from backend.core.errors import Conflict, NotFound
from backend.core.storage import Storage
from backend.imaging import sprite
from backend.imaging.models import Slice
from backend.quality.gold import FROZEN, brain_region, overlay_png
from backend.tasks.schemas import NeighbourRead, SliceRead, SpriteRead
from backend.tasks.service import SliceView, leased_slice
from backend.tutorials.models import (
    ItemPurpose,
    QualificationAttempt,
    TutorialItem,
    TutorialSlice,
)
from backend.tutorials.scoring import ItemScore, score_item


def _urls(item_id: int, offset: int, view: SliceView) -> dict[str, str]:
    return {
        contrast: f"/api/tutorials/items/{item_id}/images/{offset}/{contrast}.png"
        for contrast in sorted(view.image_keys)
    }


def slice_read(
    session: Session, item_id: int, slice_id: int
) -> tuple[SliceRead, list[NeighbourRead]]:
    """The item's slice and neighbours as the studio reads a task's."""
    found = leased_slice(session, slice_id)
    shown = found.slice
    near = [(n.index - shown.index, n.image_keys) for n in found.neighbours]
    read = SliceRead(
        axis=shown.axis.value,
        width=shown.width,
        height=shown.height,
        images=_urls(item_id, 0, shown),
        sprite=SpriteRead(
            url=f"/api/tutorials/items/{item_id}/sprite.png",
            frames=sprite.frames(shown.image_keys, near),
        ),
    )
    neighbours = [
        NeighbourRead(offset=n.index - shown.index, images=_urls(item_id, n.index - shown.index, n))
        for n in found.neighbours
    ]
    return read, neighbours


def own_item(session: Session, user_id: int, item_id: int, *, lock: bool = False) -> TutorialItem:
    """The caller's item ``item_id``; ``NotFound`` (the same words) for anyone else's."""
    query = select(TutorialItem).where(TutorialItem.id == item_id)
    if lock:
        query = query.with_for_update()
    item = session.exec(query).first()
    if item is None or item.user_id != user_id:
        raise NotFound(f"No tutorial item {item_id} of yours")
    return item


def revealed(session: Session, item: TutorialItem) -> bool:
    """Whether the expected answer may be shown: a practice item once answered; a
    qualification item once its attempt is finished."""
    if item.answered_at is None:
        return False
    if item.purpose is ItemPurpose.practice:
        return True
    attempt = session.get(QualificationAttempt, item.attempt_id)
    return attempt is not None and attempt.finished_at is not None


def image_key(session: Session, item: TutorialItem, offset: int, contrast: str) -> str:
    """The stored key of an item's image (``offset`` 0: its slice; else a neighbour)."""
    found = leased_slice(session, item.slice_id)
    target = found.slice.index + offset
    views = [found.slice, *found.neighbours]
    view = next((v for v in views if v.index == target), None)
    key = None if view is None else view.image_keys.get(contrast)
    if key is None:
        raise NotFound(f"No {contrast!r} image at offset {offset} of item {item.id}")
    return key


def sprite_of(session: Session, item: TutorialItem) -> tuple[str, list[str]]:
    """The item's sprite key and its frames' image keys (to build it if missing)."""
    found = leased_slice(session, item.slice_id)
    near = [(n.index - found.slice.index, n.image_keys) for n in found.neighbours]
    return (
        sprite.sprite_key(found.slice.id, found.slice.image_keys),
        sprite.frame_keys(found.slice.image_keys, near),
    )


@dataclass(frozen=True)
class Scored:
    score: ItemScore
    overlay: bytes


def _images(
    session: Session, storage: Storage, slice_id: int
) -> tuple[NDArray[np.bool_], NDArray[np.uint8], TutorialSlice]:
    shown = session.get(Slice, slice_id)
    material = session.get(TutorialSlice, slice_id)
    if shown is None or shown.reference_key is None or material is None:
        raise Conflict("This tutorial slice is no longer available", code="material_gone")
    reference = FROZEN.get(storage, shown.reference_key, mask=True)
    flair = FROZEN.get(storage, shown.image_keys["flair"], mask=False)
    return reference, flair, material


def answer(
    *,
    session: Session,
    storage: Storage,
    item: TutorialItem,
    mask_in: PngMask | RleMask,
    max_mask_bytes: int,
    now: datetime,
) -> Scored:
    """Score the caller's answer to ``item`` and store it with the item (once only)."""
    if item.answered_at is not None:
        raise Conflict(f"Tutorial item {item.id} is already answered", code="already_answered")
    reference, flair, material = _images(session, storage, item.slice_id)
    height, width = reference.shape
    mask = decode(mask_in, width=width, height=height, max_bytes=max_mask_bytes) > 0
    result = score_item(material.kind, material.mimic, reference, mask, brain_region(flair))
    item.answered_at = now
    item.mask_counts = encode_rle(mask.astype(np.uint8))
    item.painted = result.painted
    item.dice, item.lesion_f1 = result.dice, result.lesion_f1
    item.lesions_reference, item.lesions_found = result.lesions_reference, result.lesions_found
    item.false_alarms = result.false_alarms
    item.tp, item.fp, item.fn = result.tp, result.fp, result.fn
    session.add(item)
    return Scored(result, _overlay(item, flair, reference, mask))


def stored_score(session: Session, storage: Storage, item: TutorialItem) -> Scored:
    """An answered item's score and overlay, from its stored answer."""
    assert item.mask_counts is not None
    reference, flair, material = _images(session, storage, item.slice_id)
    height, width = reference.shape
    counts = item.mask_counts
    mask = decode_rle(counts, width=width, height=height, expected=(width, height)) > 0
    result = score_item(material.kind, material.mimic, reference, mask, brain_region(flair))
    return Scored(result, _overlay(item, flair, reference, mask))


def _overlay(
    item: TutorialItem,
    flair: NDArray[np.uint8],
    reference: NDArray[np.bool_],
    mask: NDArray[np.bool_],
) -> bytes:
    """The feedback overlay: with the missed lesions for practice; for a test's item only
    what the volunteer painted (hits, false alarms), so that a finished test, answered
    empty from a throwaway account, is no answer key for the next one's slices."""
    return overlay_png(flair, reference, mask, misses=item.purpose is ItemPurpose.practice)


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()
