"""The expert workspace API (``quality.workspace``) on PostgreSQL and SQLite: candidates paged,
filtered and spread; gold and experts' answers paged; one slice with every mask named; the
review queue by fused entropy or by disagreement; rejections; thumbnails; experts only."""

import io
import itertools
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import Engine
from sqlmodel import Session, select

from backend.annotations.masks import decode_rle
from backend.auth import service as auth
from backend.auth.models import UserRole
from backend.core.storage import Storage
from backend.fusion import labels
from backend.fusion import service as fusion
from backend.fusion.models import FusionResult, FusionRun, FusionScope
from backend.imaging.models import Slice
from backend.quality import gold_pool, thumbs
from backend.quality.models import GoldVersion, SliceRejection
from backend.tasks import service as tasks
from backend.tasks.models import Task, TaskKind
from tests.backend.quality.test_gold import _mask_rle, _square_masks, create_case
from tests.backend.quality.test_gold_pool import _project_with_cases
from tests.factories import PASSWORD, create_project, create_token, submit

API = "/api/quality/workspace"


def _headers(
    engine: Engine, role: UserRole = UserRole.expert, name: str = "expert"
) -> dict[str, str]:
    with Session(engine) as session:
        user = auth.create_user(session=session, email=f"{name}@example.org", password=PASSWORD)
        user.role = role
        session.add(user)
        token = create_token(session, user)
        session.commit()
    return {"Authorization": f"Bearer {token}"}


