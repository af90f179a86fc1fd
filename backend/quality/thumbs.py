"""Thumbnails of the expert workspace's lists: one small palette PNG per page (a sprite) with
each slice's FLAIR image at thumbnail size and its mask's outline, so a page of 24 rows costs
one image request, not 48 full-size ones."""

import io
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from scipy import ndimage
from sqlmodel import Session, col, select

from backend.core.storage import Storage
from backend.core.validation import MAX_DB_ID
from backend.fusion import labels
from backend.imaging.models import Slice
from backend.quality.gold import read_grey, read_mask
from backend.quality.models import GoldVersion
from backend.quality.workspace_schemas import SpriteRead
from backend.tasks.models import Task, TaskKind

TILE = 64  # pixels, square; the list shows them at this size
COLUMNS = 8
MAX_TILES = 100
MARK = 255  # palette index of the outline
MARK_COLOUR = (240, 228, 66)  # Okabe-Ito yellow: seen on grey at any brightness


class Mark(StrEnum):
    """Which mask a thumbnail outlines."""

    reference = "reference"  # the imported reference mask
    gold = "gold"  # the current gold version
    fused = "fused"  # the crowd task's newest fused label (P(lesion) >= 0.5)
    none = "none"


def sprite_of(slice_ids: list[int], mark: Mark) -> SpriteRead | None:
    """Where a page's sprite is served (None for an empty page)."""
    if not slice_ids:
        return None
    ids = ",".join(str(i) for i in slice_ids)
    return SpriteRead(
        url=f"/api/quality/workspace/sprite.png?mark={mark.value}&slices={ids}",
        tile=TILE,
        columns=COLUMNS,
    )


def tile(
    flair: NDArray[np.uint8], mask: NDArray[np.bool_] | None, size: int = TILE
) -> NDArray[np.uint8]:
    """A FLAIR slice ``[H, W]`` shrunk into a ``[size, size]`` palette tile (grey 0..254,
    centred on black) with ``mask``'s outline as ``MARK``. A lesion smaller than a tile pixel
    still shows: any covered tile pixel counts."""
    h, w = flair.shape
    scale = size / max(h, w)
    tw, th = max(1, round(w * scale)), max(1, round(h * scale))
    grey = np.asarray(Image.fromarray(flair).resize((tw, th), Image.Resampling.BILINEAR))
    out = np.zeros((size, size), dtype=np.uint8)
    y0, x0 = (size - th) // 2, (size - tw) // 2
    view = out[y0 : y0 + th, x0 : x0 + tw]
    view[:] = np.minimum(grey, MARK - 1)
    if mask is not None and mask.any():
        cover = Image.fromarray(mask.astype(np.float32)).resize((tw, th), Image.Resampling.BOX)
        shrunk = np.asarray(cover) > 0
        edge = shrunk & ~ndimage.binary_erosion(shrunk)
        view[edge] = MARK
    return out


def sprite_png(tiles: list[NDArray[np.uint8]], columns: int = COLUMNS) -> bytes:
    """Tiles ``[size, size]`` in rows of ``columns`` as one palette PNG."""
    size = tiles[0].shape[0]
    rows = -(-len(tiles) // columns)
    sheet = np.zeros((rows * size, min(columns, len(tiles)) * size), dtype=np.uint8)
    for n, part in enumerate(tiles):
        r, c = divmod(n, columns)
        sheet[r * size : (r + 1) * size, c * size : (c + 1) * size] = part
    image = Image.fromarray(sheet, mode="P")
    palette = [v for g in range(256) for v in (g, g, g)]
    palette[MARK * 3 : MARK * 3 + 3] = MARK_COLOUR
    image.putpalette(palette)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _marks(
    session: Session, storage: Storage, slices: list[Slice], mark: Mark
) -> dict[int, NDArray[np.bool_]]:
    ids = [s.id for s in slices]
    if mark is Mark.reference:
        return {s.id or 0: read_mask(storage, s.reference_key) for s in slices if s.reference_key}
    if mark is Mark.gold:
        rows = session.exec(
            select(GoldVersion.slice_id, GoldVersion.mask_key).where(
                col(GoldVersion.slice_id).in_(ids), col(GoldVersion.retired_at).is_(None)
            )
        ).all()
        return {slice_id: read_mask(storage, key) for slice_id, key in rows}
    if mark is Mark.fused:
        tasks = session.exec(
            select(Task.id, Task.slice_id, Task.project_id).where(
                col(Task.slice_id).in_(ids), Task.kind == TaskKind.normal
            )
        ).all()
        found = {}
        for project_id in {p for _, _, p in tasks}:
            mine = [t for t, _, p in tasks if p == project_id and t is not None]
            for result in labels.newest(session, project_id, mine).values():
                if result.soft_key is not None:
                    found[result.slice_id] = labels.read_soft(storage, result.soft_key) >= 0.5
        return found
    return {}


def page_sprite(*, session: Session, storage: Storage, slice_ids: list[int], mark: Mark) -> bytes:
    """The sprite of a list page: the slices' thumbnails in the order given, outlined by
    ``mark``'s mask; a slice that does not exist (or has no FLAIR image) is a black tile."""
    wanted = [i for i in slice_ids if i <= MAX_DB_ID]  # larger ids exist on no dialect
    rows = session.exec(select(Slice).where(col(Slice.id).in_(wanted))).all()
    by_id = {s.id: s for s in rows}
    marks = _marks(session, storage, list(rows), mark)
    tiles = []
    for slice_id in slice_ids:
        slice_ = by_id.get(slice_id)
        key = None if slice_ is None else slice_.image_keys.get("flair")
        if slice_ is None or key is None:
            tiles.append(np.zeros((TILE, TILE), dtype=np.uint8))
            continue
        tiles.append(tile(read_grey(storage, key), marks.get(slice_id)))
    return sprite_png(tiles)
