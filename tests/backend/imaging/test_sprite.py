"""Sprites (issue 35): the import stores, per slice, one PNG of its contrasts and its
neighbours' FLAIR, which the studio loads instead of seven single images."""

import io

import numpy as np
from PIL import Image
from sqlalchemy import Engine
from sqlmodel import Session, select

from backend.core.storage import Storage
from backend.imaging import sprite
from backend.imaging.models import Slice
from backend.imaging.service import CaseLoader, CaseMeta, import_cases
from backend.imaging.synthetic import synthesize_case
from tests.factories import create_tasks


def _grey(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def test_an_import_stores_each_slices_sprite_beside_its_images(
    migrated_engine: Engine, storage: Storage
) -> None:
    source = synthesize_case(3).source
    outcomes = import_cases(
        engine=migrated_engine,
        storage=storage,
        project_name="sprites",
        loaders=[CaseLoader("synthetic-3", lambda: source)],
        meta=CaseMeta("synthetic", "CC0"),
    )
    assert [o.status for o in outcomes] == ["imported"]
    with Session(migrated_engine) as session:
        slices = session.exec(select(Slice).order_by(Slice.index)).all()  # type: ignore[arg-type]
    by_index = {s.index: s for s in slices}
    public_id = outcomes[0].case_public_id
    for item in slices:
        assert item.id is not None
        key = sprite.sprite_key(item.id, item.image_keys)
        assert key.startswith(f"cases/{public_id}/")  # removed with its case
        near = [
            (o, by_index[item.index + o].image_keys)
            for o in (-2, -1, 1, 2)
            if item.index + o in by_index
        ]
        frames = sprite.frames(item.image_keys, near)
        assert frames[:3] == ["0/flair", "0/t1", "0/t2"]
        sheet = _grey(storage.get(key))
        height = item.height
        assert sheet.shape == (height * len(frames), item.width)
        for i, stored in enumerate(sprite.frame_keys(item.image_keys, near)):
            assert np.array_equal(sheet[i * height : (i + 1) * height], _grey(storage.get(stored)))


def test_frames_list_the_slice_then_each_neighbour_by_offset() -> None:
    keys = {"t2": "a/t2.png", "flair": "a/flair.png", "t1": "a/t1.png"}
    near = [(2, {"flair": "c.png"}), (-1, {"flair": "b.png", "t1": "b1.png"}), (1, {"t1": "x"})]
    assert sprite.frames(keys, near) == ["0/flair", "0/t1", "0/t2", "-1/flair", "2/flair"]
    assert sprite.frame_keys(keys, near) == [
        "a/flair.png",
        "a/t1.png",
        "a/t2.png",
        "b.png",
        "c.png",
    ]
    assert sprite.sprite_key(7, keys) == "a/sprite-7.png"


def test_slices_imported_before_sprites_get_theirs_from_the_backfill(
    migrated_engine: Engine, storage: Storage
) -> None:
    with Session(migrated_engine) as session:
        create_tasks(session, storage, count=6)
        session.commit()
        slices = session.exec(select(Slice)).all()
        assert not any(storage.exists(sprite.sprite_key(s.id or 0, s.image_keys)) for s in slices)
        seen: list[tuple[int, int]] = []
        assert sprite.missing_sprites(session, storage, lambda *p: seen.append(p)) == 6
        assert seen[-1][0] == seen[-1][1]
        for item in slices:
            sheet = _grey(storage.get(sprite.sprite_key(item.id or 0, item.image_keys)))
            flair = _grey(storage.get(item.image_keys["flair"]))
            assert np.array_equal(sheet[: item.height], flair)
        assert sprite.missing_sprites(session, storage) == 0  # built once