def _pages(client: TestClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    """Every candidate, page by page of 7."""
    rows: list[dict[str, Any]] = []
    while True:
        page = client.get(
            f"{API}/candidates", params={**params, "limit": 7, "offset": len(rows)}, headers=headers
        )
        assert page.status_code == 200, page.text
        body = page.json()
        rows += body["items"]
        if not body["items"]:
            assert len(rows) == body["total"]
            return rows


def test_candidates_are_paged_filtered_and_spread(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    with Session(migrated_engine) as session:
        project = _project_with_cases(session, storage, 2)
        session.commit()
        project_id = project.id
    expert = _headers(migrated_engine)
    everything = _pages(client, expert, project_id=project_id)
    assert len(everything) == 80
    assert len({r["slice_id"] for r in everything}) == 80  # pages neither overlap nor skip
    first = client.get(
        f"{API}/candidates", params={"project_id": project_id, "limit": 12}, headers=expert
    ).json()
    assert first["total"] == 80
    assert len(first["items"]) == 12
    assert [r["slice_id"] for r in first["items"]] == [r["slice_id"] for r in everything[:12]]
    # A page does not dwell on one lesion: no two rows of a case within MIN_GAP slices.
    close = [
        (a["index"], b["index"])
        for a, b in itertools.combinations(first["items"], 2)
        if a["case"] == b["case"] and abs(a["index"] - b["index"]) < gold_pool.MIN_GAP
    ]
    assert close == []
    assert {c["value"]: c["count"] for c in first["cases"]} == {r["case"]: 40 for r in everything}
    strata = {s["value"]: s["count"] for s in first["strata"]}
    assert sum(strata.values()) == 80
    assert {"empty", "small", "medium", "large"} <= strata.keys()
    # Filters: a case, a stratum, and slices without a lesion left out or alone.
    case = everything[0]["case"]
    mine = _pages(client, expert, project_id=project_id, case=case)
    assert len(mine) == 40
    assert {r["case"] for r in mine} == {case}
    small = _pages(client, expert, project_id=project_id, stratum="small")
    assert small
    assert {r["stratum"] for r in small} == {"small"}
    assert len(small) == strata["small"]
    lesioned = _pages(client, expert, project_id=project_id, empty="exclude")
    empty = _pages(client, expert, project_id=project_id, empty="only")
    assert {r["stratum"] for r in empty} <= {"empty", "mimic"}
    assert not {r["stratum"] for r in lesioned} & {"empty", "mimic"}
    assert len(lesioned) + len(empty) == 80
    assert all(r["reference_pixels"] == 0 for r in empty)
    bad = client.get(
        f"{API}/candidates", params={"project_id": project_id, "empty": "maybe"}, headers=expert
    )
    assert bad.status_code == 422
    # One sprite per page, at thumbnail size, never cached.
    sprite = first["sprite"]
    assert sprite["tile"] == thumbs.TILE
    png = client.get(sprite["url"], headers=expert)
    assert png.status_code == 200
    assert png.headers["cache-control"] == "no-store"
    image = Image.open(io.BytesIO(png.content))
    assert image.size == (thumbs.TILE * sprite["columns"], thumbs.TILE * 2)  # 12 in rows of 8
    assert len(png.content) < 12 * 2000
    missing = client.get(f"{API}/candidates", params={"project_id": 99999}, headers=expert)
    assert missing.status_code == 404


def test_gold_and_expert_answers_are_paged_with_totals(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    with Session(migrated_engine) as session:
        project = create_project(session, gold_rate=1.0, gold_schedule=[])
        slices = create_case(session, storage, project, _square_masks(5))
        session.commit()
        project_id, slice_ids = project.id, [s.id for s in slices]
    expert = _headers(migrated_engine)
    for slice_id in slice_ids[:3]:
        made = client.post(
            f"/api/quality/slices/{slice_id}/gold", json={"source": "reference"}, headers=expert
        )
        assert made.status_code == 201
    page = client.get(
        f"{API}/gold", params={"project_id": project_id, "limit": 2}, headers=expert
    ).json()
    assert page["total"] == 3
    assert [i["slice_id"] for i in page["items"]] == [slice_ids[2], slice_ids[1]]  # newest first
    rest = client.get(
        f"{API}/gold", params={"project_id": project_id, "limit": 2, "offset": 2}, headers=expert
    ).json()
    assert [i["slice_id"] for i in rest["items"]] == [slice_ids[0]]
    assert rest["items"][0]["version"] == 1
    assert rest["items"][0]["source"] == "reference"
    candidates = client.get(
        f"{API}/candidates", params={"project_id": project_id}, headers=expert
    ).json()
    assert {i["slice_id"] for i in candidates["items"]} == set(slice_ids[3:])
    answers = client.get(f"{API}/answers", params={"project_id": project_id}, headers=expert)
    assert answers.json() == {
        "total": 0,
        "offset": 0,
        "limit": 24,
        "items": [],
        "sprite": None,
    }


def answer_as_three(
    session: Session,
    storage: Storage,
    slices: list[Slice],
    masks: list[np.ndarray],
    elsewhere: np.ndarray,
) -> None:
    """Volunteers Heron, Marlin and Quokka answer every open task: the first two with the
    slice's mask, Quokka with ``elsewhere`` (a disagreement to review)."""
    mask_of = {s.id: m for s, m in zip(slices, masks, strict=True)}
    for n, name in enumerate(("Heron", "Marlin", "Quokka")):
        rater = auth.create_user(
            session=session,
            email=f"{name.lower()}@example.org",
            password=PASSWORD,
            display_name=name,
        )
        while lease := tasks.next_task(session=session, user=rater, lease_seconds=600):
            painted = elsewhere if n == 2 else mask_of[lease.task.slice_id]
            submit(session, storage, rater, lease, mask=_mask_rle(painted))


def _crowd(engine: Engine, storage: Storage) -> tuple[int, list[int], list[np.ndarray]]:
    """A project of four slices with reference masks; three named volunteers answer the two
    crowd tasks (the third volunteer paints elsewhere). The project id, slice ids, masks."""
    masks = _square_masks(4)
    elsewhere = np.zeros((16, 24), dtype=bool)
    elsewhere[10:14, 15:20] = True
    with Session(engine) as session:
        project = create_project(session, min_labels=3, gold_rate=0.0)
        slices = create_case(session, storage, project, masks)
        session.add_all(
            Task(project_id=project.id or 0, slice_id=s.id or 0, required_labels=3)
            for s in slices[1:3]
        )
        session.flush()
        answer_as_three(session, storage, slices, masks, elsewhere)
        session.commit()
        return project.id or 0, [s.id or 0 for s in slices], masks


def test_a_slice_in_detail_names_each_rater_and_shows_the_fused_label(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    project_id, slice_ids, masks = _crowd(migrated_engine, storage)
    with Session(migrated_engine) as session:
        task = session.exec(
            select(Task).where(Task.slice_id == slice_ids[1], Task.kind == TaskKind.normal)
        ).one()
        task_id = task.id
        fusion.fuse_task(session=session, storage=storage, task_id=task_id or 0)
        session.commit()
    expert = _headers(migrated_engine)
    detail = client.get(f"{API}/slices/{slice_ids[1]}", headers=expert)
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert (body["width"], body["height"]) == (24, 16)
    assert body["images"] == {"flair": f"/api/slices/{slice_ids[1]}/images/flair.png"}
    assert sorted(n["offset"] for n in body["neighbours"]) == [-1, 1, 2]
    assert body["candidate"] is True
    assert body["gold_version_id"] is None
    assert body["task_id"] == task_id
    kinds = [(o["kind"], o["label"]) for o in body["overlays"]]
    assert kinds[0] == ("reference", "Reference")
    assert kinds[1][0] == "fused"
    assert kinds[2:] == [("volunteer", "Heron"), ("volunteer", "Marlin"), ("volunteer", "Quokka")]
    by_label = {o["label"]: o for o in body["overlays"]}
    reference = decode_rle(
        by_label["Reference"]["mask"]["counts"], width=24, height=16, expected=(24, 16)
    )
    assert np.array_equal(reference.astype(bool), masks[1])
    assert by_label["Heron"]["dice"] == 1.0
    assert by_label["Quokka"]["dice"] == 0.0
    assert by_label["Heron"]["pixels"] == int(masks[1].sum())
    assert by_label["Heron"]["user_id"]
    assert by_label["Heron"]["annotation_id"]
    assert body["fused_version"] == 1
    assert 0.0 <= body["entropy"] <= 1.0
    missing = client.get(f"{API}/slices/999999", headers=expert)
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"


def _fuse_by_hand(
    session: Session, storage: Storage, project_id: int, task: Task, p: float
) -> None:
    """A fused label of ``task``: P(lesion) = ``p`` wherever its first answer marked."""
    run = FusionRun(
        project_id=project_id,
        scope=FusionScope.task,
        method="crowd_staple/staple",
        prior=0.1,
        iterations=1,
        converged=True,
        slices=1,
    )
    session.add(run)
    session.flush()
    answers = labels.answers(session, project_id, set(), [task.id or 0])[task.id or 0][1]
    marked = labels.votes(storage, answers)[0]
    key = f"fusion/{task.id}/v1.png"
    storage.put(key, labels.soft_png(np.where(marked, p, 0.0)))
    session.add(
        FusionResult(
            run_id=run.id or 0,
            task_id=task.id or 0,
            slice_id=task.slice_id,
            version=1,
            soft_key=key,
            annotation_ids=[a.annotation_id for a in answers],
            raters=[a.user_id for a in answers],
            uncertainty=0.0,
        )
    )
    session.flush()


def test_the_review_queue_sorts_by_fused_entropy_or_by_disagreement(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    project_id, slice_ids, _masks = _crowd(migrated_engine, storage)
    with Session(migrated_engine) as session:
        first, second = session.exec(
            select(Task).where(Task.project_id == project_id).order_by(Task.id)  # type: ignore[arg-type]
        ).all()
        # The first slice: a coin toss where marked; the second: a confident label. Their
        # volunteers disagree alike (two agree, one paints elsewhere): the tie breaks by id.
        _fuse_by_hand(session, storage, project_id, first, 0.5)
        _fuse_by_hand(session, storage, project_id, second, 0.97)
        session.commit()
        first_slice, second_slice = first.slice_id, second.slice_id
    expert = _headers(migrated_engine)

    def order(sort: str) -> list[dict[str, Any]]:
        page = client.get(
            f"{API}/review", params={"project_id": project_id, "sort": sort}, headers=expert
        )
        assert page.status_code == 200, page.text
        assert page.json()["total"] == 2
        assert page.json()["sort"] == sort
        items: list[dict[str, Any]] = page.json()["items"]
        return items

    by_entropy = order("uncertainty")
    assert [i["slice_id"] for i in by_entropy] == [first_slice, second_slice]
    assert by_entropy[0]["entropy"] > 0.99 > 0.3 > by_entropy[1]["entropy"]
    assert [r["pseudonym"] for r in by_entropy[0]["raters"]] == ["Heron", "Marlin", "Quokka"]
    assert by_entropy[0]["fused_version"] == 1
    by_dice = order("disagreement")
    assert by_dice[0]["mean_dice"] <= by_dice[1]["mean_dice"]
    assert all(i["entropy"] is not None for i in by_dice)
    # Paging: one at a time.
    second_page = client.get(
        f"{API}/review",
        params={"project_id": project_id, "limit": 1, "offset": 1},
        headers=expert,
    ).json()
    assert [i["slice_id"] for i in second_page["items"]] == [second_slice]
    assert second_page["sprite"]["url"].endswith(f"slices={second_slice}")
    bad = client.get(
        f"{API}/review", params={"project_id": project_id, "sort": "x"}, headers=expert
    )
    assert bad.status_code == 422


def test_rejections_retire_candidates_gold_and_review_items_with_a_reason(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    project_id, slice_ids, _masks = _crowd(migrated_engine, storage)
    expert = _headers(migrated_engine)

    def reject(slice_id: int, kind: str, reason: str = "motion artefact") -> Any:
        return client.post(
            f"{API}/slices/{slice_id}/reject", json={"kind": kind, "reason": reason}, headers=expert
        )

    def candidates() -> set[int]:
        page = client.get(f"{API}/candidates", params={"project_id": project_id}, headers=expert)
        return {i["slice_id"] for i in page.json()["items"]}

    assert candidates() == set(slice_ids)
    made = reject(slice_ids[0], "candidate")
    assert made.status_code == 201, made.text
    assert made.json()["kind"] == "candidate"
    assert made.json()["reason"] == "motion artefact"
    assert candidates() == set(slice_ids[1:])
    assert reject(slice_ids[0], "candidate").json()["code"] == "conflict"
    assert reject(slice_ids[0], "candidate", "no").status_code == 422
    assert reject(slice_ids[0], "maybe").status_code == 422
    # refill never approves a rejected candidate.
    with Session(migrated_engine) as session:
        state = gold_pool.pool_state(session=session, project_id=project_id, storage=storage)
        assert slice_ids[0] not in {c.slice_id for c in state.candidates}
    # Gold: approve, then reject as gold: retired, with the reason kept.
    approved = client.post(
        f"/api/quality/slices/{slice_ids[3]}/gold", json={"source": "reference"}, headers=expert
    )
    assert approved.status_code == 201
    assert reject(slice_ids[3], "candidate").status_code == 409  # it is gold
    assert reject(slice_ids[3], "gold", "outline too generous").status_code == 201
    gold = client.get(f"{API}/gold", params={"project_id": project_id}, headers=expert).json()
    assert gold["total"] == 0
    assert reject(slice_ids[3], "gold").status_code == 404  # not gold any more
    # Review: the disputed slice leaves the queue.
    review = client.get(f"{API}/review", params={"project_id": project_id}, headers=expert)
    assert {i["slice_id"] for i in review.json()["items"]} == {slice_ids[1], slice_ids[2]}
    assert reject(slice_ids[1], "review", "unreadable: flow artefact").status_code == 201
    review = client.get(f"{API}/review", params={"project_id": project_id}, headers=expert)
    assert {i["slice_id"] for i in review.json()["items"]} == {slice_ids[2]}
    assert reject(slice_ids[0], "review").status_code == 404  # no crowd task there
    detail = client.get(f"{API}/slices/{slice_ids[3]}", headers=expert).json()
    assert [(r["kind"], r["reason"]) for r in detail["rejections"]] == [
        ("gold", "outline too generous")
    ]
    with Session(migrated_engine) as session:
        assert len(session.exec(select(SliceRejection)).all()) == 3
        versions = session.exec(select(GoldVersion)).all()
        assert [v.retired_at is not None for v in versions] == [True]


def test_edit_saves_the_painted_mask_as_a_new_gold_version(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    """The pane's Edit saves through the gold route: a new version, shown as the slice's gold."""
    project_id, slice_ids, masks = _crowd(migrated_engine, storage)
    expert = _headers(migrated_engine)
    edited = masks[2].copy()
    edited[0:2, 0:3] = True
    rle = _mask_rle(edited).model_dump()
    saved = client.post(
        f"/api/quality/slices/{slice_ids[2]}/gold",
        json={"source": "expert", "mask": rle},
        headers=expert,
    )
    assert saved.status_code == 201, saved.text
    detail = client.get(f"{API}/slices/{slice_ids[2]}", headers=expert).json()
    (gold,) = [o for o in detail["overlays"] if o["kind"] == "gold"]
    assert gold["label"] == "Gold v1"
    assert gold["pixels"] == int(edited.sum())
    assert detail["gold_version_id"] == saved.json()["id"]
    assert detail["candidate"] is False
    # Volunteers are measured against the gold now.
    dice = {o["label"]: o["dice"] for o in detail["overlays"] if o["kind"] == "volunteer"}
    assert 0.9 < dice["Heron"] < 1.0
    review = client.get(f"{API}/review", params={"project_id": project_id}, headers=expert)
    assert slice_ids[2] not in {i["slice_id"] for i in review.json()["items"]}


ROUTES = [
    ("GET", f"{API}/candidates?project_id=1"),
    ("GET", f"{API}/gold?project_id=1"),
    ("GET", f"{API}/answers?project_id=1"),
    ("GET", f"{API}/review?project_id=1"),
    ("GET", f"{API}/slices/1"),
    ("POST", f"{API}/slices/1/reject"),
    ("GET", f"{API}/sprite.png?slices=1&mark=reference"),
]


def test_volunteers_and_anonymous_callers_get_nothing_from_the_workspace(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    project_id, slice_ids, _masks = _crowd(migrated_engine, storage)
    volunteer = _headers(migrated_engine, UserRole.volunteer, "someone")
    engineer = _headers(migrated_engine, UserRole.engineer, "engineer")
    expert = _headers(migrated_engine)
    body = {"kind": "candidate", "reason": "a valid reason"}
    for method, url in ROUTES:
        url = url.replace("project_id=1", f"project_id={project_id}")
        url = url.replace("/1", f"/{slice_ids[1]}").replace("slices=1", f"slices={slice_ids[1]}")
        json = body if method == "POST" else None
        anonymous = client.request(method, url, json=json)
        assert anonymous.status_code == 401, url
        assert anonymous.json()["code"] == "not_authenticated"
        for headers in (volunteer, engineer):
            refused = client.request(method, url, json=json, headers=headers)
            assert refused.status_code == 403, url
            assert refused.json()["code"] == "permission_denied"
            assert "Heron" not in refused.text
    # The expert sees them all (the rejection last: it changes the slice).
    for method, url in ROUTES:
        url = url.replace("project_id=1", f"project_id={project_id}")
        url = url.replace("/1", f"/{slice_ids[1]}").replace("slices=1", f"slices={slice_ids[1]}")
        answer = client.request(
            method, url, json=body if method == "POST" else None, headers=expert
        )
        assert answer.status_code in (200, 201), (url, answer.text)


def test_a_thumbnail_tile_keeps_a_one_pixel_lesion_visible() -> None:
    flair = np.full((180, 150), 120, dtype=np.uint8)
    mask = np.zeros((180, 150), dtype=bool)
    mask[90, 75] = True
    tile = thumbs.tile(flair, mask)
    assert tile.shape == (thumbs.TILE, thumbs.TILE)
    assert np.count_nonzero(tile == thumbs.MARK) >= 1
    assert tile[0, 0] == 0
    assert tile[32, 32] == 120
    png = thumbs.sprite_png([tile] * 10)
    with Image.open(io.BytesIO(png)) as image:
        assert image.size == (thumbs.TILE * 8, thumbs.TILE * 2)
        assert image.mode == "P"


def test_fused_entropy_ignores_the_priors_background() -> None:
    """STAPLE's prior leaves 1/255 on every pixel; that must not make every slice alike."""
    from backend.quality.workspace_review import fused_entropy

    background = np.full((20, 20), 1 / 255)
    sure, unsure = background.copy(), background.copy()
    sure[5:10, 5:10] = 1.0
    unsure[5:10, 5:10] = 0.5
    assert fused_entropy(background) == 0.0
    assert fused_entropy(sure) == pytest.approx(0.0, abs=1e-6)
    assert fused_entropy(unsure) == pytest.approx(1.0)
